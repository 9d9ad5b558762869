"""Checks on a value against its element definition: fixed and pattern values, bindings and code systems,
reference target types, ranges and lengths."""
from __future__ import annotations

import datetime as dt
import json
import re

from .plan import Node, Plan
from .slicing import contains_pattern

CORE = "http://hl7.org/fhir/StructureDefinition/"


class ValueChecks:
    """Mixed into walker.Run."""

    def check_value(self, value, node: Node, code, path, plan):
        if node is None:
            return
        if node.fixed is not None and value != node.fixed and not _numbers_equal(value, node.fixed):
            self.fixed_mismatch(value, node.fixed, path, plan)
        elif node.pattern is not None and not contains_pattern(value, node.pattern):
            self.add("error", "value", path, f"Value {_show(value)} does not match the pattern {_show(node.pattern)}"
                     + _from(plan), plan.label)
        if code == "Coding":
            self.warn_systemless(value, path)
        elif code == "CodeableConcept" and isinstance(value, dict):
            for i, c in enumerate(_list(value.get("coding"))):
                self.warn_systemless(c, f"{path}.coding[{i}]")
        if node.binding and code in ("code", "Coding", "CodeableConcept", "Quantity", "string", "uri"):
            self.check_binding(value, node, code, path, plan)
        elif code == "Coding":
            self.check_coding_system(value, path)
        elif code == "CodeableConcept" and isinstance(value, dict):
            for i, c in enumerate(_list(value.get("coding"))):
                self.check_coding_system(c, f"{path}.coding[{i}]")
        if code == "Reference" and isinstance(value, dict):
            self.check_reference(value, node, path)
            self.check_aggregation(value, node, path)
            self.check_resolves_locally(value, path)
        if node.max_length and isinstance(value, str) and len(value) > node.max_length:
            self.add("error", "too-long", path, f"the value is longer than the maximum length {node.max_length}")
        if node.min_value is not None or node.max_value is not None:
            self.check_range(value, node, path)

    def fixed_mismatch(self, value, fixed, path, plan):
        """Where an instance differs from a fixed[x] value: each extra, missing or different property."""
        if isinstance(value, dict) and isinstance(fixed, dict):
            for key in value:
                if key not in fixed:
                    self.add("error", "value", f"{path}.{key}", f"The element {key} is present in the instance "
                             f"but not allowed in the applicable fixed value specified in profile" + _from(plan),
                             plan.label)
            for key, want in fixed.items():
                if key not in value:
                    self.add("error", "value", path, f"The element {key} is missing from the instance but the "
                             f"applicable fixed value requires it" + _from(plan), plan.label)
                elif value[key] != want and not _numbers_equal(value[key], want):
                    self.fixed_mismatch(value[key], want, f"{path}.{key}", plan)
            return
        self.add("error", "value", path, f"Value is {_show(value)} but must be {_show(fixed)}" + _from(plan),
                 plan.label)

    def warn_systemless(self, coding, path):
        """A code without its system means nothing outside the sender (the HL7 validator warns too)."""
        if isinstance(coding, dict) and "code" in coding and "system" not in coding:
            self.add("warning", "informational", path, "A code with no system has no defined meaning, and it "
                     "cannot be validated. A system should be provided")

    def check_coding_system(self, coding, path):
        if not isinstance(coding, dict):
            return
        system, code = coding.get("system"), coding.get("code")
        if isinstance(system, str):
            cs = self.v.tx.code_system(system)
            if cs is not None and (cs.get("content") == "supplement" or cs.get("supplements")):
                # a supplement adds designations or properties to another code system: not a system itself
                self.add("error", "business-rule", path + ".system",
                         f"The CodeSystem {system} is a supplement of {cs.get('supplements')}: it cannot be "
                         f"the system of a code")
                return
        if isinstance(system, str) and isinstance(code, str):
            known = self.v.tx.code_known(system, code)
            if known is False:
                self.add("error", "code-invalid", path + ".code",
                         f"Unknown code '{code}' in the CodeSystem '{system}'")

    def check_binding(self, value, node, code, path, plan):
        strength, vs_url = node.binding
        if strength not in ("required", "extensible"):
            if code in ("Coding", "CodeableConcept"):
                self.check_value(value, _NoBinding(node), code, path, plan)
            return
        exp = self.v.tx.expand(vs_url)
        if code == "code" or code in ("string", "uri"):
            codings, text_only = [(None, value, path)], False
        elif code == "Coding":
            codings, text_only = [(value.get("system"), value.get("code"), path)], False
        elif code == "Quantity":
            if not value.get("code"):
                return
            codings, text_only = [(value.get("system"), value.get("code"), path)], False
        else:
            raw = _list(value.get("coding"))
            codings = [(c.get("system"), c.get("code"), f"{path}.coding[{i}]") for i, c in enumerate(raw)
                       if isinstance(c, dict)]
            text_only = not codings
        for system, c, where in codings:
            if system and isinstance(c, str) and self.v.tx.code_known(system, c) is False:
                self.add("error", "code-invalid", where + ".code" if code != "code" else where,
                         f"Unknown code '{c}' in the CodeSystem '{system}'")
                if strength == "required":
                    return
                # extensible (terminologies.html#extensible: codes "SHALL be from the specified value set if
                # any of the codes within the value set can apply"): an unknown code is not one of them either,
                # so the binding's warning still applies
        if exp is None:
            if strength == "required":
                missing = self.v.tx.unexpandable_part(vs_url)
                self.cannot_judge(path, missing, f"the value set {vs_url} cannot be expanded from the loaded "
                                  f"packages ({missing} is not loaded): the required binding is not checked")
            elif vs_url not in self._unexpandable:
                self._unexpandable.add(vs_url)
                self.add("information", "not-supported", path,
                         f"the value set {vs_url} cannot be expanded from the loaded packages: "
                         f"codes bound to it are not checked")
            return
        if text_only:
            if strength == "required":
                self.add("error", "code-invalid", path,
                         f"No code provided, and a code is required from the value set {vs_url}")
            return
        verdicts = [exp.contains(s, c) for s, c, _ in codings if isinstance(c, str)]
        if any(v is True for v in verdicts) or not verdicts:
            return
        if any(v is None for v in verdicts):
            if strength == "required":    # a code of a system the value set takes whole, and not loaded here
                self.binding_not_judged(exp, codings, vs_url, path)
            return
        shown = ", ".join(f"{s}#{c}" if s else str(c) for s, c, _ in codings)
        severity = "error" if strength == "required" else "warning"
        if exp.open_systems and all(s and self.v.tx.concepts(s) is None for s, _, _ in codings):
            # neither the value set's systems nor the code's are loaded: not enough to call it an error
            self.add("warning", "code-invalid", path, f"The code(s) {shown} are not from the systems of the value "
                     f"set {vs_url} (its code systems are not loaded: not fully checked)", plan.label)
            return
        self.add(severity, "code-invalid", path,
                 f"The code(s) {shown} are not in the value set {vs_url} (binding {strength})", plan.label)

    def binding_not_judged(self, exp, codings, vs_url, path):
        """A required binding whose codes could not be looked up: name the code system that was missing."""
        shown = ", ".join(f"{s}#{c}" if s else str(c) for s, c, _ in codings)
        systems = [s for s, _, _ in codings if isinstance(s, str) and s in exp.open_systems] or \
            sorted(exp.open_systems)
        missing = systems[0] if systems else vs_url
        self.cannot_judge(path, missing, f"The code(s) {shown} could not be checked against the value set {vs_url} "
                          f"(binding required): the code system {missing} is not loaded")

    def check_reference(self, value, node, path):
        ref = value.get("reference")
        targets = [t for tr in node.types if tr.code == "Reference" for t in tr.targets]
        if not isinstance(ref, str) or not targets:
            return
        allowed = set()
        for url in targets:
            url = url.split("|")[0]
            if url.startswith(CORE) and url[len(CORE):][:1].isupper():    # a type (core profiles: vitalsigns...)
                allowed.add(url[len(CORE):])
            else:
                p = self.v.plan(url)
                if p is None:
                    return   # unknown target profile: cannot judge
                allowed.add(p.type)
        if "Resource" in allowed:
            return
        rtype = None
        if ref.startswith(("#", "urn:uuid:", "urn:oid:")):
            target = self.resolve_reference(ref)
            rtype = target.get("resourceType") if target else None
        else:
            parts = ref.split("?")[0].split("/")
            if "_history" in parts:
                parts = parts[:parts.index("_history")]
            if len(parts) >= 2 and self._is_resource_type(parts[-2]):
                rtype = parts[-2]
        if isinstance(rtype, str) and rtype not in allowed:
            # the Reference is what points at the wrong type: the issue is placed on it, as the HL7 validator does
            self.add("error", "structure", path,
                     f"The type '{rtype}' implied by the reference '{ref}' is not a valid target for this "
                     f"element (must be one of {sorted(allowed)})")

    def check_aggregation(self, value, node, path):
        """ElementDefinition.type.aggregation: a profile that lists how the referenced resource is aggregated
        allows only those modes (R4 valueset-resource-aggregation-mode: contained, "a local reference to a
        contained resource"; referenced, "has to be resolved externally"; bundled, "will be found in the same
        bundle as the resource that includes the reference"). Outside a Bundle, whether a reference will be
        bundled is not known, so only contained is judged there."""
        modes = {m for t in node.types if t.code == "Reference" for m in t.aggregation}
        ref = value.get("reference")
        if not modes or not isinstance(ref, str) or not ref:
            return
        allowed = ", ".join(sorted(modes))
        if ref.startswith("#"):
            if "contained" not in modes:
                self.add("error", "structure", path, f"The reference '{ref}' is to a contained resource, which "
                         f"the profile does not allow here (aggregation: {allowed})")
        elif modes == {"contained"}:
            self.add("error", "structure", path, f"The reference '{ref}' must be to a contained resource "
                     f"(aggregation: {allowed})")
        elif "referenced" not in modes and isinstance(self.root, dict) and \
                self.root.get("resourceType") == "Bundle" and self.resolve_reference(ref) is None:
            self.add("error", "structure", path, f"The reference '{ref}' must be to a resource of the same Bundle "
                     f"(aggregation: {allowed}), and the Bundle holds none it names")

    def check_resolves_locally(self, value, path):
        """References that can only mean a resource of the message being validated: inside a Bundle, a
        urn:uuid or urn:oid; inside a Parameters that carries resources of a type, a relative reference to
        that type (its resources refer to each other, as a search-and-link operation sends them)."""
        ref = value.get("reference")
        root = self.root if isinstance(self.root, dict) else {}
        if not isinstance(ref, str):
            return
        relative = _RELATIVE.fullmatch(ref)
        if ref.startswith(("urn:uuid:", "urn:oid:")) and root.get("resourceType") == "Bundle" and \
                self.resolve_reference(ref) is None:
            self.add("warning", "not-found", path, f"URN reference is not locally contained within the bundle {ref}")
        elif relative and root.get("resourceType") == "Bundle":
            self.check_bundle_resolution(ref, root, path)
        elif relative and root.get("resourceType") == "Parameters":
            rtype, rid = ref.split("/")
            carried = {(r.get("resourceType"), r.get("id")) for r in _parameter_resources(root.get("parameter"))}
            if (rtype, rid) not in carried and any(t == rtype for t, _ in carried):
                self.add("error", "not-found", path, f"Unable to resolve resource with reference '{ref}': the "
                         f"Parameters carries {rtype} resources, none with the id '{rid}'")

    def check_bundle_resolution(self, ref, bundle, path):
        """A relative reference in a Bundle entry means the URL it makes with the entry's fullUrl (FHIR R4
        bundle.html, resolving references in bundles): an entry that holds the same type and id under another
        fullUrl is not what it points to, which is probably not what the author meant."""
        entries, holders, full_urls, by_type_id = self._bundle_index(bundle)
        holder = next((holders[id(r)] for r in self._resource_stack if id(r) in holders), None)
        full_url = holder.get("fullUrl") if holder else None
        full_url = full_url if isinstance(full_url, str) else None
        rtype, rid = ref.split("/")
        restful = re.match(r"(.*/)[A-Z][A-Za-z]+/[^/]+(/_history/[^/]+)?$", full_url or "")
        if restful and restful.group(1).startswith(("http://", "https://")):
            target = restful.group(1) + ref
        elif full_url and full_url.startswith(("urn:uuid:", "urn:oid:")):
            target = full_url[:9] + rid
        else:
            target = ref
        if target in full_urls or (rtype, rid) not in by_type_id:
            return
        i = by_type_id[(rtype, rid)]
        self.add("warning", "not-found", path, f"Entry {i} matches the reference {ref} by type and id but "
                 f"its fullUrl {entries[i].get('fullUrl')} does not match the full target URL {target} by "
                 f"Bundle resolution rules")

    def _bundle_index(self, bundle):
        """The Bundle's entries indexed once per validation (a Bundle of n entries holds about n references):
        entry by its resource object, the fullUrls, and the first entry by resource type and id."""
        cached = self._bundle_cache
        if cached is None or cached[0] is not bundle:
            entries = [e for e in _list(bundle.get("entry")) if isinstance(e, dict)]
            holders = {id(e["resource"]): e for e in entries if isinstance(e.get("resource"), dict)}
            full_urls = {e.get("fullUrl") for e in entries if isinstance(e.get("fullUrl"), str)}
            by_type_id = {}
            for i, entry in enumerate(entries):
                res = entry.get("resource")
                key = (res.get("resourceType"), res.get("id")) if isinstance(res, dict) else None
                if key and all(isinstance(k, str) for k in key):    # a reference matches only strings
                    by_type_id.setdefault(key, i)
            cached = self._bundle_cache = (bundle, (entries, holders, full_urls, by_type_id))
        return cached[1]

    def check_range(self, value, node, path):
        if isinstance(value, str) and _is_duration(node.min_value, node.max_value):
            self.check_date_window(value, node, path)
            return
        v = value.get("value") if isinstance(value, dict) else value
        lo = node.min_value.get("value") if isinstance(node.min_value, dict) else node.min_value
        hi = node.max_value.get("value") if isinstance(node.max_value, dict) else node.max_value
        try:
            if lo is not None and v < lo:
                self.add("error", "invalid", path, f"The value in the instance ({v}) is less than the "
                                                   f"specified minimum value ({lo})")
            if hi is not None and v > hi:
                self.add("error", "invalid", path, f"The value in the instance ({v}) is greater than the "
                                                   f"specified maximum value ({hi})")
        except TypeError:
            pass   # dates, times and quantities in other units: not compared here

    def check_date_window(self, value, node, path):
        """A date bounded by Durations, as the HL7 validator reads them: maxValueDuration is that long after
        the current clock, minValueDuration that long before it (R4 lists no Duration among minValue[x]'s
        types, but profiles use them to say "at most ten years ahead", "at most a century ago")."""
        when = _date_of(value)
        if when is None:
            return
        for bound, name, sign, side in ((node.max_value, "maxValue", 1, "after"),
                                        (node.min_value, "minValue", -1, "before")):
            limit = _now_plus(bound, sign) if isinstance(bound, dict) else None
            if limit is not None and (when > limit if sign > 0 else when < limit):
                unit = bound.get("code") or bound.get("unit", "")
                self.add("error", "invalid", path, f"The date/time value '{value}' is not legal: {name} is "
                         f"{bound.get('value')}{unit} {side} now ({limit.date().isoformat()})")


