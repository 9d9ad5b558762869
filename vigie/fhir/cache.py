"""The standard FHIR package cache: `<root>/<id>#<version>/package/...`, root from FHIR_PACKAGE_CACHE or
~/.fhir/packages. Packages are extracted into a temporary folder inside the cache and renamed into place,
so a refused or interrupted extraction leaves nothing half-written.

The cache is shared with other tools and is not trusted: a folder must hold the package it is named after,
and a pinned package its official files (`pins`), each time it is read. The first package stored under an
id#version does not win silently: adding one that differs is refused unless `replace` is asked."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from . import pins
from .packages import Package, expect, open_package
from .tarball import SAFE_NAME, SAFE_VERSION, PackageError, read_file, read_tarball_bytes


def default_root() -> Path:
    env = os.environ.get("FHIR_PACKAGE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".fhir" / "packages"


class PackageCache:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root else default_root()

    def folder(self, package_id: str, version: str) -> Path:
        return self.root / f"{package_id}#{version}"

    def get(self, package_id: str, version: str) -> Package | None:
        if not (SAFE_NAME.match(package_id or "") and SAFE_VERSION.match(version or "")):
            return None
        folder = self.folder(package_id, version)
        if not (folder / "package" / "package.json").is_file():
            return None
        return expect(open_package(folder), f"{package_id}#{version}", f"the package cache folder {folder}")

    def list(self) -> list[tuple[str, str, Path]]:
        if not self.root.is_dir():
            return []
        out = []
        for entry in sorted(self.root.iterdir()):
            if "#" in entry.name and (entry / "package" / "package.json").is_file():
                pid, _, version = entry.name.partition("#")
                out.append((pid, version, entry))
        return out

    def add_tarball(self, raw: bytes, source: str, expected: str | None = None, replace: bool = False) -> Package:
        """Adds a package tarball, refused unless it is what it says (and `expected`, id#version, when given);
        returns the package as stored in the cache. A different package already stored under its id#version
        is replaced only when `replace` is asked."""
        files = read_tarball_bytes(raw, source)
        pkg = Package.from_files(files, source, hashlib.sha256(raw).hexdigest())
        if expected is not None:
            expect(pkg, expected, source)
        pkg.validate_json()
        target = self.folder(pkg.id, pkg.version)
        if (target / "package" / "package.json").is_file():
            differs = self._differs(target, files)
            if differs is None:
                return open_package(target)
            if not replace:
                raise PackageError(f"{pkg.key} is already in the package cache {self.root} and {differs}: "
                                   f"refused (give --replace to replace it with {source})")
        self._write(files, target, source)
        return pkg    # already in memory: no need to read back the files just written

    def add(self, path: str | os.PathLike, replace: bool = False) -> Package:
        p = Path(path)
        if p.is_dir():
            raise PackageError(f"{p}: give a package .tgz file")
        return self.add_tarball(read_file(p), str(p), replace=replace)

    @staticmethod
    def _differs(folder: Path, files: dict[str, bytes]) -> str | None:
        """Why the package stored in `folder` is not the one made of `files`; None when it is."""
        try:
            stored = Package.from_dir(folder)
        except PackageError as exc:
            return f"the copy there is refused ({exc})"
        if pins.content_digest(stored._files) != pins.content_digest(files):
            return "its files there differ from this one's"
        return None

    def _write(self, files: dict[str, bytes], target: Path, source: str) -> None:
        """Extracts into a temporary folder, then swaps it with `target` (a replaced package goes last)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        old = None
        try:
            base = tmp.resolve()
            for name, data in files.items():
                dest = (tmp / name).resolve()
                if base not in dest.parents:      # tarball.py refused these already; belt and braces
                    raise PackageError(f"{source}: refused: {name!r} escapes the package folder")
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
            tmp.chmod(0o755)     # mkdtemp makes it private; a package cache folder is readable like any other
            if target.exists() or target.is_symlink():
                old = Path(tempfile.mkdtemp(prefix=".old-", dir=self.root)) / target.name
                os.replace(target, old)
            os.replace(tmp, target)
        except OSError as exc:
            if old is not None and not target.exists():
                os.replace(old, target)
            raise PackageError(f"cannot write to the package cache {self.root}: {exc.strerror or exc}") from None
        finally:
            for leftover in (tmp, old.parent if old else None):
                if leftover is not None and leftover.exists():
                    shutil.rmtree(leftover, ignore_errors=True)
