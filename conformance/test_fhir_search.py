"""FHIR R4 search semantics: declared parameters, token, string and date matching, paging, _include and
_revinclude, POST _search, unknown parameters (search.html)."""
import unicodedata
from urllib.parse import parse_qsl, urlsplit

from vigie.checks import check, failed, not_applicable, passed
from vigie.fhirrest import json_body, link_of, objects_at, resources_of, search, searchset, text_at, values_at

# a value of each search parameter type that no real resource carries: the answer must be empty
NO_MATCH = {"token": "vigie-no-such-code", "string": "zzvigie-no-such-text", "date": "1801-01-01",
            "reference": "vigie-no-such-id", "number": "-987654321", "quantity": "-987654321",
            "uri": "http://vigie.invalid/no-such-uri"}
UNKNOWN_PARAM = "vigie-unknown-param"


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", str(text)) if not unicodedata.combining(c)).casefold()


def _ids(resources) -> list[str]:
    return [r.get("id") for r in resources]


def _declared(capability, rtype: str, parameter: str):
    if rtype not in capability.resources or "search-type" not in capability.interactions(rtype):
        not_applicable(f"the server declares no search on {rtype}")
    params = {p.get("name"): p.get("type") for p in capability.resources[rtype].get("searchParam", [])}
    if parameter not in params:
        not_applicable(f"the server declares no '{parameter}' search parameter on {rtype}")


def _sample(http, rtype: str, element: str, count: int = 50) -> list[dict]:
    """A page of resources that carry the element."""
    found = [r for r in resources_of(search(http, rtype, {"_count": count})) if values_at(r, element)]
    if not found:
        not_applicable(f"no {rtype} served carries {element}")
    return found


@check("fhir.search-params")
def test_declared_parameters_filter(requirement, http, capability, outcome):
    """Every declared parameter is accepted and filters: a value that no resource carries matches nothing."""
    checked, wrong = {}, []
    for rtype in capability.types_with("search-type"):
        for param in capability.resources[rtype].get("searchParam", []):
            name, kind = param.get("name"), param.get("type")
            if kind not in NO_MATCH or not name:
                continue   # composite and special parameters need a value built for them
            response = http.get(rtype, params={name: NO_MATCH[kind], "_count": 1})
            if response.status_code != 200:
                wrong.append(f"{rtype}?{name}={NO_MATCH[kind]} answered {response.status_code}")
                continue
            bundle = json_body(response, f"{rtype}?{name}")
            total = bundle.get("total") if isinstance(bundle.get("total"), int) else None
            matched = len(resources_of(bundle))
            checked[f"{rtype}.{name}"] = total
            if (total or 0) > 0 or matched:
                wrong.append(f"{rtype}?{name}={NO_MATCH[kind]} matched {total or matched} resources: "
                             f"the parameter is not applied")
    outcome.measure(checked=checked, problems=wrong[:20])
    if not checked and not wrong:
        not_applicable("the server declares no search parameter of a simple type")
    if wrong:
        failed(f"{len(wrong)} declared search parameters misbehave, e.g. {wrong[0]}")
    passed(f"{len(checked)} declared search parameters accepted and applied (a value no resource carries "
           "matches nothing)")


@check("fhir.search-token")
def test_token_search(requirement, http, capability, outcome):
    rtype, param = requirement.params.get("resource", "Patient"), requirement.params.get("parameter", "identifier")
    _declared(capability, rtype, param)
    samples = [(r, i) for r in _sample(http, rtype, "identifier") for i in objects_at(r, "identifier")
               if text_at(i, "system") and text_at(i, "value")]
    if not samples:
        not_applicable(f"no {rtype} served has an identifier with a system and a value")
    resource, ident = samples[0]
    system, value = ident["system"], ident["value"]
    results = {}
    for query in (f"{system}|{value}", value):
        found = resources_of(search(http, rtype, {param: query}, f"{rtype}?{param}={query}"))
        results[query] = _ids(found)
        if resource.get("id") not in results[query]:
            failed(f"{rtype}?{param}={query} does not find {rtype}/{resource.get('id')}")
        stray = [r.get("id") for r in found if not any(i.get("value") == value and
                                                        (query == value or i.get("system") == system)
                                                        for i in objects_at(r, "identifier"))]
        if stray:
            failed(f"{rtype}?{param}={query} returned resources without that identifier: {stray[:5]}")
    other = f"http://vigie.invalid/other-system|{value}"
    found = _ids(resources_of(search(http, rtype, {param: other}, f"{rtype}?{param}={other}")))
    results[other] = found
    outcome.measure(searches=results)
    if resource.get("id") in found:
        failed(f"{rtype}?{param}={other} ignores the system and matches on the code")
    passed(f"{rtype}?{param} finds {rtype}/{resource.get('id')} by system|code and by code, and not under "
           "another system")


