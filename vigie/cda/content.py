"""The CI-SIS test content (ANS, TestContenuCDA): a user's copy recorded in vigie's package cache.

vigie ships no copy: `vigie packages add-cisis DIR|ZIP` copies the parts vigie uses (schematrons/,
jeuxDeValeurs/, infrastructure/) into `<FHIR package cache>/ans.cisis.cda#<version>/`, with a manifest
(version and date read from the content, sha256 digest over its files). The version is the newest volet
version among the schematrons (CI-SIS_<volet>_<version>.sch); the date the newest history date of their
headers."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import VigieError

PACKAGE = "ans.cisis.cda"
PARTS = ("schematrons", "jeuxDeValeurs", "infrastructure")
MANIFEST = "vigie-cisis.json"
INSTRUCTION = "vigie packages add-cisis DIR|ZIP (a copy of the ANS test content TestContenuCDA)"
MAX_BYTES = 1 << 30          # a zip that would unpack to more is refused (a zip bomb)
VERSION = re.compile(r"^CI-SIS_.+_(\d{4}\.\d{2})\.sch$")
DATE = re.compile(r"\b(\d{2})/(\d{2})/(\d{4})\b")


class ContentError(VigieError):
    """The CI-SIS content is missing or not what it should be."""


@dataclass(frozen=True)
class CisisContent:
    root: Path           # holds schematrons/, jeuxDeValeurs/, infrastructure/
    version: str
    date: str
    digest: str

    @property
    def schematrons(self) -> Path:
        return self.root / "schematrons"

    @property
    def xsd(self) -> Path:
        return self.root / "infrastructure" / "cda" / "CDA_extended.xsd"

    def to_json(self) -> dict:
        return {"package": f"{PACKAGE}#{self.version}", "date": self.date, "digest": self.digest,
                "folder": str(self.root)}


def cache_root() -> Path:
    from ..fhir.cache import default_root
    return default_root()


def _files(root: Path) -> list[Path]:
    return sorted(p for part in PARTS for p in (root / part).rglob("*") if p.is_file() and not p.is_symlink())


def digest_of(root: Path) -> str:
    h = hashlib.sha256()
    for f in _files(root):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return "sha256:" + h.hexdigest()


def describe(root: Path) -> tuple[str, str]:
    """(version, date) of the content: the newest volet version and the newest header history date."""
    versions, dates = [], []
    for sch in (root / "schematrons").glob("CI-SIS_*.sch"):
        if m := VERSION.match(sch.name):
            versions.append(m.group(1))
        head = sch.read_text(encoding="utf-8", errors="replace")[:6000]
        dates += [f"{y}-{mo}-{d}" for d, mo, y in DATE.findall(head) if 1 <= int(mo) <= 12 and 1 <= int(d) <= 31]
    if not versions:
        raise ContentError(f"{root}: no CI-SIS_<volet>_<version>.sch in schematrons/: not the CI-SIS test content")
    return max(versions), max(dates, default="unknown")


def _content_root(folder: Path) -> Path:
    """The folder holding schematrons/ (the given one, or the single folder a zip wraps it in)."""
    if (folder / "schematrons").is_dir():
        return folder
    inner = [d for d in folder.iterdir() if d.is_dir() and (d / "schematrons").is_dir()]
    if len(inner) == 1:
        return inner[0]
    raise ContentError(f"{folder}: no schematrons/ folder: not the CI-SIS test content (TestContenuCDA)")


def _unzip(path: Path, into: Path) -> None:
    try:
        with zipfile.ZipFile(path) as z:
            members = z.infolist()
            if sum(m.file_size for m in members) > MAX_BYTES:
                raise ContentError(f"{path}: refused: it unpacks to more than {MAX_BYTES >> 20} MB")
            for m in members:
                name = PurePosixPath(m.filename)
                if name.is_absolute() or ".." in name.parts:
                    raise ContentError(f"{path}: refused: member {m.filename!r} escapes the folder")
                if not any(p in PARTS for p in name.parts):
                    continue
                target = into / Path(*name.parts)
                if m.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(m) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ContentError(f"{path}: not a readable zip: {exc}") from None


def add_content(source: str | os.PathLike, root: Path | None = None) -> CisisContent:
    """Records a copy of the content at `source` (a folder or a zip) in the cache; returns it as stored."""
    source = Path(source)
    root = Path(root) if root else cache_root()
    if not source.exists():
        raise ContentError(f"{source}: no such folder or zip")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".cisis-") as work:
        if source.is_dir():
            src = _content_root(source)
        else:
            _unzip(source, Path(work) / "unzipped")
            src = _content_root(Path(work) / "unzipped")
        missing = [p for p in PARTS if not (src / p).is_dir()]
        if missing:
            raise ContentError(f"{source}: no {missing[0]}/ folder: not the CI-SIS test content (TestContenuCDA)")
        staged = Path(work) / "content"
        for part in PARTS:
            shutil.copytree(src / part, staged / part, symlinks=False, ignore_dangling_symlinks=True,
                            ignore=shutil.ignore_patterns("*.jar", "*.class", "rapports"))
        version, date = describe(staged)
        content = CisisContent(staged, version, date, digest_of(staged))
        folder = root / f"{PACKAGE}#{version}"
        if folder.exists():
            shutil.rmtree(folder)
        (staged / MANIFEST).write_text(json.dumps({"package": f"{PACKAGE}#{version}", "version": version,
                                                    "date": date, "digest": content.digest,
                                                    "source": str(source.resolve())}, indent=1), encoding="utf-8")
        staged.rename(folder)
    return CisisContent(folder, version, date, content.digest)


def installed(root: Path | None = None) -> list[CisisContent]:
    root = Path(root) if root else cache_root()
    found = []
    for folder in sorted(root.glob(f"{PACKAGE}#*")) if root.is_dir() else []:
        try:
            data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            found.append(CisisContent(folder, str(data["version"]), str(data["date"]), str(data["digest"])))
        except (OSError, ValueError, KeyError, TypeError):
            continue    # half-written or foreign: not a recorded content
    return found


def find_content(root: Path | None = None) -> CisisContent:
    """The newest content recorded; ContentError with the instruction when there is none."""
    found = installed(root)
    if not found:
        raise ContentError(f"the CI-SIS test content is not in vigie's package cache {root or cache_root()}: "
                           f"add it with {INSTRUCTION}")
    return max(found, key=lambda c: c.version)
