"""The standard FHIR package cache: `<root>/<id>#<version>/package/...`, root from FHIR_PACKAGE_CACHE or
~/.fhir/packages. Packages are extracted into a temporary folder inside the cache and renamed into place,
so a refused or interrupted extraction leaves nothing half-written."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .packages import Package, open_package
from .tarball import SAFE_NAME, SAFE_VERSION, PackageError


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
        return open_package(folder)

    def list(self) -> list[tuple[str, str, Path]]:
        if not self.root.is_dir():
            return []
        out = []
        for entry in sorted(self.root.iterdir()):
            if "#" in entry.name and (entry / "package" / "package.json").is_file():
                pid, _, version = entry.name.partition("#")
                out.append((pid, version, entry))
        return out

    def add_bytes(self, files: dict[str, bytes], source: str) -> Package:
        """Add an already read (and checked) tarball; returns the package as stored in the cache."""
        pkg = Package.from_files(files, source)
        pkg.validate_json()
        target = self.folder(pkg.id, pkg.version)
        if (target / "package" / "package.json").is_file():
            return open_package(target)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        try:
            base = tmp.resolve()
            for name, data in files.items():
                dest = (tmp / name).resolve()
                if base not in dest.parents:      # tarball.py refused these already; belt and braces
                    raise PackageError(f"{source}: refused: {name!r} escapes the package folder")
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
            tmp.chmod(0o755)     # mkdtemp makes it private; a package cache folder is readable like any other
            os.replace(tmp, target)
        except OSError as exc:
            raise PackageError(f"cannot write to the package cache {self.root}: {exc.strerror or exc}") from None
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return pkg    # already in memory: no need to read back the files just written

    def add(self, path: str | os.PathLike) -> Package:
        from .tarball import read_tarball
        p = Path(path)
        if p.is_dir():
            raise PackageError(f"{p}: give a package .tgz file")
        return self.add_bytes(read_tarball(p), str(p))
