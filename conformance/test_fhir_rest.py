"""FHIR R4 RESTful API: capability statement, content types, read, search, errors."""
from vigie.checks import check, not_applicable
from vigie.fhirrest import FHIR_JSON, ids_of, json_body, link_of, resources_of, search, searchset, text_at

MISSING_ID = "vigie-does-not-exist-0"
# CapabilityStatement.rest.resource.interaction.code and searchParam.type (R4 value sets, required bindings)
INTERACTIONS = {"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create",
                "search-type"}
SEARCH_TYPES = {"number", "date", "string", "token", "reference", "composite", "quantity", "uri", "special"}


def _media_type(response) -> str:
    return response.headers.get("Content-Type", "").split(";")[0].strip().lower()


@check("fhir.capability")
def test_capability_statement(requirement, capability, outcome):
    cs = capability.statement
    outcome.measure(fhirVersion=cs.get("fhirVersion"), format=cs.get("format"),
                    resources=sorted(capability.resources))
    expected = requirement.params.get("fhir_version", "4.0.1")
    assert cs.get("fhirVersion") == expected, f"fhirVersion is {cs.get('fhirVersion')!r}, expected {expected}"
    outcome.measure(malformed=capability.defects[:20])
    assert not capability.defects, \
        f"{len(capability.defects)} malformed parts in the CapabilityStatement, e.g. {capability.defects[0]}"
    formats = set(capability.formats)
    assert formats & {"json", FHIR_JSON}, f"JSON is not among the declared formats {sorted(formats)}"
    assert capability.server, "no rest entry in server mode"
    assert capability.resources, "the server declares no resource"
    problems = []
    for rtype, declared in capability.resources.items():
        codes = [i.get("code") for i in declared.get("interaction", [])]
        problems += [f"{rtype}: unknown interaction {c!r}" for c in codes if c not in INTERACTIONS]
        if not codes:
            problems.append(f"{rtype}: no interaction declared")
        for param in declared.get("searchParam", []):
            if not param.get("name") or param.get("type") not in SEARCH_TYPES:
                problems.append(f"{rtype}: search parameter {param.get('name')!r} has type {param.get('type')!r}")
    outcome.measure(interactions={t: sorted(capability.interactions(t)) for t in capability.resources},
                    search_params={t: [p.get("name") for p in d.get("searchParam", [])]
                                   for t, d in capability.resources.items()})
    assert not problems, f"{len(problems)} problems in the declared resources, e.g. {problems[0]}"


@check("fhir.content-type")
def test_content_type(requirement, http, capability, outcome):
    allowed = set(requirement.params.get("allowed", [FHIR_JSON]))
    paths = ["metadata"] + [f"{t}?_count=1" for t in capability.types_with("search-type")[:3]]
    seen = {p: _media_type(http.get(p)) for p in paths}
    outcome.measure(content_types=seen)
    wrong = {p: t for p, t in seen.items() if t not in allowed}
    assert not wrong, "wrong content type: " + ", ".join(f"{p} → {t or 'none'}" for p, t in wrong.items())


@check("fhir.read")
def test_read(requirement, http, capability, outcome):
    types = [t for t in capability.types_with("read") if "search-type" in capability.interactions(t)]
    if not types:
        not_applicable("no resource type declares both read and search-type")
    read = {}
    for rtype in types:
        bundle = search(http, rtype, {"_count": 1})
        ids = ids_of(resources_of(bundle))
        if not ids:
            outcome.message(f"{rtype}: no instance to read")
            continue
        rid = ids[0]
        response = http.get(f"{rtype}/{rid}")
        assert response.status_code == 200, f"GET {rtype}/{rid} answered {response.status_code}"
        body = json_body(response, f"{rtype}/{rid}")
        assert body.get("resourceType") == rtype and body.get("id") == rid, \
            f"GET {rtype}/{rid} returned {body.get('resourceType')}/{body.get('id')}"
        read[rtype] = rid
    outcome.measure(read=read)
    assert read, "no declared resource type had an instance to read"


@check("fhir.search")
def test_search(requirement, http, capability, outcome):
    count = int(requirement.params.get("count", 5))
    results = {}
    for rtype in capability.types_with("search-type"):
        bundle = search(http, rtype, {"_count": count}, f"GET {rtype}?_count={count}")
        entries = resources_of(bundle, None)
        assert len(entries) <= count, f"{rtype} search returned {len(entries)} entries for _count={count}"
        wrong = {str(r.get("resourceType")) for r in entries} - {rtype}
        assert not wrong or wrong <= {"OperationOutcome"}, f"{rtype} search returned {sorted(wrong)}"
        total = bundle.get("total")
        nxt = link_of(bundle, "next")
        if isinstance(total, int) and total > count:
            assert nxt, f"{rtype} search: {total} matches but no next link"
            page = searchset(http.get(nxt), f"the next link of the {rtype} search")
            assert resources_of(page, None), f"{rtype} search: the next page is empty"
            first_ids = {text_at(r, "id") for r in entries}
            second_ids = {text_at(r, "id") for r in resources_of(page, None)}
            assert not first_ids & second_ids, f"{rtype} search: the next page repeats the first page"
        results[rtype] = {"total": total, "returned": len(entries), "next": bool(nxt)}
    outcome.measure(searches=results)
    assert results, "the server declares no search-type interaction"


@check("fhir.errors")
def test_errors_are_operation_outcomes(requirement, http, capability, outcome):
    rtype = next(iter(capability.types_with("read")), "Patient")
    probes = {f"{rtype}/{MISSING_ID}": 404, "VigieUnknownType/1": None}
    seen = {}
    for path, expected in probes.items():
        response = http.get(path)
        seen[path] = response.status_code
        assert 400 <= response.status_code < 500, f"GET {path} answered {response.status_code}, expected a 4xx"
        if expected:
            assert response.status_code == expected, f"GET {path} answered {response.status_code}, expected {expected}"
        body = json_body(response, f"GET {path}")
        assert body.get("resourceType") == "OperationOutcome", \
            f"GET {path}: the error body is a {body.get('resourceType')}, not an OperationOutcome"
        assert body.get("issue"), f"GET {path}: the OperationOutcome has no issue"
    outcome.measure(statuses=seen)


@check("fhir.references")
def test_references_resolve(requirement, http, capability, outcome):
    """Literal references between served resources (Type/id) can be read."""
    per_type = int(requirement.params.get("per_type", 5))
    readable = set(capability.types_with("read"))
    refs, sources = {}, 0
    for rtype in capability.types_with("search-type"):
        for resource in resources_of(search(http, rtype, {"_count": per_type})):
            sources += 1
            for key in _literal_references(resource):
                refs.setdefault(key, f"{rtype}/{resource.get('id')}")
    checked, broken = 0, []
    for key, source in sorted(refs.items())[:int(requirement.params.get("max_references", 60))]:
        if key.split("/")[0] not in readable:
            continue
        checked += 1
        status = http.get(key).status_code
        if status != 200:
            broken.append(f"{source} → {key} ({status})")
    outcome.measure(resources=sources, references=len(refs), checked=checked, broken=broken[:20])
    if not checked:
        not_applicable("no served resource refers to a readable resource")
    assert not broken, f"{len(broken)} of {checked} references do not resolve, e.g. {broken[0]}"


def _literal_references(resource) -> set[str]:
    """Type/id of the relative literal references of a resource (absolute URLs may point elsewhere)."""
    found, stack = set(), [resource]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str) and ref.count("/") == 1 and not ref.startswith(("#", "urn:")):
                found.add(ref)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found
