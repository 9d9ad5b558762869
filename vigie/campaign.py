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


def make_target(data: dict, where: str) -> Target:
    unknown = set(data) - TARGET_KEYS
    if unknown:
        raise VigieError(f"{where}: unknown target key '{min(unknown)}' (allowed: {', '.join(sorted(TARGET_KEYS))})")
    kind = data.get("kind")
    if kind not in KINDS:
        raise VigieError(f"{where}: target kind must be one of {', '.join(KINDS)}, not {kind!r}")
    files = _document_files(data, kind, where)
    url = data.get("url") if not files else os.path.commonpath([str(Path(f).parent) for f in files])
    if not isinstance(url, str) or not url:
        raise VigieError(f"{where}: target needs a url")
    if any(unicodedata.category(c) == "Cc" for c in url):   # it is printed, and sent in requests
        raise VigieError(f"{where}: the target url {strip_credentials(url)[:200]!r} holds control characters")
    if kind == "fhir":
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise VigieError(f"{where}: '{strip_credentials(url)}' is not an http(s) URL")
    if kind == "warehouse":  # a database URL: its scheme must name a dialect vigie can load
        from .warehouse.url import check_url
        check_url(url, where)
    if kind == "documents":  # a folder of CDA documents, or one document
        if not Path(url).exists():
            raise VigieError(f"{where}: documents folder or file '{url}' not found")
        url = str(Path(url).resolve())
    if kind == "source":  # the url of a source target is a folder of the vendor's code
        if not Path(url).is_dir():
            raise VigieError(f"{where}: source folder '{url}' not found")
        url = str(Path(url).resolve())
    ca_file = data.get("ca_file")
    if ca_file is not None and not (isinstance(ca_file, str) and Path(ca_file).is_file()):
        raise VigieError(f"{where}: CA file '{ca_file}' not found")
    if ca_file is not None:   # the load process and the TLS scan work from other folders
        ca_file = str(Path(ca_file).resolve())
    if data.get("token") is not None and not isinstance(data.get("token"), str):
        raise VigieError(f"{where}: token must be a string")
    tokens = data.get("tokens") or {}
    if not isinstance(tokens, dict):
        raise VigieError(f"{where}: tokens must be a table of role = token")
    target_id = check_id(data.get("id", kind), f"{where}: target id")   # it names evidence files
    return Target(id=target_id, kind=kind, url=url.rstrip("/") or "/", ca_file=ca_file,
                  token=data.get("token"), tokens={str(k): str(v) for k, v in tokens.items()}, files=files)


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
    """vigie.toml: [[targets]] tables, and optionally profiles, out, lang."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VigieError(f"{path}: configuration file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise VigieError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise VigieError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(data) - CONFIG_KEYS
    if unknown:
        raise VigieError(f"{path}: unknown key '{min(unknown)}' (allowed: {', '.join(sorted(CONFIG_KEYS))})")
    targets = data.get("targets", [])
    if not isinstance(targets, list) or not all(isinstance(t, dict) for t in targets):
        raise VigieError(f"{path}: targets must be [[targets]] tables")
    # relative CA paths are relative to the configuration file
    for t in targets:
        if isinstance(t.get("ca_file"), str) and not Path(t["ca_file"]).is_absolute():
            t["ca_file"] = str((path.parent / t["ca_file"]).resolve())
        if isinstance(t.get("files"), list):   # so are a documents target's files
            t["files"] = [str((path.parent / f).resolve()) if isinstance(f, str) and f and not Path(f).is_absolute()
                          else f for f in t["files"]]
        if t.get("kind") in ("source", "documents") and isinstance(t.get("url"), str) and t["url"] \
                and not Path(t["url"]).is_absolute():   # so is a source folder
            t["url"] = str((path.parent / t["url"]).resolve())
    result = {"targets": [make_target(t, f"{path}: target {i + 1}") for i, t in enumerate(targets)]}
    profiles = data.get("profiles", [])
    if not isinstance(profiles, list) or not all(isinstance(p, str) for p in profiles):
        raise VigieError(f"{path}: profiles must be a list of profile ids")
    result["profiles"] = profiles
    table = data.get("limits", {})
    if not isinstance(table, dict):
        raise VigieError(f"{path}: limits must be a [limits] table")
    result["limits"] = make_limits(table, f"{path}: [limits]")
    result["product"] = make_product(data.get("product"), f"{path}: [product]")
    for key in ("out", "lang"):
        if key in data:
            result[key] = str(data[key])
    from .render.i18n import LANGS

    # checked now, not once the campaign has run
    if result.get("lang", LANGS[0]) not in LANGS:
        raise VigieError(f"{path}: lang must be one of {', '.join(LANGS)}, not '{result['lang']}'")
    ids = [t.id for t in result["targets"]]
    if len(set(ids)) != len(ids):
        raise VigieError(f"{path}: two targets share an id")
    return result
