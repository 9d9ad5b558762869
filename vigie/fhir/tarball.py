"""Reading npm-style FHIR package tarballs defensively: a package is data from the outside, so a member
that could escape the extraction folder (absolute path, `..`, link, device) or exhaust memory is refused
before anything is written."""
from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
import zlib
from pathlib import Path, PurePosixPath

from ..errors import VigieError

MAX_MEMBER_BYTES = 128 * 1024 * 1024   # hl7.fhir.r4.core's biggest file is ~6 MB
MAX_TOTAL_BYTES = 1024 * 1024 * 1024
MAX_MEMBERS = 50_000
# package ids and versions become folder names (`<id>#<version>`): keep them to a safe alphabet
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
SAFE_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,100}$")


class PackageError(VigieError):
    """A package that cannot be read or is refused."""


def _member_path(name: str, source: str) -> str:
    if not name or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise PackageError(f"{source}: refused: absolute path in archive: {name!r}")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if any(p == ".." for p in parts):
        raise PackageError(f"{source}: refused: path traversal in archive: {name!r}")
    return "/".join(p for p in parts if p not in ("", "."))


def read_tarball(path: Path) -> dict[str, bytes]:
    """Every regular file of the tarball, by its path inside the archive (`package/...`)."""
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PackageError(f"{source}: cannot read: {exc.strerror or exc}") from None
    return read_tarball_bytes(raw, source)


def read_tarball_bytes(raw: bytes, source: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    total = 0
    try:
        # stream mode: the gzip stream is read once, in order, never seeked
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r|*") as tar:
            for count, member in enumerate(tar, 1):
                if count > MAX_MEMBERS:
                    raise PackageError(f"{source}: refused: more than {MAX_MEMBERS} members")
                name = _member_path(member.name, source)
                if member.isdir():
                    continue
                if member.issym() or member.islnk():
                    raise PackageError(f"{source}: refused: link in archive: {member.name!r}")
                if not member.isfile():
                    raise PackageError(f"{source}: refused: special file in archive: {member.name!r}")
                if member.size > MAX_MEMBER_BYTES:
                    raise PackageError(f"{source}: refused: member {member.name!r} is too large "
                                       f"({member.size} bytes)")
                total += member.size
                if total > MAX_TOTAL_BYTES:
                    raise PackageError(f"{source}: refused: archive expands beyond {MAX_TOTAL_BYTES} bytes")
                if name in files:
                    raise PackageError(f"{source}: refused: duplicate member {member.name!r}")
                fileobj = tar.extractfile(member)
                files[name] = fileobj.read() if fileobj else b""
    except PackageError:
        raise
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise PackageError(f"{source}: not a readable package tarball: {exc}") from None
    if not files:
        raise PackageError(f"{source}: empty archive")
    return files


def package_manifest(files: dict[str, bytes], source: str) -> dict:
    """package.json, checked: a package must say who it is, in names that are safe as folder names."""
    raw = files.get("package/package.json")
    if raw is None:
        raise PackageError(f"{source}: not a FHIR package: no package/package.json")
    try:
        manifest = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PackageError(f"{source}: package.json is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise PackageError(f"{source}: package.json is not a JSON object")
    name, version = manifest.get("name"), manifest.get("version")
    if not isinstance(name, str) or not SAFE_NAME.match(name):
        raise PackageError(f"{source}: package.json has no valid name: {name!r}")
    if not isinstance(version, str) or not SAFE_VERSION.match(version):
        raise PackageError(f"{source}: package.json has no valid version: {version!r}")
    deps = manifest.get("dependencies", {})
    if not isinstance(deps, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in deps.items()):
        raise PackageError(f"{source}: package.json dependencies must map names to versions")
    return manifest


def check_json_members(files: dict[str, bytes], source: str) -> None:
    """Refuse a package whose JSON files do not parse: better at install time than mid-validation."""
    for name, raw in files.items():
        if name.endswith(".json"):
            try:
                json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                raise PackageError(f"{source}: {name} is not valid JSON: {exc}") from None
