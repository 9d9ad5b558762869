"""One validation run: walks a resource against a plan's nodes and collects issues."""
from __future__ import annotations

from ..messages import quote
from . import fhirpath
from .extensions import ExtensionChecks
from .plan import Node, Plan, TypeRef
from .primitives import PRIMITIVES, WRONG_JSON_KIND, check_primitive
from .rules import EVERY_RESOURCE_RULES, PRIMITIVE_RULES, RESOURCE_RULES, RULES, TYPE_RULES
from .slicing import assign_slices
from .values import ValueChecks, _from, _list
from .vitalsigns import required_profile

CORE = "http://hl7.org/fhir/StructureDefinition/"
RESOURCE_TYPES = ("Resource", "DomainResource")
MAX_DEPTH = 64


class Run(ExtensionChecks, ValueChecks):
    """The state of one validation (issues, the resources being walked) and the structural walk; the
    extension and value checks are in extensions.py and values.py."""

    def __init__(self, validator, root):
        self.v = validator
        self.root = root
        self.issues: list = []
        self._seen: set = set()
        self._resource_stack: list = []
        self._root_stack: list = []      # %rootResource: the resource itself, or a contained one's container
        self._unexpandable: set = set()
        self._undecided: list = []       # memberOf()/conformsTo() calls that could not answer, per invariant
        self._antecedents: dict = {}
        self._bundle_cache = None        # values.py: the root Bundle's entries, indexed once
        self._chosen: dict = {}          # (id of a value, its type profiles) -> the profile it conforms to
        self._depth = 0

    # --- issues ------------------------------------------------------------------------------------
    def add(self, severity, code, expression, message, source=None, not_judged=None):
        from .validator import Issue
        key = (severity, expression, message)
        if key in self._seen:
            return
        self._seen.add(key)
        self.issues.append(Issue(severity, code, expression, message, source, not_judged))

    def cannot_judge(self, expression, missing: str, message: str, severity="information", code="not-supported"):
        """An issue the validator could not judge: `missing` names the definition, value set, code system or
        invariant it lacked; the issue names the dependency not loaded that would supply it, if any."""
        package = self.v.packages.holder_of(missing)
        if package is None and ("://" in missing or missing.startswith("urn:")):   # a definition: any dependency
            package = ", ".join(self.v.packages.missing) or None
        text = message + (f" (defined in {package}, a dependency that is not loaded)" if package else "")
        self.add(severity, code, expression, text, not_judged=(missing, package))

    def outcome(self) -> dict:
        issues = [i.to_json() for i in self.issues]
        if not issues:
            issues = [{"severity": "information", "code": "informational",
                       "details": {"text": "No issues detected during validation"}}]
        return {"resourceType": "OperationOutcome", "issue": issues}

    # --- resources ---------------------------------------------------------------------------------
    def validate_root(self, resource, profiles):
        if not isinstance(resource, dict):
            self.add("fatal", "structure", "$this", "the content is not a JSON object")
            return
        rt = resource.get("resourceType")
        root_path = rt if isinstance(rt, str) and rt.isidentifier() else "$this"
        for missing in self.v.packages.missing:
            self.add("information", "informational", root_path,
                     f"dependency {missing} is not loaded: what it defines is not validated")
        self.validate_resource(resource, root_path, profiles)

    def validate_resource(self, res, path, profiles=(), implied_by_type=False):
        rt = res.get("resourceType") if isinstance(res, dict) else None
        if not isinstance(rt, str):
            self.add("error", "structure", path, "the resource has no resourceType")
            return
        base = self.v.type_plan(rt)
        if base is None or base.kind != "resource":
            self.add("error", "structure", path, f"unknown resource type '{rt}'")
            return
        plans: list[Plan] = []
        claimed = _list(res["meta"].get("profile")) if isinstance(res.get("meta"), dict) else []
        # (url, index in meta.profile or None when the profile was asked for rather than claimed)
        implied = [(p, None) for p in profiles]
        implied += [(p, i) for i, p in enumerate(claimed or ()) if isinstance(p, str)]
        implied += [(p, None) for p in self.v.global_profiles(rt)]
        vital = required_profile(res) if rt == "Observation" else None
        if vital is not None and self.v.plan(vital[0]) is not None:
            self.add("information", "informational", path, vital[1])
            implied.append((vital[0], None))
        for url, claim in implied:
            plan = self.v.plan(url)
            if plan is None:
                if claim is None:
                    self.add("error", "not-found", path, f"profile {url} is not loaded")
                else:
                    self.add("warning", "not-found", f"{path}.meta.profile[{claim}]",
                             f"profile {url} is not loaded: the resource is not validated against it")
                continue
            if plan.type != rt:
                self.add("error", "structure", path,
                         f"profile {plan.url} is for {plan.type} resources, not {rt}")
                continue
            if plan not in plans:
                plans.append(plan)
        if not plans:
            plans = [base]
        self._resource_stack.append(res)
        contained = ".contained[" in path.rsplit("/*", 1)[0][-40:] if "/*" in path else False
        self._root_stack.append(self._root_stack[-1] if contained and self._root_stack else res)
        try:
            for plan in plans:
                self.walk_object(res, plan.root, None, path, plan, resource_root=True)
                self.check_constraints(res, plan.root, path, plan)
            rule = RESOURCE_RULES.get(rt)
            if rule is not None:
                rule(self, res, path)
            for rule in EVERY_RESOURCE_RULES:
                rule(self, res, path)
        finally:
            self._resource_stack.pop()
            self._root_stack.pop()

    def resolve_reference(self, ref: str, holder=None):
        """A resource inside the resource being validated: contained (`#id`) or a Bundle entry."""
        resource = self._resource_stack[-1] if self._resource_stack else self.root
        if ref.startswith("#") and holder is not None:
            resource = _container_of(self.root, holder) or resource
        if ref.startswith("#"):
            found = _contained(resource, ref[1:])
            if found is None and holder is None:
                found = self._sibling(resource, ref[1:])
            return found
        root = self.root
        if isinstance(root, dict) and root.get("resourceType") == "Bundle":
            for entry in root.get("entry", ()):
                if not isinstance(entry, dict):
                    continue
                target = entry.get("resource")
                full = entry.get("fullUrl")
                if not isinstance(target, dict):
                    continue
                if full == ref or (isinstance(full, str) and full.endswith("/" + ref)) or \
                        f"{target.get('resourceType')}/{target.get('id')}" == ref:
                    return target
        return None

    def _sibling(self, resource, rid):
        """From a contained resource, `#id` names another resource contained in the same container (R4
        references.html#contained: contained resources share their container's `contained` list, as they
        cannot contain resources themselves, dom-2)."""
        if len(self._resource_stack) < 2:
            return None
        container = self._resource_stack[-2]
        if isinstance(container, dict) and any(c is resource for c in _list(container.get("contained"))):
            return _contained(container, rid)
        return None

    def member_of(self, value, valueset):
        verdict = self._member_of(value, valueset)
        if verdict is None:
            self._undecided.append(f"memberOf('{valueset}')")
        return verdict

    def _member_of(self, value, valueset):
        exp = self.v.tx.expand(valueset)
        if exp is None:
            return None
        if isinstance(value, str):
            return exp.contains(None, value)
        if isinstance(value, dict):
            codings = _list(value.get("coding")) if "coding" in value else [value]
            verdicts = [exp.contains(c.get("system"), c.get("code")) for c in codings
                        if isinstance(c, dict) and isinstance(c.get("code"), str)]
            if any(v is True for v in verdicts):
                return True
            if any(v is None for v in verdicts):
                return None
            return False
        return None

    def conforms_to(self, resource, url):
        plan = self.v.plan(url)
        if plan is None:
            self._undecided.append(f"conformsTo('{url}')")
            return None
        sub = Run(self.v, self.root)
        sub.validate_resource(resource, "$this", [url])
        return not any(i.severity in ("error", "fatal") for i in sub.issues)

    # --- objects -----------------------------------------------------------------------------------
    def walk_object(self, obj, node: Node, tref: TypeRef | None, path: str, plan: Plan, resource_root=False):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                self.add("error", "structure", path, "the content is nested too deeply")
                return
            keymap = self.v.keymap(node, tref)
            present = {}   # id(child) -> (child, the JSON names of it found), or None: reported already
            for key in obj:
                if not isinstance(key, str):
                    self.add("error", "structure", path, f"property names must be strings, not {key!r}")
                    continue
                name = key[1:] if key[:1] == "_" else key
                hit = keymap.get(name)
                if hit is not None:
                    seen = present.get(id(hit[0]))
                    if seen is None:
                        present[id(hit[0])] = (hit[0], {name})
                    else:
                        seen[1].add(name)
                elif not (resource_root and key == "resourceType"):
                    self.add("error", "structure", path, _unknown_message(key, keymap))
                    wrong_type = _choice_for(key, keymap)
                    if wrong_type is not None:     # reported once, not again as missing
                        present[id(wrong_type)] = None
            # only the elements present, and the required ones, need a look
            for child in self.v.required_children(node, tref):
                if id(child) not in present:
                    self.walk_child(obj, child, path, plan, ())
            for found in present.values():
                if found is not None:
                    self.walk_child(obj, found[0], path, plan, found[1])
        finally:
            self._depth -= 1

    def walk_child(self, obj, child: Node, path: str, plan: Plan, names):
        """The items of one element in `obj`, found under `names` (its JSON names present there)."""
        items = []
        # a choice element has a name per type (value[x]: about fifty): look only at those present, in
        # the order of its types
        keys = child.json_keys()
        if len(keys) > 1:
            keys = [kt for kt in keys if kt[0] in names]
        elif not names:
            keys = ()
        for key, t in keys:
            ukey = "_" + key
            value, ext = obj.get(key), obj.get(ukey)
            if child.choice:
                item_path = f"{path}.{child.name[:-3]}.ofType({t.code})"
            else:
                item_path = f"{path}.{key}"
            if (value is None and key in obj) or (ext is None and ukey in obj):
                self._null_property(key if value is None and key in obj else ukey, item_path)
            if value is None and ext is None:
                continue
            if child.array:
                values = value if isinstance(value, list) else ([] if value is None else None)
                exts = ext if isinstance(ext, list) else ([] if ext is None else None)
                if values is None or exts is None:
                    self.add("error", "structure", item_path, f"the property '{key}' must be a JSON array")
                    values = values if values is not None else [value]
                    exts = exts if exts is not None else [ext]
                if not values and not exts:
                    self.add("error", "structure", item_path, f"the array '{key}' must not be empty")
                for i in range(max(len(values), len(exts))):
                    v = values[i] if i < len(values) else None
                    e = exts[i] if i < len(exts) else None
                    if v is None and e is None:
                        self.add("error", "structure", f"{item_path}[{i}]", "null values are not allowed in arrays")
                        continue
                    items.append((v, e, t, f"{item_path}[{i}]"))
            else:
                if isinstance(value, list) or isinstance(ext, list):
                    self.add("error", "structure", item_path,
                             f"the property '{key}' must not be an array (maximum cardinality 1)")
                    continue
                items.append((value, ext, t, item_path))
        count = len(items)
        if count < child.min and not self._in_differential(path):
            self.add("error", "required", path,
                     f"{child.path}: minimum required = {child.min}, but only found {count}"
                     + _from(plan), plan.label)
        if child.max is not None and count > child.max:
            where = items[child.max][3] if child.max < count else path
            self.add("error", "structure", where if child.max else items[0][3],
                     f"{child.path}: max allowed = {child.max}, but found {count}" + _from(plan), plan.label)
            if child.max == 0:
                return
        if not items or (child.name == "contained" and child.path.count(".") == 1
                         and self.v.options.get("validateContains") == "IGNORE"):
            return
        nodes = [child] * count
        if child.slices or (child.slicing and child.slicing.get("rules") == "closed"):
            nodes = assign_slices(self, items, child, path, plan)
        for (value, ext, t, item_path), node in zip(items, nodes):
            self.walk_item(value, ext, node, t, item_path, plan)

    def _null_property(self, key, path):
        """R4 json.html (JSON representation, "Just as in XML, JSON objects and arrays are never empty, and
        properties never have null values (except for a special case documented below)": an absent value is an
        absent property; the exception, null inside an array of primitives to align it with its `_` array,
        is handled with arrays."""
        self.add("error", "structure", path, f"The property '{key}' has a null value: JSON properties never "
                 f"have null values in FHIR, leave the property out instead")

    def walk_item(self, value, ext, node: Node, tref: TypeRef | None, path: str, plan: Plan):
        if tref is None or (node is not None and node.slice_name and node.types and not node.choice):
            codes = {t.code for t in node.types} if node is not None else set()
            if len(codes) == 1:
                tref = node.types[0]
            elif codes and isinstance(value, dict) and value.get("resourceType") in codes:
                # a resource element restricted to several resource types: the one the instance has
                tref = next(t for t in node.types if t.code == value["resourceType"])
        code = tref.code if tref else None
        if node is not None and node.name == "id" and node.path.count(".") == 1 and node.plan.kind == "resource":
            code = "id"     # Resource.id is typed System.String in R4's definitions, but it is an id
        if ext is not None and self.extensible(node, path):
            self.walk_primitive_extension(ext, path, plan, node.path if node else None)
        if value is None:
            return
        if code in PRIMITIVES:
            reason = check_primitive(code, value, self.v.options.get("examples", False))
            if reason:
                if node is not None and node.choice and reason.startswith(WRONG_JSON_KIND) and ".ofType(" in path:
                    # the JSON value is of the wrong kind for any type: the choice element itself is named,
                    # as the HL7 validator does (value[x], not value.ofType(decimal))
                    path = path[:path.rindex(".ofType(")] + "[x]"
                self.add("error", "invalid", path, _cap(reason))
                if code == "xhtml":     # a narrative breaking its rules also fails txt-1 (htmlChecks())
                    self.check_constraints(value, node, path, plan)
                return
            self.check_value(value, node, code, path, plan)
            self.check_constraints(value, node, path, plan)
            rule = PRIMITIVE_RULES.get(code)
            if rule is not None:
                rule(self, value, path)
            return
        if code in RESOURCE_TYPES or (code and code[0].isupper() and self._is_resource_type(code)):
            if not isinstance(value, dict):
                self.add("error", "structure", path, "a resource must be a JSON object")
                return
            rid = value.get("id")
            sub = f"{path}/*{value.get('resourceType')}/{rid if rid is not None else 'null'}*/"
            rt = value.get("resourceType")
            profiles = [p for t in node.types if t.code in (rt, "Resource", "DomainResource")
                        for p in t.profiles] if node else []
            if len(profiles) > 1:
                profiles = [self._conforming_profile(
                    value, profiles, lambda p: self.validate_resource(value, sub, [p], implied_by_type=True))]
            self.validate_resource(value, sub, profiles, implied_by_type=True)
            return
        if not isinstance(value, dict):
            self.add("error", "structure", path,
                     f"the property must be a JSON object ({code or 'an element'}), not {_kind(value)}")
            return
        if not value:
            self.add("error", "structure", path, "an object must have some content (ele-1)")
            return
        if code == "Extension":
            self.walk_extension(value, node, tref, path, plan, node.path.rsplit(".", 1)[0] if node else None)
            return
        if tref is not None and len(tref.profiles) > 1 and node is not None and not node.children:
            chosen = self._conforming_profile(
                value, tref.profiles, lambda p: self.walk_object(value, node, TypeRef(tref.code, (p,), tref.targets), path, plan))
            tref = TypeRef(tref.code, (chosen,), tref.targets)
        self.walk_object(value, node, tref, path, plan)
        self.check_value(value, node, code, path, plan)
        self.check_constraints(value, node, path, plan)
        rule = RULES.get(node.path) if node is not None else None
        if rule is not None:
            rule(self, value, path)
        rule = TYPE_RULES.get(code)
        if rule is not None:
            rule(self, value, path)

    def _conforming_profile(self, value, profiles, walk) -> str:
        """ElementDefinition.type.profile: "If any profiles are specified, then the content must conform to at
        least one of them". The first loaded profile the content conforms to (walked aside, its issues
        dropped), else the first loaded one, whose issues the caller then reports. Chosen once per value: a
        nested element with several profiles is not tried again for each of its container's tries."""
        key = (id(value), tuple(profiles))
        if key in self._chosen:
            return self._chosen[key]
        self._chosen[key] = chosen = self._try_profiles(profiles, walk)
        return chosen

    def _try_profiles(self, profiles, walk) -> str:
        loaded = [p for p in profiles if self.v.plan(p) is not None] or list(profiles)
        for profile in loaded:
            saved = self.issues, self._seen
            self.issues, self._seen = [], set()
            try:
                walk(profile)
                conforms = not any(i.severity in ("error", "fatal") for i in self.issues)
            finally:
                self.issues, self._seen = saved
            if conforms:
                return profile
        return loaded[0]

    def _is_resource_type(self, code: str) -> bool:
        plan = self.v.type_plan(code)
        return plan is not None and plan.kind == "resource"

    # --- invariants --------------------------------------------------------------------------------
    def check_constraints(self, value, node: Node, path, plan):
        if node is None or not node.constraints or not self.v.invariants:
            return
        resource = self._resource_stack[-1] if self._resource_stack else self.root
        for c in node.constraints:
            if c.key in CONTAINED_ONLY and c.expression.startswith("contained.") and \
                    not (isinstance(value, dict) and "contained" in value):
                continue    # dom-2..dom-5 test contained resources only: true when there are none
            antecedent = _antecedent(c.expression)
            if antecedent is not None:
                key = (id(value), antecedent)
                if key not in self._antecedents:
                    self._undecided = []
                    try:
                        self._antecedents[key] = fhirpath.evaluate(antecedent, value, resource,
                                                                   self._root_stack[-1] if self._root_stack
                                                                   else self.root, self,
                                                                   base=None if node.path == (resource or {}).get(
                                                                       "resourceType") else node.path)
                    except fhirpath.FhirPathError:
                        self._antecedents[key] = None
                    if self._undecided:     # A itself could not be told: B decides, or it is not judged
                        self._antecedents[key] = None
                if self._antecedents[key] in ([], [False]):
                    continue    # `A implies B` holds when A is false or empty; A is shared (fr-core-1..3)
            self._undecided = []
            try:
                root = self._root_stack[-1] if self._root_stack else self.root
                at_root = node.path == (resource or {}).get("resourceType")
                focus_type = node.path if at_root else (node.types[0].code if len(node.types) == 1 else None)
                result = fhirpath.evaluate(c.expression, value, resource, root, self,
                                           base=None if at_root else node.path, focus_type=focus_type)
            except fhirpath.FhirPathError as exc:
                self._not_evaluated(c, path, f"invariant {c.key} could not be evaluated ({str(exc)[:120]})",
                                    f"invariant {c.key}")
                continue
            violated = result == [False] or (len(result) == 1 and result[0] is False)
            if self._undecided and not violated:
                # it held only because a memberOf() or conformsTo() it needs could not answer
                self._not_evaluated(c, path, f"invariant {c.key} could not be judged: {self._undecided[0]} "
                                    f"could not be answered from the loaded packages",
                                    self._undecided[0].split("'")[1])
                continue
            if violated and self._in_differential(path):
                # a differential's element is partial: judged whole in the snapshot; without one, not judged
                if not (self._resource_stack[-1].get("snapshot") or {}).get("element"):
                    self._not_evaluated(c, path, f"invariant {c.key} fails on the differential's element, which "
                                        f"states only what differs from the base: it is judged on a snapshot, "
                                        f"and the definition has none", f"invariant {c.key}")
                continue
            if violated:
                # best-practice invariants (dom-6: narrative) are advice, not conformance
                severity = "information" if c.best_practice else ("error" if c.severity == "error" else "warning")
                self.add(severity, "invariant", path, f"Constraint failed: {c.key}: {quote(c.human)}"
                         + _from(plan), plan.label)

    def _in_differential(self, path: str) -> bool:
        """Inside a StructureDefinition's differential, whose elements state only what differs from the base
        ("a statement of differences", R4 StructureDefinition.differential): an element may lack what the
        base gives (binding.strength, slicing.discriminator), so required elements and invariants are judged
        on the snapshot, which the differential and its base make whole (an invariant failing in a definition
        without a snapshot is not judged)."""
        return ".differential.element[" in path and bool(self._resource_stack) and \
            self._resource_stack[-1].get("resourceType") == "StructureDefinition" and \
            ".differential.element[" in path.rsplit("*/", 1)[-1]

    def _not_evaluated(self, constraint, path, message, missing):
        """An invariant left unjudged: one that could make the resource invalid (severity error) is an issue
        not judged; advice (warnings, best practice) stays information."""
        if constraint.severity == "error" and not constraint.best_practice:
            self.cannot_judge(path, missing, message)
        else:
            self.add("information", "informational", path, message)


