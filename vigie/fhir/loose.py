"""Conformance resources given as a folder of JSON files without a package.json (an implementation guide's
output folder, a vendor's own profiles): each StructureDefinition, ValueSet, CodeSystem... found is added to
the loaded packages, as `vigie validate --ig DIR` does."""
from __future__ import annotations

from pathlib import Path

from .tarball import PackageError, parse_json

# the resources that other resources name by their canonical url (R4 resource.html#canonical)
CANONICAL_TYPES = frozenset({
    "StructureDefinition", "ValueSet", "CodeSystem", "ConceptMap", "NamingSystem", "ImplementationGuide",
    "SearchParameter", "OperationDefinition", "CapabilityStatement", "Questionnaire", "Measure", "Library",
    "StructureMap", "GraphDefinition", "MessageDefinition", "PlanDefinition", "ActivityDefinition",
})
MAX_FILES = 20000


def conformance_resources(folder: Path) -> list[dict]:
    """The canonical resources of the JSON files under `folder` (Bundles opened); other resources (examples)
    are left out. PackageError for a folder that holds none, a file that is not JSON, or too many files."""
    found = []
    files = sorted(p for p in folder.rglob("*.json") if p.is_file() and p.name != "package.json")
    if len(files) > MAX_FILES:
        raise PackageError(f"{folder}: more than {MAX_FILES} JSON files: give the folder of the guide's resources")
    for path in files:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise PackageError(f"{path}: cannot read: {exc.strerror or exc}") from None
        resource = parse_json(raw, path.name, str(folder))
        for res in _resources(resource):
            if res.get("resourceType") in CANONICAL_TYPES and isinstance(res.get("url"), str):
                found.append(res)
    if not found:
        raise PackageError(f"{folder}: no conformance resource (StructureDefinition, ValueSet, CodeSystem... with "
                           f"a url) among its JSON files")
    return found


def _resources(value):
    if not isinstance(value, dict):
        return
    yield value
    if value.get("resourceType") == "Bundle" and isinstance(value.get("entry"), list):
        for entry in value["entry"]:
            if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                yield entry["resource"]