# UCUM time units a Duration may use, in seconds (a year and a month as the UCUM mean Julian ones)
_UNIT_SECONDS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "wk": 7 * 86400, "mo": 2629800, "a": 31557600}


def _is_duration(*bounds) -> bool:
    return any(isinstance(b, dict) and (b.get("code") or b.get("unit")) in _UNIT_SECONDS for b in bounds)


def _now_plus(duration: dict, sign: int):
    seconds = _UNIT_SECONDS.get(duration.get("code") or duration.get("unit"))
    amount = duration.get("value")
    if seconds is None or not isinstance(amount, (int, float)) or isinstance(amount, bool):
        return None
    try:
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=sign * amount * seconds)
    except OverflowError:
        return None


def _date_of(value: str):
    """A date, dateTime or instant as an aware datetime at the start of its precision (UTC if no zone)."""
    text = value.strip()
    try:
        if len(text) == 4:
            return dt.datetime(int(text), 1, 1, tzinfo=dt.UTC)
        if len(text) == 7:
            return dt.datetime(int(text[:4]), int(text[5:7]), 1, tzinfo=dt.UTC)
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


class _NoBinding:
    """A node seen without its binding, to reuse check_value's code-system checks on weak bindings."""

    def __init__(self, node):
        self.fixed = self.pattern = self.binding = self.max_length = self.min_value = self.max_value = None
        self.types = node.types


def _numbers_equal(a, b) -> bool:
    return isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and a == b


def _show(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "..."



def _list(value) -> list:
    """A JSON array as a list; anything else (already reported as a structure error) as empty."""
    return value if isinstance(value, list) else []


def _from(plan: Plan) -> str:
    return "" if plan.url and plan.url.startswith(CORE) else f" (from {plan.label})"


_RELATIVE = re.compile(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}")


def _parameter_resources(parameters):
    """Every resource a Parameters carries, in its parameters and their parts."""
    for parameter in _list(parameters):
        if isinstance(parameter, dict):
            if isinstance(parameter.get("resource"), dict):
                yield parameter["resource"]
            yield from _parameter_resources(parameter.get("part"))