def _contains_object(tree, target) -> bool:
    if tree is target:
        return True
    if isinstance(tree, dict):
        return any(_contains_object(v, target) for v in tree.values() if isinstance(v, (dict, list)))
    if isinstance(tree, list):
        return any(_contains_object(v, target) for v in tree if isinstance(v, (dict, list)))
    return False


def _contained(resource, rid):
    for c in _list(resource.get("contained")) if isinstance(resource, dict) else ():
        if isinstance(c, dict) and c.get("id") == rid:
            return c
    return None


def _container_of(root, target):
    """The innermost resource (not counting contained ones) whose content holds `target`."""
    best = None
    stack = [root]
    while stack:
        res = stack.pop()
        if not isinstance(res, dict) or not _contains_object(res, target):
            continue
        best = res
        inner = []
        for entry in res.get("entry", ()) if isinstance(res.get("entry"), list) else ():
            if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                inner.append(entry["resource"])
        for param in res.get("parameter", ()) if res.get("resourceType") == "Parameters" else ():
            if isinstance(param, dict) and isinstance(param.get("resource"), dict):
                inner.append(param["resource"])
        stack = inner
    return best


CONTAINED_ONLY = frozenset({"dom-2", "dom-4", "dom-5"})
_ANTECEDENTS: dict = {}


