"""Profiles built at run time from an implementation guide's CapabilityStatements (`--profile ig:<id>[#version]`).

Each server-side CapabilityStatement of the package gives one requirement per declared resource interaction,
search parameter and _include/_revinclude. Ids are stable across runs: they are made of the statement's id,
the resource type and what is required (`IG-AsServerDPCapabilityStatement-Organization-param-name`).

Levels come from the capabilitystatement-expectation extension on the element. Where a guide carries none
(the ANS SAS and Annuaire packages carry none in their JSON), the level is SHALL: a requirements statement
lists what a conforming server does, and the guides' published pages render those unmarked lines as SHALL.

The HTTP name of a search parameter is the `code` of the SearchParameter its `definition` points to
(`searchParam.name` is only a label in some guides: SAS names `slot-sp-start` what clients send as `start`).
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from .catalogue import Profile, Requirement
from .errors import VigieError

PREFIX = "ig:"
EXPECTATION = "http://hl7.org/fhir/StructureDefinition/capabilitystatement-expectation"
DEFAULT_LEVEL = "SHALL"
LEVELS = {"SHALL": "SHALL", "SHOULD": "SHOULD", "MAY": "MAY", "SHOULD-NOT": None}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _level(element: dict) -> str | None:
    """The element's expectation as a level; None for SHOULD-NOT (nothing to test)."""
    for ext in element.get("extension", []) or []:
        if isinstance(ext, dict) and ext.get("url") == EXPECTATION:
            return LEVELS.get(str(ext.get("valueCode", "")).upper(), DEFAULT_LEVEL)
    return DEFAULT_LEVEL


def _include_levels(resource: dict, key: str) -> list[tuple[str, str | None]]:
    """(value, level) of searchInclude or searchRevInclude; the level sits on the primitive's `_` twin."""
    values = resource.get(key) or []
    twins = resource.get("_" + key) or []
    return [(v, _level(twins[i] if i < len(twins) and isinstance(twins[i], dict) else {}))
            for i, v in enumerate(values) if isinstance(v, str)]


def _slug(text: str) -> str:
    return _UNSAFE.sub("-", text).strip("-") or "x"


def find_package(spec: str):
    """The package named by `id[#version]` (from the FHIR package cache: the newest version when none is
    given) or by the path of a .tgz or folder; loaded with the dependencies the cache holds."""
    from .fhir import PackageCache, PackageError, load_packages, open_package
    try:
        if Path(spec).exists():
            root = open_package(spec)
            return root, load_packages(spec)
        cache = PackageCache()
        pid, _, version = spec.partition("#")
        if not version:
            versions = [v for p, v, _ in cache.list() if p == pid]
            if not versions:
                raise VigieError(f"implementation guide '{pid}' is not in the FHIR package cache {cache.root} "
                                 f"(vigie packages add FILE.tgz, or give ig:PATH.tgz)")
            version = max(versions, key=_version_key)
        root = cache.get(pid, version)
        if root is None:
            from .fhir.registry import install
            try:    # the FHIR package registries, when this machine reaches them
                root = install(f"{pid}#{version}", cache)
            except PackageError:
                root = None
        if root is None:
            raise VigieError(f"implementation guide '{pid}#{version}' is not in the FHIR package cache "
                             f"{cache.root} (vigie packages add FILE.tgz, or give ig:PATH.tgz)")
        return root, load_packages(f"{pid}#{version}")
    except PackageError as exc:
        raise VigieError(str(exc)) from None


def _version_key(version: str):
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.-]", version)]


def _search_code(packages, param: dict) -> tuple[str, str | None]:
    """The parameter's HTTP name, and the definition that could not be read when the name is only a guess."""
    definition = param.get("definition")
    found = packages.resolve(definition, "SearchParameter") if definition else None
    if isinstance(found, dict) and isinstance(found.get("code"), str):
        return found["code"], None
    # a definition outside R4 core (always loaded) may be in a dependency the cache lacks: the label is a guess
    guessed = isinstance(definition, str) and packages.missing and \
        not definition.startswith("http://hl7.org/fhir/SearchParameter/")
    return str(param.get("name", "")), definition if guessed else None


