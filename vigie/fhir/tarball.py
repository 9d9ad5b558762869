"""Reading npm-style FHIR package tarballs defensively: a package is data from the outside, so a member
that could escape the extraction folder (absolute path, `..`, link, device) or exhaust memory is refused
before anything is written.

The whole package is held in memory, so what it expands to is bounded twice: by size, and by its ratio to the
compressed file (JSON packages expand 8 to 13 times: hl7.fhir.r4.core's 4.5 MB hold 38 MB). Both are checked
before extraction (the size gzip announces in its trailer) and during it (the bytes actually decompressed,
which a crafted trailer cannot hide)."""
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
MAX_TOTAL_BYTES = 300 * 1024 * 1024    # expanded: hl7.fhir.r4.core is 38 MB
MAX_RATIO = 40                         # expanded / compressed size, above this floor:
RATIO_FLOOR = 16 * 1024 * 1024         # a small package may compress better, and does no harm
MAX_MEMBERS = 50_000
MAX_JSON_DEPTH = 100                   # hl7.fhir.r4.core nests 19 deep; deeper is not a FHIR resource
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


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PackageError(f"{path}: cannot read: {exc.strerror or exc}") from None


def read_tarball(path: Path) -> dict[str, bytes]:
    """Every regular file of the tarball, by its path inside the archive (`package/...`)."""
    return read_tarball_bytes(read_file(path), str(path))


def expansion_limit(compressed: int) -> int:
    """How many bytes a package of this compressed size may expand to."""
    return min(MAX_TOTAL_BYTES, max(RATIO_FLOOR, MAX_RATIO * compressed))


def _too_large(source: str, limit: int, what: str = "expands beyond") -> PackageError:
    return PackageError(f"{source}: refused: the package {what} {limit} bytes (at most {MAX_RATIO} times its "
                        f"compressed size, and {MAX_TOTAL_BYTES} bytes)")


class _Bounded(io.RawIOBase):
    """The decompressed stream, refused as soon as it goes past its limit."""

    def __init__(self, stream, limit: int, source: str):
        self.stream, self.limit, self.source, self.read_bytes = stream, limit, source, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.stream.read(len(buffer))
        self.read_bytes += len(data)
        if self.read_bytes > self.limit:
            raise _too_large(self.source, self.limit)
        buffer[:len(data)] = data
        return len(data)


def _decompressed(raw: bytes, source: str, limit: int) -> io.RawIOBase:
    if raw[:2] != b"\x1f\x8b":   # not gzip: a plain tar, read as it is
        return _Bounded(io.BytesIO(raw), limit, source)
    announced = int.from_bytes(raw[-4:], "little")   # gzip's trailer: the size modulo 4 GiB, as the packer says
    if announced > limit:
        raise _too_large(source, limit, f"announces {announced} bytes once expanded, more than")
    return _Bounded(gzip.GzipFile(fileobj=io.BytesIO(raw), mode="rb"), limit, source)


def read_tarball_bytes(raw: bytes, source: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    total = 0
    limit = expansion_limit(len(raw))
    try:
        # stream mode: the gzip stream is read once, in order, never seeked
        with tarfile.open(fileobj=_decompressed(raw, source, limit), mode="r|") as tar:
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
                if total > limit:
                    raise _too_large(source, limit)
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
    manifest = parse_json(raw, "package.json", source)
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


def parse_json(raw: bytes, name: str, source: str):
    """A JSON member of a package, refused when it does not parse or nests deeper than MAX_JSON_DEPTH (the
    validator and the report walk resources recursively)."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise PackageError(f"{source}: {name} is nested too deep to be read (more than {MAX_JSON_DEPTH} "
                           "levels)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PackageError(f"{source}: {name} is not valid JSON: {exc}") from None
    if json_depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise PackageError(f"{source}: {name} is nested more than {MAX_JSON_DEPTH} levels deep")
    return value


def json_depth(value, stop: int) -> int:
    """How deep arrays and objects nest in `value` (without recursion), or stop + 1 once deeper than stop."""
    if not isinstance(value, (dict, list)):
        return 0
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > stop:
            return depth
        deepest = max(deepest, depth)
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


def check_json_members(files: dict[str, bytes], source: str) -> None:
    """Refuse a package whose JSON files do not parse: better at install time than mid-validation."""
    for name, raw in files.items():
        if name.endswith(".json"):
            parse_json(raw, name, source)
