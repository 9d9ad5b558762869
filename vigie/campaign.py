"""Targets and campaigns: what a run tests, from command-line flags or vigie.toml."""
from __future__ import annotations

import os
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .catalogue import KINDS
from .errors import VigieError
from .evidence import check_id, strip_credentials, url_credentials
from .limits import make_limits

TARGET_KEYS = {"id", "kind", "url", "ca_file", "token", "tokens", "files"}
CONFIG_KEYS = {"targets", "profiles", "out", "lang", "limits", "product"}
PRODUCT_KEYS = ("name", "version", "commit")


@dataclass
class Target:
    id: str
    kind: str
    url: str
    ca_file: str | None = None
    token: str | None = field(default=None, repr=False)
    tokens: dict = field(default_factory=dict, repr=False)
    files: tuple = ()       # a documents target given as a list of files (its url: their common folder)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    def secrets(self) -> list[str]:
        # what the URL carries too (postgresql://user:pass@host/db?sslpassword=...), as written and as decoded
        return [s for s in [self.token, *self.tokens.values(), *url_credentials(self.url)] if s]

    def public(self) -> dict:
        """What a report may show of the target: never its secrets."""
        return {"id": self.id, "kind": self.kind, "url": strip_credentials(self.url)}


class ConfigError(VigieError):
    """Every problem found in a configuration (a file, or flags), each one line: the command line prints them
    all, so that one round of edits fixes them."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__(self.problems[0] if len(self.problems) == 1 else
                         f"{self.problems[0]} (and {len(self.problems) - 1} more)")


def _port_problem(url: str) -> str | None:
    """What is wrong with the URL's port, if anything (urllib takes 99999 until it is used)."""
    try:
        port = urlsplit(url).port
    except ValueError:
        return "port out of range (1-65535)"
    return "port out of range (1-65535)" if port == 0 else None


def target_problems(data: dict, where: str) -> list[str]:
    """Every problem of one target's settings, one line each."""
    problems = []
    unknown = set(data) - TARGET_KEYS
    if unknown:
        problems.append(f"{where}: unknown target key '{min(unknown)}' (allowed: {', '.join(sorted(TARGET_KEYS))})")
    kind = data.get("kind")
    if kind not in KINDS:
        problems.append(f"{where}: target kind must be one of {', '.join(KINDS)}, not {kind!r}")
    try:
        files = _document_files(data, kind, where)
    except VigieError as exc:
        problems.append(str(exc))
        files = ()
    url = _url(data, files)
    if not isinstance(url, str) or not url:
        problems.append(f"{where}: target needs a url")
        url = None
    elif any(unicodedata.category(c) == "Cc" for c in url):   # it is printed, and sent in requests
        problems.append(f"{where}: the target url {strip_credentials(url)[:200]!r} holds control characters")
        url = None
    if url and kind == "fhir":
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(f"{where}: '{strip_credentials(url)}' is not an http(s) URL")
        elif _port_problem(url):
            problems.append(f"{where}: '{strip_credentials(url)}': {_port_problem(url)}")
    if url and kind == "warehouse":  # a database URL: its scheme must name a dialect vigie can load
        from .warehouse.url import check_url
        try:
            check_url(url, where)
            if "://" in url and _port_problem(url):
                problems.append(f"{where}: {_port_problem(url)}")
        except VigieError as exc:
            problems.append(str(exc))
    if url and kind == "documents" and not Path(url).exists():  # a folder of CDA documents, or one document
        problems.append(f"{where}: documents folder or file '{url}' not found")
    if url and kind == "source" and not Path(url).is_dir():  # a folder of the vendor's code
        problems.append(f"{where}: source folder '{url}' not found")
    ca_file = data.get("ca_file")
    if ca_file is not None and not (isinstance(ca_file, str) and Path(ca_file).is_file()):
        problems.append(f"{where}: CA file '{ca_file}' not found")
    if data.get("token") is not None and not isinstance(data.get("token"), str):
        problems.append(f"{where}: token must be a string")
    tokens = data.get("tokens") or {}
    if not isinstance(tokens, dict) or not all(isinstance(v, str) and v for v in tokens.values()):
        problems.append(f"{where}: tokens must be a table of role = token (strings)")
    try:
        check_id(data.get("id", kind), f"{where}: target id")   # it names evidence files
    except VigieError as exc:
        problems.append(str(exc))
    return problems


def make_target(data: dict, where: str) -> Target:
    problems = target_problems(data, where)
    if problems:
        raise ConfigError(problems)
    files = _document_files(data, data["kind"], where)
    url = _url(data, files)
    ca_file = data.get("ca_file")
    if data["kind"] in ("source", "documents"):
        url = str(Path(url).resolve())
    if ca_file is not None:   # the load process and the TLS scan work from other folders
        ca_file = str(Path(ca_file).resolve())
    return Target(id=data.get("id", data["kind"]), kind=data["kind"], url=url.rstrip("/") or "/", ca_file=ca_file,
                  token=data.get("token"), tokens={str(k): v for k, v in (data.get("tokens") or {}).items()},
                  files=files)


def _url(data: dict, files: tuple):
    """The target's url; for a documents target given as files, their common folder."""
    return data.get("url") if not files else os.path.commonpath([str(Path(f).parent) for f in files])


def _document_files(data: dict, kind: str, where: str) -> tuple:
    """The files of a documents target given as `files = [...]` (instead of a folder as its url), resolved."""
    files = data.get("files")
    if files is None:
        return ()
    if kind != "documents":
        raise VigieError(f"{where}: files = [...] is for a target of kind documents")
    if data.get("url"):
        raise VigieError(f"{where}: a documents target takes a url (a folder or a file) or files, not both")
    if not isinstance(files, list) or not files or not all(isinstance(f, str) and f for f in files):
        raise VigieError(f"{where}: files must be a non-empty list of CDA document paths")
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise VigieError(f"{where}: document '{missing[0]}' not found")
    return tuple(str(Path(f).resolve()) for f in files)


