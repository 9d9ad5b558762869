"""The profile catalogue: loads and validates profiles/*.yaml."""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from .errors import VigieError
from .evidence import check_id
from .model import LEVELS
from .suite import PROFILE_DIR, check_families

KINDS = ("fhir", "warehouse", "source", "documents")
PROFILE_KEYS = {"id": True, "version": True, "title": True, "source": True, "applies_to": True,
                "requirements": True, "description": False, "default_campaign": False,
                # params shared by every requirement of the profile (a requirement's own params win)
                "params": False,
                # the versions of its source the checks can test, the default first: `--profile ID@VERSION`
                # runs the profile with every requirement's `version` param set to VERSION
                "versions": False}
REQUIREMENT_KEYS = {"id": True, "level": True, "title": True, "reference": True, "check": True,
                    "params": False, "description": False}
ATTESTATION = "attestation"
_LINE = "__line__"


@dataclass(frozen=True)
class Requirement:
    id: str
    level: str
    title: dict
    reference: str
    check: str
    profile: str
    params: dict = field(default_factory=dict, hash=False, compare=False)

    def title_in(self, lang: str) -> str:
        return self.title.get(lang) or self.title.get("en", self.id)


@dataclass
class Profile:
    id: str
    version: str
    title: dict
    source: dict
    applies_to: list
    requirements: list
    path: Path
    digest: str
    # false: run only when selected by id (--profile), not in the default campaign; a list of target kinds:
    # in the default campaign only of a campaign with a target of one of those kinds
    default_campaign: bool | tuple = True
    versions: list = field(default_factory=list)

    def in_default_campaign(self, kinds) -> bool:
        """Whether the default campaign of targets of these kinds holds this profile."""
        joins = set(self.applies_to) if self.default_campaign is True else set(self.default_campaign or ())
        return bool(joins & set(self.applies_to) & set(kinds))

    @property
    def family(self) -> str | None:
        """What the profile is about (conformance, security, load): the suite folder of most of its checks,
        found where they live rather than declared, so that it cannot drift from them (None: no check of
        the profile is implemented, attestations only)."""
        families = check_families()
        found = Counter(families[r.check] for r in self.requirements if r.check in families)
        return found.most_common(1)[0][0] if found else None

    def summary(self) -> dict:
        return {"id": self.id, "version": self.version, "title": self.title, "source": self.source,
                "applies_to": self.applies_to, "digest": self.digest, "family": self.family}


class _LineLoader(yaml.SafeLoader):
    """Keeps the line of every mapping (for error messages) and refuses duplicate keys."""

    def compose_node(self, parent, index):
        # no profile needs aliases, and nested ones expand to billions of values ("billion laughs")
        if self.check_event(yaml.AliasEvent):
            raise VigieError(f"line {self.peek_event().start_mark.line + 1}: YAML aliases (*name) are not "
                             "allowed in a profile")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        if not isinstance(node, yaml.MappingNode):
            return super().construct_mapping(node, deep=deep)   # PyYAML's own clear error
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise VigieError(f"line {key_node.start_mark.line + 1}: duplicate key '{key}'")
            seen.add(key)
        mapping = super().construct_mapping(node, deep=True)
        mapping[_LINE] = node.start_mark.line + 1
        return mapping


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != _LINE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _check_keys(mapping: dict, allowed: dict, where: str) -> None:
    line = mapping.get(_LINE, "?")
    for key in mapping:
        if key != _LINE and key not in allowed:
            raise VigieError(f"{where}, line {line}: unknown key '{key}' (allowed: {', '.join(allowed)})")
    for key, required in allowed.items():
        if required and key not in mapping:
            raise VigieError(f"{where}, line {line}: missing key '{key}'")


def _check_title(value, where: str, line) -> dict:
    if not (isinstance(value, dict) and isinstance(value.get("en"), str) and isinstance(value.get("fr"), str)):
        raise VigieError(f"{where}, line {line}: title needs an English and a French text ({{en: ..., fr: ...}})")
    return _strip(value)