@check("fhir.search-string")
def test_string_search(requirement, http, capability, outcome):
    rtype = requirement.params.get("resource", "Patient")
    param, element = requirement.params.get("parameter", "family"), requirement.params.get("element", "name.family")
    _declared(capability, rtype, param)
    resource = next((r for r in _sample(http, rtype, element) if len(str(values_at(r, element)[0])) >= 3), None)
    if resource is None:
        not_applicable(f"no {rtype} has a {element} of three characters or more")
    full = str(values_at(resource, element)[0])
    prefix = full[:3].swapcase()    # a prefix in the other case: string search is case-insensitive
    found = resources_of(search(http, rtype, {param: prefix, "_count": 100}, f"{rtype}?{param}={prefix}"))
    outcome.measure(value=full, query=prefix, returned=len(found))
    if resource.get("id") not in _ids(found):
        failed(f"{rtype}?{param}={prefix} does not find {rtype}/{resource.get('id')} ({full}): string search "
               "matches the start of the value, ignoring case")
    stray = [r.get("id") for r in found if not any(_fold(v).startswith(_fold(prefix))
                                                     for v in values_at(r, element))]
    if stray:
        failed(f"{rtype}?{param}={prefix} returned resources whose {element} does not start with it: "
               f"{stray[:5]}")
    passed(f"{rtype}?{param}={prefix} finds {rtype}/{resource.get('id')} ({full}) and only values starting "
           "with it, ignoring case")


@check("fhir.search-date")
def test_date_search(requirement, http, capability, outcome):
    rtype = requirement.params.get("resource", "Patient")
    param, element = requirement.params.get("parameter", "birthdate"), requirement.params.get("element", "birthDate")
    _declared(capability, rtype, param)
    dates = sorted(str(values_at(r, element)[0])[:10] for r in _sample(http, rtype, element, 100))
    pivot = dates[len(dates) // 2]
    totals = {}
    for prefix, keep in (("ge", lambda d: d >= pivot), ("le", lambda d: d <= pivot), ("eq", lambda d: d == pivot)):
        query = prefix + pivot
        bundle = search(http, rtype, {param: query, "_count": 100}, f"{rtype}?{param}={query}")
        found = resources_of(bundle)
        totals[query] = bundle.get("total", len(found))
        stray = [f"{r.get('id')} ({values_at(r, element)[:1]})" for r in found
                 if not any(keep(str(v)[:10]) for v in values_at(r, element))]
        if stray:
            failed(f"{rtype}?{param}={query} returned resources outside the range: {stray[:3]}")
        if not found:
            failed(f"{rtype}?{param}={query} found nothing, yet a served {rtype} has {element} {pivot}")
    outcome.measure(pivot=pivot, totals=totals)
    # ge and le overlap exactly on the pivot day
    if all(isinstance(t, int) for t in totals.values()) and \
            totals[f"eq{pivot}"] > min(totals[f"ge{pivot}"], totals[f"le{pivot}"]):
        failed(f"eq{pivot} matches more than ge{pivot} or le{pivot}")
    passed(f"{rtype}?{param} with ge, le and eq{pivot} returns only resources in range: {totals}")


@check("fhir.paging")
def test_paging(requirement, http, capability, outcome):
    """Following next links visits every match once: no repeat, no gap, each page within _count."""
    rtype, count = requirement.params.get("resource", "Observation"), int(requirement.params.get("count", 50))
    limit = int(requirement.params.get("max_pages", 40))
    if rtype not in capability.types_with("search-type"):
        not_applicable(f"the server declares no search on {rtype}")
    bundle = search(http, rtype, {"_count": count})
    total, seen, repeated, pages = bundle.get("total"), [], [], 0
    while True:
        page = _ids(resources_of(bundle))
        pages += 1
        if len(page) > count:
            failed(f"page {pages} of {rtype} holds {len(page)} entries for _count={count}")
        repeated += [i for i in page if i in seen]
        seen += page
        nxt = link_of(bundle, "next")
        if not nxt or pages >= limit:
            break
        bundle = searchset(http.get(nxt), f"the next link of page {pages} of {rtype}")
    outcome.measure(total=total, pages=pages, seen=len(seen), repeated=len(repeated))
    if repeated:
        failed(f"paging through {rtype} repeats {len(repeated)} entries, e.g. {repeated[0]}")
    if isinstance(total, int) and pages < limit and len(seen) != total:
        failed(f"paging through {rtype} visits {len(seen)} entries, total says {total}")
    passed(f"{pages} pages of {rtype} visit {len(seen)} entries once each" +
           (f" (total {total})" if isinstance(total, int) else ""))


def _reference_keys(resource) -> set[str]:
    """Type/id of every literal reference in a resource."""
    found, stack = set(), [resource]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str) and "/" in ref and not ref.startswith("#"):
                found.add("/".join(ref.split("/")[-2:]))
            stack.extend(v for k, v in node.items() if k != "reference")
        elif isinstance(node, list):
            stack.extend(node)
    return found