def make_product(data, where: str) -> dict | None:
    """The product under test as the user declares it ([product] of vigie.toml, --product...): name, version,
    source commit; None when nothing is declared."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise VigieError(f"{where}: product must be a [product] table (name, version, commit)")
    unknown = set(data) - set(PRODUCT_KEYS)
    if unknown:
        raise VigieError(f"{where}: unknown product key '{min(unknown)}' (allowed: {', '.join(PRODUCT_KEYS)})")
    wrong = [k for k, v in data.items() if v is not None and not (isinstance(v, str) and v.strip())]
    if wrong:
        raise VigieError(f"{where}: product {wrong[0]} must be a non-empty string")
    product = {k: data[k].strip() for k in PRODUCT_KEYS if data.get(k)}
    return product or None


def load_config(path: Path) -> dict:
    """vigie.toml, every problem found at once (ConfigError)."""
    settings, problems = read_config(path)
    if problems:
        raise ConfigError(problems)
    return settings


def read_config(path: Path) -> tuple[dict, list[str]]:
    """vigie.toml: [[targets]] tables, and optionally profiles, out, lang, [limits], [product]; the settings
    that could be read, and every problem found, one line each. Relative paths (a CA file, a source folder,
    out) are relative to the file's folder."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, [f"{path}: configuration file not found"]
    except IsADirectoryError:
        return {}, [f"{path}: is a folder, not a configuration file"]
    except (OSError, UnicodeDecodeError) as exc:
        return {}, [f"{path}: cannot read: {exc}"]
    except tomllib.TOMLDecodeError as exc:
        return {}, [f"{path}: not valid TOML: {exc}"]
    problems = []
    unknown = sorted(set(data) - CONFIG_KEYS)
    for key in unknown:
        problems.append(f"{path}: unknown key '{key}' (allowed: {', '.join(sorted(CONFIG_KEYS))})")
    result = {"targets": [], "profiles": []}
    targets = data.get("targets", [])
    if not isinstance(targets, list) or not all(isinstance(t, dict) for t in targets):
        problems.append(f"{path}: targets must be [[targets]] tables")
        targets = []
    for i, t in enumerate(targets):
        t = _relative_to(dict(t), path.parent)
        try:
            result["targets"].append(make_target(t, f"{path}: target {i + 1}"))
        except ConfigError as exc:
            problems += exc.problems
    profiles = data.get("profiles", [])
    if not isinstance(profiles, list) or not all(isinstance(p, str) for p in profiles):
        problems.append(f"{path}: profiles must be a list of profile ids")
    else:
        result["profiles"] = profiles
    table = data.get("limits", {})
    if not isinstance(table, dict):
        problems.append(f"{path}: limits must be a [limits] table")
        table = {}
    for key, value in table.items():   # each key on its own, so that every wrong one is named
        try:
            make_limits({key: value}, f"{path}: [limits]")
        except VigieError as exc:
            problems.append(str(exc))
    try:
        result["limits"] = make_limits(table, f"{path}: [limits]")
    except VigieError:
        pass
    try:
        result["product"] = make_product(data.get("product"), f"{path}: [product]")
    except VigieError as exc:
        problems.append(str(exc))
    from .render.i18n import LANGS
    if "lang" in data:   # checked now, not once the campaign has run
        if data["lang"] in LANGS:
            result["lang"] = data["lang"]
        else:
            problems.append(f"{path}: lang must be one of {', '.join(LANGS)}, not {_shown(data['lang'])}")
    if "out" in data:
        out, problem = _bundles_folder(data["out"], path)
        if problem:
            problems.append(problem)
        else:
            result["out"] = out
    ids = [t.id for t in result["targets"]]
    if len(set(ids)) != len(ids):
        problems.append(f"{path}: two targets share an id")
    return result, problems


def _shown(value) -> str:
    return f"'{value}'" if isinstance(value, str) else repr(value)


def _relative_to(target: dict, folder: Path) -> dict:
    """A target's CA file and source or documents folder, relative paths taken from the configuration file's
    folder."""
    if isinstance(target.get("ca_file"), str) and target["ca_file"] and not Path(target["ca_file"]).is_absolute():
        target["ca_file"] = str((folder / target["ca_file"]).resolve())
    if isinstance(target.get("files"), list):   # so are a documents target's files
        target["files"] = [str((folder / f).resolve()) if isinstance(f, str) and f and not Path(f).is_absolute()
                           else f for f in target["files"]]
    if target.get("kind") in ("source", "documents") and isinstance(target.get("url"), str) and target["url"] \
            and not Path(target["url"]).is_absolute():
        target["url"] = str((folder / target["url"]).resolve())
    return target


def _bundles_folder(value, path: Path) -> tuple[Path | None, str | None]:
    """`out` of vigie.toml: the folder that receives one bundle folder per run (`<out>/<run-id>`), so that the
    same file serves every run; relative to the configuration file's folder."""
    if not isinstance(value, str) or not value.strip():
        return None, f"{path}: out must be a folder name"
    out = Path(value)
    out = out if out.is_absolute() else (path.parent / out).absolute()
    existing = next((p for p in (out, *out.parents) if p.exists() or p.is_symlink()), None)
    if existing is not None and not existing.is_dir():
        return None, f"{path}: out '{value}': {existing} is not a folder"
    return out, None
