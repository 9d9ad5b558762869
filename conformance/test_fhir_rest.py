"""FHIR R4 RESTful API: capability statement, content types, read, search, errors.

A requirement passes only on what was observed: a type declared readable or searchable that serves no
instance leaves what needs an instance undetermined (an empty server is no evidence of conformance)."""
from vigie.checks import check, failed, not_applicable, not_tested, passed, undetermined
from vigie.fhirrest import (
    FHIR_JSON,
    ids_of,
    json_body,
    link_of,
    none_served,
    resources_of,
    search,
    searchset,
    text_at,
)

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
    if cs.get("fhirVersion") != expected:
        failed(f"fhirVersion is {cs.get('fhirVersion')!r}, expected {expected}")
    outcome.measure(malformed=capability.defects[:20])
    if capability.defects:
        failed(f"{len(capability.defects)} malformed parts in the CapabilityStatement, e.g. {capability.defects[0]}")
    formats = set(capability.formats)
    if not formats & {"json", FHIR_JSON}:
        failed(f"JSON is not among the declared formats {sorted(formats)}")
    if not capability.server:
        failed("no rest entry in server mode")
    if not capability.resources:
        failed("the server declares no resource")
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
    # capabilitystatement.html: rest.resource.searchParam lists the parameters a search supports; a
    # searchable type that declares none leaves clients (and vigie) to guess
    problems += [f"{t}: search-type declared without any search parameter"
                 for t in capability.types_with("search-type") if not capability.resources[t].get("searchParam")]
    if problems:
        failed(f"{len(problems)} problems in the declared resources, e.g. {problems[0]}")
    passed(f"FHIR {expected}, JSON, {len(capability.resources)} resource types declared with valid interactions "
           "and search parameters")


@check("fhir.content-type")
def test_content_type(requirement, http, capability, outcome):
    allowed = set(requirement.params.get("allowed", [FHIR_JSON]))
    paths = ["metadata"] + [f"{t}?_count=1" for t in capability.types_with("search-type")[:3]]
    seen = {p: _media_type(http.get(p)) for p in paths}
    outcome.measure(content_types=seen)
    wrong = {p: t for p, t in seen.items() if t not in allowed}
    if wrong:
        failed("wrong content type: " + ", ".join(f"{p} → {t or 'none'}" for p, t in wrong.items()))
    if len(seen) < 2:
        undetermined("the CapabilityStatement declares no search-type interaction: only the CapabilityStatement "
                     "itself could be fetched, no answer carrying resources")
    passed(f"{len(seen)} answers in {', '.join(sorted(set(seen.values())))}")


@check("fhir.read")
def test_read(requirement, http, capability, outcome):
    readable = capability.types_with("read")
    if not readable:
        not_applicable("the CapabilityStatement declares no read interaction")
    # vigie finds an id to read by searching: a type declared readable but not searchable cannot be read here
    types = [t for t in readable if "search-type" in capability.interactions(t)]
    unsearchable = [t for t in readable if t not in types]
    read, empty = {}, []
    for rtype in types:
        bundle = search(http, rtype, {"_count": 1})
        ids = ids_of(resources_of(bundle))
        if not ids:
            empty.append(rtype)
            continue
        rid = ids[0]
        response = http.get(f"{rtype}/{rid}")
        if response.status_code != 200:
            failed(f"GET {rtype}/{rid} answered {response.status_code}")
        body = json_body(response, f"{rtype}/{rid}")
        if body.get("resourceType") != rtype or body.get("id") != rid:
            failed(f"GET {rtype}/{rid} returned {body.get('resourceType')}/{body.get('id')}")
        read[rtype] = rid
    outcome.measure(read=read, no_instance=empty, read_without_search=unsearchable)
    if empty:
        undetermined(f"the server declares read and search on {', '.join(empty)} but served no instance to read")
    if unsearchable:
        not_tested(f"{', '.join(unsearchable)} declare read without search-type: vigie finds the id to read by "
                   f"searching, so their read was not exercised (read on {len(read)} other types returned them)")
    passed(f"read one instance of each of {len(read)} types: {', '.join(sorted(read))}")


@check("fhir.search")
def test_search(requirement, http, capability, outcome):
    count = int(requirement.params.get("count", 5))
    results = {}
    for rtype in capability.types_with("search-type"):
        bundle = search(http, rtype, {"_count": count}, f"GET {rtype}?_count={count}")
        entries = resources_of(bundle, None)
        if len(entries) > count:
            failed(f"{rtype} search returned {len(entries)} entries for _count={count}")
        wrong = {str(r.get("resourceType")) for r in entries} - {rtype}
        if wrong and not wrong <= {"OperationOutcome"}:
            failed(f"{rtype} search returned {sorted(wrong)}")
        total = bundle.get("total")
        nxt = link_of(bundle, "next")
        if isinstance(total, int) and total > count:
            if not nxt:
                failed(f"{rtype} search: {total} matches but no next link")
            page = searchset(http.get(nxt), f"the next link of the {rtype} search")
            if not resources_of(page, None):
                failed(f"{rtype} search: the next page is empty")
            first_ids = {text_at(r, "id") for r in entries}
            second_ids = {text_at(r, "id") for r in resources_of(page, None)}
            if first_ids & second_ids:
                failed(f"{rtype} search: the next page repeats the first page")
        results[rtype] = {"total": total, "returned": len(entries), "next": bool(nxt)}
    outcome.measure(searches=results)
    if not results:
        failed("the server declares no search-type interaction")
    if not any(r["returned"] for r in results.values()):
        none_served(", ".join(results), "to page through")
    paged = [t for t, r in results.items() if r["next"]]
    if not paged:
        undetermined(f"no declared search returned more than {count} matches: whether _count is honoured and "
                     f"pages are linked could not be observed ({len(results)} types searched, each a searchset)")
    passed(f"{len(results)} types searched with _count={count}, every page within its count; next links followed "
           f"on {len(paged)} types")


@check("fhir.errors")
def test_errors_are_operation_outcomes(requirement, http, capability, outcome):
    rtype = next(iter(capability.types_with("read")), "Patient")
    probes = {f"{rtype}/{MISSING_ID}": 404, "VigieUnknownType/1": None}
    seen = {}
    for path, expected in probes.items():
        response = http.get(path)
        seen[path] = response.status_code
        if not 400 <= response.status_code < 500:
            failed(f"GET {path} answered {response.status_code}, expected a 4xx")
        if expected and response.status_code != expected:
            failed(f"GET {path} answered {response.status_code}, expected {expected}")
        body = json_body(response, f"GET {path}")
        if body.get("resourceType") != "OperationOutcome":
            failed(f"GET {path}: the error body is a {body.get('resourceType')}, not an OperationOutcome")
        if not body.get("issue"):
            failed(f"GET {path}: the OperationOutcome has no issue")
    passed("errors are 4xx with an OperationOutcome: " + ", ".join(f"{p} → {s}" for p, s in seen.items()),
           statuses=seen)


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
    if not sources:
        undetermined("the searchable types declared served no resource whose references could be followed")
    if not checked:
        not_applicable(f"none of the {sources} resources served refers to a resource of a readable type")
    if broken:
        failed(f"{len(broken)} of {checked} references do not resolve, e.g. {broken[0]}")
    passed(f"{checked} references from {sources} resources resolve")


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