def requirements_of(statement: dict, packages, profile_id: str) -> list[Requirement]:
    """The requirements one CapabilityStatement makes of a server."""
    cs_id = _slug(str(statement.get("id") or statement.get("name") or "capability"))
    cs_ref = f"CapabilityStatement/{statement.get('id')}"
    out: list[Requirement] = []

    def add(suffix, level, en, fr, reference, check, params):
        if level is None:
            return
        out.append(Requirement(id=f"IG-{cs_id}-{_slug(suffix)}", level=level, title={"en": en, "fr": fr},
                               reference=f"{cs_ref} {reference}", check=check, profile=profile_id,
                               params={"capability_statement": statement.get("url") or cs_ref, **params}))

    for rest in statement.get("rest", []) or []:
        if rest.get("mode") != "server":
            continue
        for resource in rest.get("resource", []) or []:
            rtype = resource.get("type")
            if not isinstance(rtype, str):
                continue
            base_level = _level(resource)
            if base_level is None:
                continue
            profile = resource.get("profile")
            for interaction in resource.get("interaction", []) or []:
                code = interaction.get("code")
                if not isinstance(code, str):
                    continue
                add(f"{rtype}-interaction-{code}", _level(interaction),
                    f"The server supports the {code} interaction on {rtype}",
                    f"Le serveur prend en charge l'interaction {code} sur {rtype}",
                    f"rest.resource({rtype}).interaction({code})", "ig.interaction",
                    {"resource": rtype, "interaction": code, **({"profile": profile} if profile else {})})
            for param in resource.get("searchParam", []) or []:
                code, not_loaded = _search_code(packages, param)
                if not code:
                    continue
                add(f"{rtype}-param-{code}", _level(param),
                    f"The server supports searching {rtype} by {code} ({param.get('type', '?')})",
                    f"Le serveur permet de rechercher {rtype} par {code} ({param.get('type', '?')})",
                    f"rest.resource({rtype}).searchParam({param.get('name')})", "ig.search-param",
                    {"resource": rtype, "code": code, "type": param.get("type"), "label": param.get("name"),
                     **({"definition_not_loaded": not_loaded} if not_loaded else {})})
            for key, name in (("searchInclude", "_include"), ("searchRevInclude", "_revinclude")):
                for value, level in _include_levels(resource, key):
                    add(f"{rtype}-{name.strip('_')}-{value.replace(':', '-')}", level,
                        f"The server supports {name}={value} on {rtype} searches",
                        f"Le serveur prend en charge {name}={value} dans les recherches {rtype}",
                        f"rest.resource({rtype}).{key}({value})", "ig.include",
                        {"resource": rtype, "parameter": name, "value": value})
    return out


def build_ig_profile(spec: str) -> Profile:
    """The profile for `ig:<package id>[#version]` (or `ig:PATH.tgz`)."""
    name = spec.removeprefix(PREFIX)
    if not name:
        raise VigieError("ig: needs a package id, e.g. ig:ans.fhir.fr.annuaire#1.2.0-snapshot-2")
    root, packages = find_package(name)
    statements = []
    for entry in root.index:
        if entry.get("resourceType") == "CapabilityStatement":
            res = root.resource(entry["filename"])
            if isinstance(res, dict):
                statements.append(res)
    statements.sort(key=lambda s: str(s.get("id")))
    profile_id = f"{PREFIX}{root.id}"
    requirements = [r for s in statements for r in requirements_of(s, packages, profile_id)]
    seen: set[str] = set()
    for r in requirements:
        if r.id in seen:
            raise VigieError(f"{root.key}: two requirements would share the id {r.id}")
        seen.add(r.id)
    if not requirements:
        raise VigieError(f"{root.key}: no CapabilityStatement of the package describes a server")
    manifest = root.manifest
    title = manifest.get("title") or root.id
    digest = hashlib.sha256(json.dumps(statements, sort_keys=True).encode()).hexdigest()
    return Profile(
        id=profile_id, version=root.version,
        title={"en": f"{title}: server capabilities", "fr": f"{title} : capacités du serveur"},
        source={"title": f"{title} ({root.id}#{root.version}), CapabilityStatements",
                "url": manifest.get("canonical", ""), "published": str(manifest.get("date", ""))},
        applies_to=["fhir"], requirements=requirements, path=Path(root.source), digest="sha256:" + digest,
        default_campaign=False)