def _antecedent(expression: str) -> str | None:
    """A of a top-level `A implies B` (outside parentheses and strings), else None."""
    if expression in _ANTECEDENTS:
        return _ANTECEDENTS[expression]
    depth, quote, found = 0, False, None
    i = 0
    while i < len(expression):
        ch = expression[i]
        if ch == "'" and (i == 0 or expression[i - 1] != "\\"):
            quote = not quote
        elif not quote:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            elif depth == 0 and expression.startswith(" implies ", i):
                found = expression[:i].strip() if found is None else None
                if found is None:
                    break   # several top-level implies: leave it to the evaluator
        i += 1
    _ANTECEDENTS[expression] = found
    return found


def _choice_for(key, keymap):
    for child, _t in keymap.values():
        if child.choice and key.startswith(child.name[:-3]) and key[len(child.name[:-3]):][:1].isupper():
            return child
    return None


def _unknown_message(key, keymap) -> str:
    child = _choice_for(key, keymap)
    if child is not None:
        allowed = ", ".join(t.code for t in child.types)
        return f"Unrecognized property '{key}': the type is not allowed for {child.name} (allowed: {allowed})"
    return f"Unrecognized property '{key}'"


def _kind(value) -> str:
    return {bool: "a boolean", str: "a string", list: "an array", int: "a number", float: "a number"}.get(
        type(value), "null")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]
