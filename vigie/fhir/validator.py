"""The StructureDefinition-driven validator: walks a resource against compiled plans (one per profile)
and returns an OperationOutcome. Issues carry a FHIRPath `expression` in the style of the HL7 validator
(`Patient.identifier[0].system`, `Observation.value.ofType(Quantity)`, `Bundle.entry[0].resource/*Patient/1*/`)."""
from __future__ import annotations

from .packages import CORE_ID, PackageSet, load_packages
from .plan import Node, Plan, TypeRef
from .snapshot import SnapshotBuilder
from .tarball import PackageError
from .terminology import Terminology
from .vitalsigns import relax_component_units

CORE = "http://hl7.org/fhir/StructureDefinition/"
# marks an issue the validator could not judge (a definition, value set or code system not loaded, an invariant
# that could not be evaluated): `missing` names what was missing, `package` the package that would supply it
NOT_JUDGED = "https://vigie.dev/fhir/StructureDefinition/issue-not-judged"


# the HL7 validator's settings vigie honours, with their defaults: `examples` allows example.org URLs
# (documentation); `noHtmlInMarkdown` makes an HTML tag in markdown an error; `validateContains` IGNORE leaves
# contained resources unvalidated; `security-checks` refuses HTML tags in plain strings
OPTIONS = {"examples": False, "noHtmlInMarkdown": False, "validateContains": "CHECK_VALID", "security-checks": False}


class Issue:
    __slots__ = ("code", "expression", "message", "not_judged", "severity", "source")

    def __init__(self, severity, code, expression, message, source=None, not_judged=None):
        self.severity, self.code, self.expression, self.message, self.source = (
            severity, code, expression, message, source)
        self.not_judged = not_judged     # (what was missing, the package that holds it or None)

    def to_json(self) -> dict:
        out = {"severity": self.severity, "code": self.code, "details": {"text": self.message},
               "expression": [self.expression]}
        extensions = []
        if self.source:
            extensions.append({"url": "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-source",
                               "valueString": self.source})
        if self.not_judged:
            missing, package = self.not_judged
            extensions.append({"url": NOT_JUDGED, "extension": [{"url": "missing", "valueString": missing}] + (
                [{"url": "package", "valueString": package}] if package else [])})
        if extensions:
            out["extension"] = extensions
        return out


def not_judged(issue: dict) -> tuple[str, str | None] | None:
    """(what was missing, the package that holds it) of an OperationOutcome issue the validator could not
    judge; None for an issue it judged."""
    for ext in issue.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == NOT_JUDGED:
            parts = {e.get("url"): e.get("valueString") for e in ext.get("extension") or () if isinstance(e, dict)}
            return parts.get("missing") or "?", parts.get("package")
    return None