def load_profile(path: Path) -> Profile:
    where = str(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LineLoader)
    except VigieError as exc:
        raise VigieError(f"{where}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise VigieError(f"{where}: cannot read: {exc}") from None
    except RecursionError:
        raise VigieError(f"{where}: not a profile: nested too deeply") from None
    except TypeError as exc:   # an unhashable mapping key such as ? [a, b]
        raise VigieError(f"{where}: not a profile: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark else ""
        problem = str(getattr(exc, "problem", None) or exc).strip().splitlines() or ["unreadable"]
        raise VigieError(f"{where}{line}: not valid YAML: {problem[0]}") from None
    if not isinstance(data, dict):
        raise VigieError(f"{where}: a profile is a mapping with id, version, title, source, applies_to, requirements")
    _check_keys(data, PROFILE_KEYS, where)
    line = data[_LINE]
    pid = data["id"]
    if not isinstance(pid, str) or not pid:
        raise VigieError(f"{where}, line {line}: id must be a non-empty string")
    check_id(pid, f"{where}, line {line}: profile id")
    kinds = data["applies_to"]
    if not isinstance(kinds, list) or not kinds or any(k not in KINDS for k in kinds):
        raise VigieError(f"{where}, line {line}: applies_to must list target kinds among {', '.join(KINDS)}")
    if not isinstance(data["source"], dict) or "title" not in data["source"]:
        raise VigieError(f"{where}, line {line}: source needs at least a title")
    reqs = data["requirements"]
    if not isinstance(reqs, list) or not reqs:
        raise VigieError(f"{where}, line {line}: requirements must be a non-empty list")
    joins = data.get("default_campaign", True)
    if not isinstance(joins, bool) and not (isinstance(joins, list) and joins and all(k in kinds for k in joins)):
        raise VigieError(f"{where}, line {line}: default_campaign must be true or false, or a list of the "
                         "kinds of applies_to whose campaigns it joins by default")
    if not isinstance(data.get("versions", []), list):
        raise VigieError(f"{where}, line {line}: versions must be a list")
    shared = data.get("params") or {}
    if not isinstance(shared, dict):
        raise VigieError(f"{where}, line {line}: params must be a mapping")
    requirements = []
    for raw in reqs:
        if not isinstance(raw, dict):
            raise VigieError(f"{where}: each requirement is a mapping")
        _check_keys(raw, REQUIREMENT_KEYS, where)
        rline = raw[_LINE]
        if raw["level"] not in LEVELS:
            raise VigieError(f"{where}, line {rline}: unknown level '{raw['level']}' (use {', '.join(LEVELS)})")
        params = raw.get("params") or {}
        if not isinstance(params, dict):
            raise VigieError(f"{where}, line {rline}: params must be a mapping")
        params = {**shared, **params}
        for key in ("id", "check", "reference"):
            if not isinstance(raw[key], str) or not raw[key]:
                raise VigieError(f"{where}, line {rline}: {key} must be a non-empty string")
        check_id(raw["id"], f"{where}, line {rline}: requirement id")   # it names evidence files
        requirements.append(Requirement(
            id=raw["id"], level=raw["level"], title=_check_title(raw["title"], where, rline),
            reference=raw["reference"], check=raw["check"], profile=pid, params=_strip(params)))
    return Profile(id=pid, version=str(data["version"]), title=_check_title(data["title"], where, line),
                   source=_strip(data["source"]), applies_to=kinds, requirements=requirements, path=path,
                   digest="sha256:" + hashlib.sha256(path.read_bytes()).hexdigest(),
                   default_campaign=joins if isinstance(joins, bool) else tuple(joins),
                   versions=[str(v) for v in data.get("versions") or []])


def load_catalogue(directory: Path = PROFILE_DIR) -> dict[str, Profile]:
    """Every profile of the folder, by id; requirement ids must be unique across all of them."""
    profiles: dict[str, Profile] = {}
    seen: dict[str, str] = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        profile = load_profile(path)
        if profile.id in profiles:
            raise VigieError(f"{path}: profile id '{profile.id}' already used by {profiles[profile.id].path.name}")
        for req in profile.requirements:
            if req.id in seen:
                raise VigieError(f"{path}: requirement id '{req.id}' already used in {seen[req.id]}")
            seen[req.id] = path.name
        profiles[profile.id] = profile
    return profiles


def select(profiles: dict[str, Profile], ids: list[str]) -> list[Profile]:
    """The profiles named by ids; `ig:<package id>[#version]` builds one from a guide's CapabilityStatements."""
    if not ids:
        return list(profiles.values())
    missing = [i for i in ids if i.partition("@")[0] not in profiles and not i.startswith("ig:")]
    if missing:
        raise VigieError(f"unknown profile '{missing[0]}' (known: {', '.join(sorted(profiles))}, "
                         f"or ig:<FHIR package id>)")
    selected = []
    for i in dict.fromkeys(ids):
        if i.startswith("ig:"):
            from .igprofile import build_ig_profile
            selected.append(build_ig_profile(i))
        elif "@" in i:
            selected.append(_at_version(profiles[i.partition("@")[0]], i.partition("@")[2]))
        else:
            selected.append(profiles[i])
    return selected


def _at_version(profile: Profile, version: str) -> Profile:
    """The profile run against another version of its source (`ID@VERSION`)."""
    if version not in profile.versions:
        known = ", ".join(profile.versions) or "none: it tests one version only"
        raise VigieError(f"profile '{profile.id}' cannot test version '{version}' (versions: {known})")
    requirements = [replace(r, params={**r.params, "version": version}) for r in profile.requirements]
    return replace(profile, version=f"{profile.version}@{version}", requirements=requirements)
