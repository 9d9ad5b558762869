"""Slicing: which slice each repeated item belongs to (value, pattern, type, profile and exists
discriminators), then the slices' cardinality, closed slicing and order."""
from __future__ import annotations

import functools
import re

from .plan import Node
from .primitives import PRIMITIVES

_SEG = re.compile(r"(?:[^.(]|\([^)]*\))+")
CORE = "http://hl7.org/fhir/StructureDefinition/"


def contains_pattern(value, pattern) -> bool:
    """FHIR pattern[x] semantics: every property of the pattern is present with a matching value."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and contains_pattern(value[k], v) for k, v in pattern.items())
    if isinstance(pattern, list):
        items = value if isinstance(value, list) else [value]
        return all(any(contains_pattern(i, p) for i in items) for p in pattern)
    if isinstance(pattern, str) and "|" in pattern and "://" in pattern and isinstance(value, str) \
            and "|" not in value:
        return value == pattern.split("|", 1)[0]   # a version-less canonical matches any version of it
    if isinstance(pattern, (int, float)) and not isinstance(pattern, bool):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value == pattern
    return value == pattern


@functools.lru_cache(maxsize=4096)
def _segments(path: str) -> list[str]:
    return [s for s in _SEG.findall(path or "") if s != "$this"]


def _instance_values(run, value, segments, item_type):
    """(value, type) pairs at the discriminator path in the instance."""
    current = [(value, item_type)]
    for seg in segments:
        nxt = []
        for v, t in current:
            if seg == "resolve()":
                ref = v.get("reference") if isinstance(v, dict) else v
                target = run.resolve_reference(ref) if isinstance(ref, str) else None
                if target is not None:
                    nxt.append((target, target.get("resourceType")))
            elif seg.startswith("extension("):
                url = seg[len("extension("):-1].strip("'\"")
                for e in (v.get("extension") or ()) if isinstance(v, dict) else ():
                    if isinstance(e, dict) and e.get("url") == url:
                        nxt.append((e, "Extension"))
            elif seg.startswith("ofType("):
                wanted = seg[len("ofType("):-1]
                nxt.extend((x, tt) for x, tt in [(v, t)] if tt == wanted)
            elif isinstance(v, dict):
                if seg in v:
                    found = v[seg]
                    for x in found if isinstance(found, list) else [found]:
                        nxt.append((x, None))
                else:
                    for key, x in v.items():   # a choice element, `value` for valueQuantity
                        if isinstance(key, str) and key.startswith(seg) and key[len(seg):][:1].isupper():
                            suffix = key[len(seg):]
                            primitive = suffix[0].lower() + suffix[1:]
                            nxt.append((x, primitive if primitive in PRIMITIVES else suffix))
        current = nxt
    return current


def _slice_node_at(run, node: Node, segments):
    """The element of the slice definition at the discriminator path (None if it cannot be followed)."""
    for seg in segments:
        if seg == "resolve()":
            targets = [t for tr in node.types for t in tr.targets]
            plan = run.v.plan(targets[0]) if targets else None
            if plan is None:
                return None
            node = plan.root
            continue
        if seg.startswith("ofType("):
            continue
        if seg.startswith("extension("):
            url = seg[len("extension("):-1].strip("'\"")
            ext = None
            for child in run.v.children(node, None):
                if child.name == "extension":
                    for s in child.slices:
                        if any(url in t.profiles for t in s.types) or _fixed_url(run, s) == url:
                            ext = s
            if ext is None:
                return None
            node = ext
            continue
        found = None
        types = {t.code for t in node.types}
        tref = node.types[0] if len(types) == 1 else None
        for child in run.v.children(node, tref):
            if child.name == seg or (child.choice and child.name[:-3] == seg):
                found = child
                break
        if found is None:
            return None
        node = found
    return node


def _fixed_url(run, node: Node):
    for child in node.children:
        if child.name == "url":
            return child.fixed
    for t in node.types:
        for p in t.profiles:
            return p
    return None


def _expected(run, slice_node: Node, disc: dict):
    """What the discriminator expects for this slice, or None if the slice does not say."""
    kind, path = disc.get("type"), disc.get("path", "$this")
    segs = _segments(path)
    if kind in ("value", "pattern") and segs == ["url"] and slice_node.types and \
            slice_node.types[0].code == "Extension":
        url = None
        for child in slice_node.children:
            if child.name == "url" and child.fixed is not None:
                url = child.fixed
        if url is None:
            profiles = [p for t in slice_node.types for p in t.profiles]
            url = profiles[0].split("|")[0] if profiles else None
        return ("value", url) if url else None
    target = _slice_node_at(run, slice_node, segs)
    if target is None:
        return None
    if kind in ("value", "pattern"):
        if target.fixed is not None:
            return ("value", target.fixed)
        if target.pattern is not None:
            return ("pattern", target.pattern)
        if target.binding and target.binding[0] == "required":
            return ("binding", target.binding[1])
        return None
    if kind == "type":
        codes = {t.code for t in target.types}
        if not codes and target is target.plan.root:
            # after resolve(): a resource's root element states no type, its type is the profile's
            # (profiling.html, discriminator "type" on `resolve()`: the type of the referenced resource)
            codes = {target.plan.type}
        return ("type", codes)
    if kind == "profile":
        profiles = [p for t in target.types for p in (t.profiles or t.targets) if run.v.plan(p) is not None]
        return ("profile", profiles) if profiles else None   # unknown profiles: cannot discriminate
    if kind == "exists":
        if target.min >= 1:
            return ("exists", True)
        if target.max == 0:
            return ("exists", False)
        return None
    return None


def _matches(run, value, item_type, disc, expected) -> bool:
    kind, want = expected
    segs = _segments(disc.get("path", "$this"))
    found = _instance_values(run, value, segs, item_type)
    if kind == "exists":
        return bool(found) == want
    if kind == "type":
        for v, t in found:
            actual = t or (v.get("resourceType") if isinstance(v, dict) else None)
            if not isinstance(actual, str):
                continue
            if actual in want or (actual and actual[:1].lower() + actual[1:] in want):
                return True
        return False
    if kind == "profile":
        for v, _ in found:
            if isinstance(v, dict) and "resourceType" in v and any(run.conforms_to(v, p) for p in want):
                return True
        return False
    if kind == "binding":
        return any(run.member_of(v, want) for v, _ in found)
    if kind == "value":
        return any(v == want or contains_pattern(v, want) for v, _ in found)
    return any(contains_pattern(v, want) for v, _ in found)


_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9]*")


def _by_value(discriminators, expectations) -> tuple[tuple, dict]:
    """When every discriminator is a value or pattern on a direct property of the item, and every slice
    expects a plain string there (no version-less canonical matching): the property names, and the first
    slice for each tuple of expected strings. Otherwise ((), {})."""
    keys = tuple(d.get("path", "") for d in discriminators)
    if not keys or not all(d.get("type") in ("value", "pattern") and _PLAIN.fullmatch(k)
                           for d, k in zip(discriminators, keys)):
        return (), {}
    table: dict = {}
    for idx, exp in enumerate(expectations):
        if not all(e is not None and e[0] in ("value", "pattern") and type(e[1]) is str and "|" not in e[1]
                   for e in exp):
            return (), {}
        table.setdefault(tuple(e[1] for e in exp), idx)
    return keys, table


def _by_coding(discriminators, expectations) -> tuple[str | None, dict]:
    """When the one discriminator is a value or pattern on a direct CodeableConcept property (identifiers
    sliced by type) and every slice expects one coding with a system and a code there: the property name,
    and the slices (in order) expecting each (system, code). Otherwise (None, {})."""
    if len(discriminators) != 1 or discriminators[0].get("type") not in ("value", "pattern") or \
            not _PLAIN.fullmatch(discriminators[0].get("path", "")):
        return None, {}
    table: dict = {}
    for idx, (exp,) in enumerate(expectations):
        codings = exp[1].get("coding") if exp is not None and isinstance(exp[1], dict) else None
        if not (isinstance(codings, list) and len(codings) == 1 and isinstance(codings[0], dict)
                and type(codings[0].get("system")) is str and type(codings[0].get("code")) is str):
            return None, {}
        table.setdefault((codings[0]["system"], codings[0]["code"]), []).append(idx)
    return discriminators[0]["path"], table


def _candidates(value, key, table) -> list[int]:
    """The slices that may hold an item whose `key` property has these codings (a slice's coding must be
    among them); the full match decides."""
    concept = value.get(key) if isinstance(value, dict) else None
    codings = concept.get("coding") if isinstance(concept, dict) else None
    if not isinstance(codings, list):
        return []
    return sorted({i for c in codings if isinstance(c, dict)
                   for i in table.get((c.get("system"), c.get("code")), ())})


def assign_slices(run, items, child: Node, path: str, plan):
    """The node (a slice, or the sliced element itself) for each item; reports slicing violations."""
    slicing = child.slicing or {}
    discriminators = slicing.get("discriminator") or []
    rules = slicing.get("rules", "open")
    cached = run.v.slice_expectations.get(id(child))
    if cached is None:
        # what each slice expects depends only on the definitions: computed once per element
        expectations = [[_expected(run, s, d) for d in discriminators] for s in child.slices]
        cached = run.v.slice_expectations[id(child)] = (expectations, _by_value(discriminators, expectations),
                                                         _by_coding(discriminators, expectations))
    expectations, (keys, by_value), (coding_key, by_coding) = cached
    every = range(len(child.slices))
    nodes, slice_index = [], []
    for value, _ext, tref, item_path in items:
        item_type = tref.code if tref else None
        chosen = None
        found = [value.get(k) for k in keys] if keys and isinstance(value, dict) else None
        if found is not None and all(type(f) is str for f in found):
            # the common case (extensions by url, identifiers by system): one lookup, the same answer as
            # trying each slice in turn
            chosen = by_value.get(tuple(found))
            candidates = ()
        elif coding_key is not None:
            candidates = _candidates(value, coding_key, by_coding)   # identifiers by type: only those
        else:
            candidates = every
        for idx in candidates:
            exp = expectations[idx]
            if not discriminators or all(e is None for e in exp):
                continue   # a slice we cannot discriminate: never guess
            # a discriminator that this slice leaves unconstrained matches anything
            if all(e is None or _matches(run, value, item_type, d, e) for d, e in zip(discriminators, exp)):
                chosen = idx
                break
        slice_index.append(chosen)
        nodes.append(child.slices[chosen] if chosen is not None else child)
        if chosen is None and rules == "closed":
            run.add("error", "structure", item_path,
                    f"This element does not match any known slice defined in the profile {plan.label} "
                    f"and the slicing is closed")
    for idx, s in enumerate(child.slices):
        if discriminators and all(e is None for e in expectations[idx]):
            continue
        count = slice_index.count(idx)
        if count < s.min:
            url = extension_slice_url(s)
            if url:     # say what to add: the extension's url, which is what tells extension slices apart
                run.add("error", "structure", path, f"Slice '{s.id}': a matching slice is required, but not found "
                        f"(from {plan.label}): add an extension with the url {url}", plan.label)
            else:
                run.add("error", "structure", path,
                        f"Slice '{s.id}': a matching slice is required, but not found (from {plan.label})",
                        plan.label)
        if s.max is not None and count > s.max:
            run.add("error", "structure", path,
                    f"Slice '{s.id}': max allowed = {s.max}, but found {count} (from {plan.label})", plan.label)
    if slicing.get("ordered"):
        seen = [i for i in slice_index if i is not None]
        if seen != sorted(seen):
            run.add("error", "structure", path, f"{child.path}: the slices are not in the order of the profile")
        if rules == "openAtEnd":
            last_matched = max((n for n, i in enumerate(slice_index) if i is not None), default=-1)
            if any(i is None for i in slice_index[:last_matched]):
                run.add("error", "structure", path, f"{child.path}: unmatched items must come after the slices")
    return nodes


def extension_slice_url(node) -> str | None:
    """The url of the extension a slice of `extension` or `modifierExtension` stands for (its type's profile,
    without a version), or None for other slices."""
    if node.name not in ("extension", "modifierExtension") or len(node.types) != 1:
        return None
    profiles = node.types[0].profiles
    return profiles[0].split("|")[0] if profiles else None
