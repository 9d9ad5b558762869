"""FHIR packages (npm-style, `package/package.json` + `package/<Type>-<id>.json`) and the set of loaded
packages that resolves canonical URLs. Resources are parsed lazily: hl7.fhir.r4.core holds 4,500 files and
a validation touches a few hundred."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import pins, tarball
from .tarball import (
    PackageError,
    check_json_members,
    package_manifest,
    parse_json,
    read_file,
    read_tarball_bytes,
)

INDEXED_TYPES = ("StructureDefinition", "ValueSet", "CodeSystem", "SearchParameter", "CapabilityStatement",
                 "ImplementationGuide")
CORE_ID = "hl7.fhir.r4.core"


@dataclass
class Package:
    id: str
    version: str
    manifest: dict
    source: str
    _files: dict[str, bytes] = field(repr=False, default_factory=dict)
    _parsed: dict[str, dict] = field(repr=False, default_factory=dict)
    index: list[dict] = field(repr=False, default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.id}#{self.version}"

    @property
    def dependencies(self) -> dict[str, str]:
        return dict(self.manifest.get("dependencies") or {})

    @property
    def canonical(self) -> str | None:
        return self.manifest.get("canonical")

    @classmethod
    def from_files(cls, files: dict[str, bytes], source: str, sha256: str | None = None) -> Package:
        """The package these files make, refused when it is not what it says (`pins`); `sha256` is the
        digest of the tarball they came from, None for a folder."""
        manifest = package_manifest(files, source)
        pins.check_official((manifest["name"], manifest["version"]), files, source, sha256)
        pkg = cls(manifest["name"], manifest["version"], manifest, source, files)
        pkg.index = pkg._build_index()
        pins.check_guide(pkg)
        return pkg

    @classmethod
    def from_tgz(cls, path: Path) -> Package:
        raw = read_file(path)
        return cls.from_files(read_tarball_bytes(raw, str(path)), str(path), hashlib.sha256(raw).hexdigest())

    @classmethod
    def from_dir(cls, path: Path) -> Package:
        root = path / "package" if (path / "package" / "package.json").is_file() else path
        if not (root / "package.json").is_file():
            raise PackageError(f"{path}: not a FHIR package folder: no package.json")
        files, total = {}, 0
        for file in root.rglob("*"):
            if file.is_symlink():
                continue     # a cache folder is ours, but a link could point anywhere: ignore it
            if file.is_file():
                rel = file.relative_to(root).as_posix()
                if rel.endswith(".json") or rel == "package.json":
                    total += file.stat().st_size      # bounded as a tarball's members are
                    if file.stat().st_size > tarball.MAX_MEMBER_BYTES or total > tarball.MAX_TOTAL_BYTES:
                        raise PackageError(f"{path}: refused: {rel} makes the package too large to read")
                    files["package/" + rel] = file.read_bytes()
        return cls.from_files(files, str(path))

    def _build_index(self) -> list[dict]:
        raw = self._files.get("package/.index.json")
        if raw is not None:
            try:
                idx = json.loads(raw)
                entries = idx["files"]
                if isinstance(entries, list) and all(isinstance(e, dict) and "filename" in e for e in entries):
                    return [dict(e, filename="package/" + e["filename"]) for e in entries
                            if "package/" + e["filename"] in self._files]
            except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
                pass    # a broken index is not fatal: scan the files instead
        entries = []
        for name in self._files:
            if not name.endswith(".json") or name.count("/") != 1 or name.endswith(("package.json", ".index.json")):
                continue
            res = self.resource(name)
            if isinstance(res, dict) and isinstance(res.get("resourceType"), str):
                entries.append({"filename": name, "resourceType": res["resourceType"], "id": res.get("id"),
                                "url": res.get("url"), "version": res.get("version"),
                                "type": res.get("type"), "kind": res.get("kind")})
        return entries

    def resource(self, filename: str) -> dict | None:
        if filename not in self._parsed:
            raw = self._files.get(filename)
            if raw is None:
                return None
            self._parsed[filename] = parse_json(raw, filename, self.source)
        return self._parsed[filename]

    def examples(self):
        """(filename, resource) of the examples the package ships (package/example/)."""
        for name in sorted(self._files):
            if name.startswith("package/example/") and name.endswith(".json"):
                res = self.resource(name)
                if isinstance(res, dict) and "resourceType" in res:
                    yield name, res

    def validate_json(self) -> None:
        check_json_members(self._files, self.source)


_LOADED: dict[tuple, Package] = {}


def open_package(path: str | os.PathLike) -> Package:
    """A package from a .tgz or a folder; the same file is read once per process."""
    p = Path(path)
    if not p.exists():
        raise PackageError(f"{p}: no such package file or folder")
    stat = p.stat()
    key = (str(p.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _LOADED:
        _LOADED[key] = Package.from_dir(p) if p.is_dir() else Package.from_tgz(p)
    return _LOADED[key]


# where the canonical URLs of the packages a guide most often depends on start: to name, among the dependencies
# not loaded, the one that would define a URL the validator could not resolve
PUBLISHERS = {"hl7.terminology": ("http://terminology.hl7.org/",),
              "hl7.fhir.uv.extensions": ("http://hl7.org/fhir/StructureDefinition/", "http://hl7.org/fhir/ValueSet/",
                                         "http://hl7.org/fhir/CodeSystem/"),
              "ans.fr.terminologies": ("https://mos.esante.gouv.fr/", "https://smt.esante.gouv.fr/",
                                       "https://interop.esante.gouv.fr/", "urn:oid:1.2.250.1.213.")}


def split_canonical(url: str) -> tuple[str, str | None]:
    base, _, version = url.partition("|")
    return base, (version or None)


class PackageSet:
    """The packages loaded for a validation, with an index of their conformance resources by canonical URL."""

    def __init__(self, packages: list[Package], missing: list[str] = ()):
        self.packages = list(packages)
        self.missing = list(missing)
        self._by_url: dict[str, list[tuple[Package, dict]]] = {}
        self._extra: dict[str, list[dict]] = {}
        for pkg in self.packages:
            for entry in pkg.index:
                if entry.get("url") and entry.get("resourceType") in INDEXED_TYPES + ("NamingSystem",):
                    self._by_url.setdefault(entry["url"], []).append((pkg, entry))

    def add_resource(self, resource: dict) -> None:
        """A conformance resource given outside any package (a local profile file)."""
        if isinstance(resource, dict) and resource.get("url"):
            self._extra.setdefault(resource["url"], []).insert(0, resource)

    def resolve(self, url: str, resource_type: str | None = None) -> dict | None:
        """The resource with this canonical URL (`url|version` picks a version; else the newest loaded)."""
        if not isinstance(url, str):
            return None
        base, version = split_canonical(url)
        candidates = [r for r in self._extra.get(base, ())
                      if (resource_type is None or r.get("resourceType") == resource_type)
                      and (version is None or r.get("version") == version)]
        if candidates:
            return candidates[0]
        found = [(pkg, e) for pkg, e in self._by_url.get(base, ())
                 if (resource_type is None or e.get("resourceType") == resource_type)
                 and (version is None or e.get("version") == version or version == pkg.version)]
        if not found:
            return None
        pkg, entry = found[-1]
        return pkg.resource(entry["filename"])

    def resources(self, resource_type: str):
        """Every loaded resource of this type (StructureDefinition, ValueSet...)."""
        for pkg in self.packages:
            for entry in pkg.index:
                if entry.get("resourceType") == resource_type:
                    res = pkg.resource(entry["filename"])
                    if res is not None:
                        yield res
        for items in self._extra.values():
            for res in items:
                if res.get("resourceType") == resource_type:
                    yield res

    def urls(self, resource_type: str) -> list[str]:
        out = [u for u, entries in self._by_url.items() if any(e.get("resourceType") == resource_type
                                                               for _, e in entries)]
        out += [u for u, items in self._extra.items() if any(r.get("resourceType") == resource_type for r in items)]
        return sorted(set(out))

    def definitions(self, url: str) -> list[tuple[str, dict]]:
        """(package id, resource) of every loaded definition of this canonical URL, resources added alone
        first (with the id '')."""
        base = split_canonical(url)[0]
        out = [("", r) for r in self._extra.get(base, ())]
        return out + [(pkg.id, pkg.resource(e["filename"])) for pkg, e in self._by_url.get(base, ())]

    def has(self, package_id: str) -> bool:
        return any(p.id == package_id for p in self.packages)

    def holder_of(self, url: str) -> str | None:
        """The dependency not loaded that would define this canonical URL, told by its publisher's URL space;
        None when no missing dependency publishes there."""
        for missing in self.missing:
            prefixes = next((p for pid, p in PUBLISHERS.items() if missing.split("#")[0].startswith(pid)), ())
            if isinstance(url, str) and prefixes and url.startswith(prefixes):
                return missing
        return None


def _sibling(path: Path, dep: str, version: str) -> Path | None:
    """A dependency given as a file beside the package (`<id>-<version>.tgz`, `<id>#<version>`)."""
    for name in (f"{dep}-{version}.tgz", f"{dep}#{version}.tgz", f"{dep}#{version}"):
        candidate = path.parent / name
        if candidate.exists():
            return candidate
    return None


def expect(pkg: Package, key: str, where: str) -> Package:
    """The package, refused unless it is `key` (id#version): a file or folder named after a package must hold it."""
    if pkg.key != key:
        raise PackageError(f"{where} holds {pkg.key}, not {key}: refused")
    return pkg


def load_packages(*specs, cache=None, dependencies: bool = True) -> PackageSet:
    """Load packages given as .tgz files, folders, `id#version` from the package cache, or Package objects,
    with their dependencies (from the cache, or as files beside the given ones). Dependencies that cannot
    be found are listed in `PackageSet.missing`, never silently replaced by another version."""
    from .cache import PackageCache
    cache = cache or PackageCache()
    loaded: dict[str, Package] = {}
    missing: list[str] = []
    queue: list[tuple[Package, Path | None]] = []
    for spec in specs:
        if isinstance(spec, Package):
            queue.append((spec, None))
        elif isinstance(spec, str) and "#" in spec and not Path(spec).exists():
            pid, _, version = spec.partition("#")
            pkg = cache.get(pid, version)
            if pkg is None:
                raise PackageError(f"package {spec} is not in the package cache {cache.root} "
                                   f"(vigie packages install {spec})")
            queue.append((pkg, None))
        else:
            queue.append((open_package(spec), Path(spec)))
    while queue:
        pkg, path = queue.pop(0)
        if pkg.key in loaded:
            continue
        loaded[pkg.key] = pkg
        if not dependencies:
            continue
        for dep, version in pkg.dependencies.items():
            key = f"{dep}#{version}"
            if key in loaded or any(q.key == key for q, _ in queue):
                continue
            sibling = _sibling(path, dep, version) if path is not None else None
            found = expect(open_package(sibling), key, f"{sibling}, beside {path.name},") if sibling \
                else cache.get(dep, version)
            if found is None:
                if key not in missing:
                    missing.append(key)
            else:
                queue.append((found, sibling))
    missing = [m for m in missing if m not in loaded]
    return PackageSet(list(loaded.values()), missing)
