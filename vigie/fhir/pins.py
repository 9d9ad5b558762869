"""Is a package what it says it is? Packages a certification relies on are pinned to their official content;
any other package must at least not contradict its own name and version.

A pin holds the sha256 of the official tarball (as published; `sha256sum` checks it) and the digest of the JSON
files it holds (`content_digest`), which is what remains to check in a package cache folder, where the tarball
is gone. Only packages whose official tarball could be verified are pinned: the tarball digests are those the
sources published, and tests/test_fhir_packages.py derives both digests again from the official tarballs."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .tarball import PackageError


@dataclass(frozen=True)
class Pin:
    tarball: str    # sha256 of the official .tgz
    content: str    # content_digest() of its files


PINS = {
    ("hl7.fhir.r4.core", "4.0.1"): Pin(
        "b090bf929e1f665cf2c91583720849695bc38d2892a7c5037c56cb00817fb091", "4d79f38325ff9067b34330d61fc7a6ecdb45ee3e2aa1eeca61c37f5147758050"),
    ("hl7.fhir.fr.core", "2.2.0"): Pin(
        "085e61bf579829a6d5520c6f388d763d27ba400f9f6ca548bc88da5545ba13f9", "0a725a7aadf07864deb622c9c342ec50b534f305a13c7133a2e488decadc0185"),
    ("hl7.fhir.fr.core", "2.1.0"): Pin(
        "86e36ed8d4f5f4528892ddd25a7236688e9c0dddc64a74f75f195339623d2c5d", "ebc747d3065e5ce38d91bf71bc3975fe0d4e39aa6b7fe0d51cb7e52f26b54d27"),
    ("ans.fhir.fr.sas", "1.1.0"): Pin(
        "629fda341542d3ea92a7b81b09894abc09436d83ccc635d81ec032f033843d86", "7fbd1ce200607072720bfb48e2fbce4aef4d86007124fcfbc86b673e1e74727c"),
    ("ans.fhir.fr.annuaire", "1.2.0-snapshot-2"): Pin(
        "55c79687b19e78d013b6e482405a1721654dba4b8fbe86882f4560eebb449893", "2db58c324012d738a2756a02110f2270e215c537bf67a85addac3402b2bb2aaf"),
}


def content_digest(files: dict[str, bytes]) -> str:
    """sha256 over the package's JSON files (what vigie reads of a package), each as its path and its sha256."""
    digest = hashlib.sha256()
    for name in sorted(n for n in files if n.startswith("package/") and n.endswith(".json")):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


def check_official(key: tuple[str, str], files: dict[str, bytes], source: str, tarball: str | None = None) -> None:
    """Refuses a package named like a pinned one that is not it: its tarball's sha256 when read from a tarball,
    its files' digest when read from a folder."""
    pin = PINS.get(key)
    if pin is None:
        return
    name = "#".join(key)
    if tarball is not None and tarball != pin.tarball:
        raise PackageError(f"{source}: refused: not the official {name} (its sha256 is {tarball}, the official "
                           f"tarball's is {pin.tarball})")
    if tarball is None and content_digest(files) != pin.content:
        raise PackageError(f"{source}: refused: its files differ from those of the official {name} (add the "
                           f"official tarball, sha256 {pin.tarball}, with `vigie packages add --replace`)")


def check_guide(pkg) -> None:
    """A package's own ImplementationGuide names the package: it must name this one, at this version."""
    for entry in pkg.index:
        if entry.get("resourceType") != "ImplementationGuide":
            continue
        guide = pkg.resource(entry["filename"])
        claimed = (guide.get("packageId"), guide.get("version")) if isinstance(guide, dict) else (None, None)
        if claimed[0] is not None and claimed[0] != pkg.id or claimed[1] is not None and claimed[1] != pkg.version:
            raise PackageError(f"{pkg.source}: refused: package.json says {pkg.key} but its ImplementationGuide "
                               f"{entry['filename'].removeprefix('package/')} is {claimed[0]}#{claimed[1]}")