class Validator:
    """Validates resources against the StructureDefinitions of a package set (which must hold
    hl7.fhir.r4.core). `packages`: a PackageSet, a list of package specs for load_packages, or None for
    hl7.fhir.r4.core 4.0.1 from the package cache. Plans, snapshots and expansions are cached: keep one
    Validator per package set."""

    def __init__(self, packages=None, *, invariants: bool = True, resources: list[dict] = (), options=None):
        if packages is None:
            packages = load_packages(f"{CORE_ID}#4.0.1")
        elif not isinstance(packages, PackageSet):
            packages = load_packages(*packages)
        if not packages.has(CORE_ID):
            raise PackageError(f"{CORE_ID} is not among the loaded packages: the validator needs the FHIR R4 "
                               f"definitions (vigie packages install {CORE_ID}#4.0.1)")
        self.packages = packages
        for res in resources:
            packages.add_resource(res)
        self.invariants = invariants
        # settings of the HL7 validator that change what is judged (see OPTIONS)
        self.options = {k: v for k, v in (options or {}).items() if k in OPTIONS}
        self.tx = Terminology(packages)
        self._plans: dict[str, Plan | None] = {}
        self._snapshots: dict[str, list | None] = {}
        self._keymaps: dict = {}
        self._globals: dict | None = None
        self.slice_expectations: dict = {}
        self._builder = SnapshotBuilder(self._resolve_sd, self.snapshot_of)

    # --- definitions -------------------------------------------------------------------------------
    def _resolve_sd(self, url):
        return self.packages.resolve(url, "StructureDefinition")

    def snapshot_of(self, url: str) -> list | None:
        if url not in self._snapshots:
            self._snapshots[url] = None    # a definition based on itself ends here
            sd = self._resolve_sd(url)
            if sd is None:
                return None
            snap = (sd.get("snapshot") or {}).get("element")
            if not snap and sd.get("differential"):
                try:
                    snap = self._builder.build(sd)
                except PackageError:
                    snap = None
            self._snapshots[url] = snap
        return self._snapshots[url]

    def plan(self, url: str) -> Plan | None:
        if url not in self._plans:
            self._plans[url] = None
            sd = self._resolve_sd(url)
            snap = self.snapshot_of(url) if sd else None
            if sd and snap:
                self._plans[url] = Plan(dict(sd, snapshot={"element": relax_component_units(sd, snap)}))
        return self._plans[url]

    def global_profiles(self, resource_type: str) -> list[str]:
        """Profiles that an ImplementationGuide among the loaded resources declares global for a type."""
        if self._globals is None:
            self._globals = {}
            for ig in self.packages.resources("ImplementationGuide"):
                for g in ig.get("global", ()):
                    if isinstance(g, dict) and g.get("type") and g.get("profile"):
                        self._globals.setdefault(g["type"], []).append(g["profile"])
        return self._globals.get(resource_type, [])

    def type_plan(self, code: str) -> Plan | None:
        return self.plan(code if "/" in code else CORE + code)

    def add_resource(self, resource: dict) -> None:
        """A conformance resource (profile, ValueSet, CodeSystem) given outside the packages."""
        self.packages.add_resource(resource)
        self._plans.clear()
        self._snapshots.clear()
        self._keymaps.clear()
        self.slice_expectations.clear()
        self._globals = None
        self.tx = Terminology(self.packages)

    # --- structure helpers used by the walker ------------------------------------------------------
    def children(self, node: Node, tref: TypeRef | None) -> list[Node]:
        if node.children:
            return node.children
        if node.content_ref:
            # the recursion repeats the base definition of the element, not a profile's constraints on it
            base = self.type_plan(node.content_ref.split(".")[0])
            ref = base.by_path.get(node.content_ref) if base else None
            if ref is None:
                ref = node.plan.by_id.get(node.content_ref) or node.plan.by_path.get(node.content_ref)
            return self.children(ref, None) if ref is not None and ref is not node else []
        if node.slice_name is not None:
            parent_id, _, last = node.id.rpartition(".")
            sliced = node.plan.by_id.get((parent_id + "." if parent_id else "") + last.split(":", 1)[0])
            if sliced is not None and sliced.children:
                return sliced.children
        if tref is None:
            if len({t.code for t in node.types}) != 1:
                return []
            tref = node.types[0]
        plan = None
        for profile in tref.profiles:
            plan = self.plan(profile)
            if plan is not None:
                break
        if plan is None:
            plan = self.type_plan(tref.code)
        return plan.root.children if plan and plan.root else []

    def required_children(self, node: Node, tref: TypeRef | None) -> list[Node]:
        key = ("required", id(node), tref)
        found = self._keymaps.get(key)
        if found is None:
            found = [c for c in self.children(node, tref) if c.min > 0]
            self._keymaps[key] = found
        return found

    def keymap(self, node: Node, tref: TypeRef | None) -> dict:
        key = (id(node), tref)
        km = self._keymaps.get(key)
        if km is None:
            km = {}
            for child in self.children(node, tref):
                for name, t in child.json_keys():
                    km.setdefault(name, (child, t))
            self._keymaps[key] = km
        return km

    # --- the API -----------------------------------------------------------------------------------
    def validate(self, resource, profiles=()) -> dict:
        """Validate one resource (a dict parsed from JSON) against its base definition, the given profiles
        and the profiles it claims in meta.profile; returns an OperationOutcome dict."""
        from .walker import Run
        run = Run(self, resource)
        try:
            run.validate_root(resource, list(profiles))
        except RecursionError:
            run.add("fatal", "too-costly", "$this", "the resource is nested too deeply to be validated")
        except Exception as exc:  # noqa: BLE001 -- a bug of ours must give an outcome, not crash the caller
            run.add("fatal", "exception", "$this",
                    f"internal error of the validator: {type(exc).__name__}: {exc} (please report it)")
        return run.outcome()


def has_errors(outcome: dict) -> bool:
    return any(i.get("severity") in ("error", "fatal") for i in outcome.get("issue", ()))


__all__ = ["NOT_JUDGED", "OPTIONS", "Issue", "Validator", "has_errors", "not_judged"]