@check("fhir.include")
def test_include_and_revinclude(requirement, http, capability, outcome):
    """Every declared _include and _revinclude adds the resources referred to (or referring) to the page."""
    count, done, empty = int(requirement.params.get("count", 5)), {}, []
    for rtype in capability.types_with("search-type"):
        declared = capability.resources[rtype]
        for name in ("_include", "_revinclude"):
            for value in declared.get("searchInclude" if name == "_include" else "searchRevInclude", []):
                if value == "*":
                    continue
                query = f"{rtype}?{name}={value}"
                bundle = search(http, rtype, {name: value, "_count": count}, query)
                matches, included = resources_of(bundle), resources_of(bundle, "include")
                keys = {f"{r.get('resourceType')}/{r.get('id')}" for r in matches}
                if name == "_include":
                    wanted = {k for r in matches for k in _reference_keys(r)}
                    got = {f"{r.get('resourceType')}/{r.get('id')}" for r in included}
                    stray = got - wanted
                    if stray:
                        failed(f"{query} included resources no match refers to: {sorted(stray)[:3]}")
                else:
                    source = value.split(":")[0]
                    stray = [r.get("id") for r in included
                             if r.get("resourceType") != source or not _reference_keys(r) & keys]
                    if stray:
                        failed(f"{query} included resources that refer to no match: {stray[:3]}")
                done[query] = len(included)
                if not included:
                    empty.append(query)
    outcome.measure(included=done)
    if not done:
        not_applicable("the server declares no _include or _revinclude")
    # a declared include that never adds anything on the first page is not working (or has no data)
    if len(empty) >= len(done):
        failed(f"no declared include added any resource, e.g. {empty[0]}")
    if empty:
        outcome.message("declared includes that added nothing on the first page (no data?): " + ", ".join(empty))
    passed(f"{len(done) - len(empty)} of {len(done)} declared includes add the resources they name, and only "
           "those")


@check("fhir.search-post")
def test_post_search_matches_get(requirement, http, capability, outcome):
    count, compared = int(requirement.params.get("count", 10)), {}
    for rtype in capability.types_with("search-type")[:int(requirement.params.get("max_types", 4))]:
        params = {"_count": str(count)}
        get_ids = _ids(resources_of(search(http, rtype, params)))
        response = http.post(f"{rtype}/_search", data=params,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
        if response.status_code != 200:
            failed(f"POST {rtype}/_search answered {response.status_code}")
        post_ids = _ids(resources_of(json_body(response, f"POST {rtype}/_search")))
        compared[rtype] = len(post_ids)
        if post_ids != get_ids:
            failed(f"POST {rtype}/_search returned {post_ids[:3]}..., GET returned {get_ids[:3]}...")
    outcome.measure(compared=compared)
    if not compared:
        not_applicable("the server declares no search-type interaction")
    passed(f"POST _search returns what GET returns on {len(compared)} types")


@check("fhir.unknown-param")
def test_unknown_parameter(requirement, http, capability, outcome):
    """search.html#errors: reject an unknown parameter (400 + OperationOutcome), or ignore it and leave it
    out of the self link, so that a client can see the result is not filtered as asked."""
    rtype = next(iter(capability.types_with("search-type")), None)
    if rtype is None:
        not_applicable("the server declares no search-type interaction")
    response = http.get(rtype, params={UNKNOWN_PARAM: "1", "_count": 1})
    outcome.measure(status=response.status_code)
    if 400 <= response.status_code < 500:
        body = json_body(response, f"{rtype}?{UNKNOWN_PARAM}=1")
        if body.get("resourceType") != "OperationOutcome":
            failed(f"{rtype}?{UNKNOWN_PARAM}=1 was refused without an OperationOutcome")
        passed(f"an unknown parameter is rejected ({response.status_code}, strict handling)")
    if response.status_code != 200:
        failed(f"{rtype}?{UNKNOWN_PARAM}=1 answered {response.status_code}")
    self_link = link_of(json_body(response, f"{rtype}?{UNKNOWN_PARAM}=1"), "self") or ""
    outcome.measure(self_link=self_link)
    used = {name for name, _ in parse_qsl(urlsplit(self_link).query)}
    if UNKNOWN_PARAM in used:
        failed(f"{rtype}?{UNKNOWN_PARAM}=1 was accepted and the self link claims it was applied")
    passed("an unknown parameter is ignored and left out of the self link (lenient handling)")
