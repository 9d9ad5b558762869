"""Bundle rules that R4 states in prose (bundle.html and the definition of Bundle.entry.fullUrl) rather than
as invariants: each entry's fullUrl agrees with its resource, a resource appears once, and a version-specific
reference inside the Bundle finds the version it names."""
from __future__ import annotations

import re

# R4 references.html#regex: what a RESTful URL looks like ([base/]Type/id[/_history/version])
RESTFUL = re.compile(r"((https?)://([A-Za-z0-9\-\\.:%$]*/)+)?([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})"
                     r"(/_history/([A-Za-z0-9\-.]{1,64}))?")
ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def check_bundle(run, bundle, path):
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return
    kind = bundle.get("type")
    identities: dict[tuple, int] = {}
    by_identity: dict[str, tuple[int, dict]] = {}
    for i, entry in enumerate(entries):
        res = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(res, dict):
            continue
        where = f"{path}.entry[{i}]"
        request = entry.get("request")
        if isinstance(request, dict) and request.get("method") == "POST" and not entry.get("fullUrl"):
            continue    # a create: the server gives the resource its id (http.html#create)
        identity = _identity(run, entry, res, where)
        if identity is None:
            continue
        by_identity.setdefault(identity, (i, res))
        version = _version(res)
        key = (identity, version)
        full = entry.get("fullUrl")
        first = identities.get(key)
        if first is None:
            identities[key] = i
        elif kind != "history" and not (isinstance(full, str) and full == entries[first].get("fullUrl")):
            # bundle.html#bundle-unique: a resource (by its identity and version) appears once, history
            # bundles aside; the same fullUrl twice is bdl-7's to report, not repeated here
            shown = f"{identity}|{version}" if version else identity
            run.add("error", "business-rule", where, f"Entry {i} is the same resource as entry {first} ({shown}): "
                    f"a resource can appear only once in a Bundle, unless it is a history")
    if kind in ("document", "message", "collection", "transaction", "batch"):
        _versioned_references(run, entries, by_identity, kind, path)


def _identity(run, entry, res, where) -> str | None:
    """The resource's identity in the Bundle: its fullUrl, or Type/id when it has none or a relative one.
    Bundle.entry.fullUrl (R4): "The Absolute URL for the resource. The fullUrl SHALL NOT disagree with the
    id in the resource ... if the fullUrl does look like a RESTful server URL (meets the regex), then the 'id'
    portion of the fullUrl SHALL end with the Resource.id"."""
    full = entry.get("fullUrl")
    rtype, rid = res.get("resourceType"), res.get("id")
    local = f"{rtype}/{rid}" if isinstance(rtype, str) and isinstance(rid, str) else None
    if not isinstance(full, str) or not full:
        return local
    if not ABSOLUTE.match(full):
        run.add("error", "invalid", f"{where}.fullUrl",
                f"The fullUrl '{full}' is not an absolute URL: an entry's fullUrl identifies its resource "
                f"absolutely (a RESTful URL, or a urn:uuid: or urn:oid:)")
    restful = RESTFUL.fullmatch(full)
    wrong_type = restful is not None and rtype != restful.group(4) and _is_type(run, restful.group(4))
    if restful is not None and (wrong_type or (isinstance(rid, str) and rid != restful.group(5))):
        run.add("error", "invalid", f"{where}.fullUrl",
                    f"The fullUrl '{full}' does not agree with the resource it identifies ({rtype}/{rid}): the "
                    f"type and id at its end must be the resource's")
    if restful and not ABSOLUTE.match(full):
        return f"{restful.group(4)}/{restful.group(5)}"
    return full


def _version(res) -> str | None:
    meta = res.get("meta")
    version = meta.get("versionId") if isinstance(meta, dict) else None
    return version if isinstance(version, str) else None


def _is_type(run, name: str) -> bool:
    plan = run.v.type_plan(name)
    return plan is not None and plan.kind == "resource"


def _versioned_references(run, entries, by_identity, kind, path):
    """bundle.html, resolving references in bundles: a version-specific reference is matched on the URL
    without its version (made absolute with the referring entry's base), then on Resource.meta.versionId.
    A document "contains specific frozen versions of other resources" (R4 documents.html): a version-specific
    reference to one of its entries that names another version points at a resource the document does not
    hold (an error); in other Bundles it is a warning, as the version may be found elsewhere."""
    for i, entry in enumerate(entries):
        res = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(res, dict):
            continue
        full = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else ""
        base = RESTFUL.fullmatch(full)
        base = base.group(1) if base and base.group(1) else ""
        here = f"{path}.entry[{i}].resource/*{res.get('resourceType')}/{res.get('id', 'null')}*/"
        for where, ref in _references(res, here):
            m = RESTFUL.fullmatch(ref)
            if m is None or m.group(7) is None:
                continue
            plain = ref[:m.start(6)]
            found = by_identity.get(plain if m.group(1) else base + plain) or by_identity.get(
                f"{m.group(4)}/{m.group(5)}" if not m.group(1) else "")
            if found is None:
                continue
            target_version = _version(found[1])
            if target_version != m.group(7):
                severity, wanted, entry = "error" if kind == "document" else "warning", m.group(7), found[0]
                if target_version:
                    run.add(severity, "not-found", where, f"The reference '{ref}' names version {wanted}, but "
                            f"entry {entry} of the Bundle holds version {target_version} of that resource")
                else:
                    run.add(severity, "not-found", where, f"The reference '{ref}' names version {wanted}, but "
                            f"entry {entry} of the Bundle holds that resource without a version (meta.versionId)")


def _references(tree, path):
    """(path, reference) of every Reference.reference in a resource, contained resources included."""
    stack = [(tree, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str) and ("display" in node or "identifier" in node or "type" in node
                                         or set(node) <= {"reference", "display", "type", "identifier", "id",
                                                          "extension"}):
                yield where, ref
            for key, value in node.items():
                if isinstance(value, (dict, list)) and key != "reference":
                    stack.append((value, f"{where}.{key}"))
        elif isinstance(node, list):
            for k, value in enumerate(node):
                stack.append((value, f"{where}[{k}]"))
