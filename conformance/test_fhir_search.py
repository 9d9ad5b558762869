"""FHIR R4 search semantics: declared parameters, token, string and date matching, paging, _include and
_revinclude, POST _search, unknown parameters (search.html).

What a search check concludes rests on data: a value no resource carries matching nothing proves a parameter
applied only when the search without it matches something, a page holds nothing to page through when nothing
is served. A type declared searchable that serves nothing leaves such requirements undetermined. A parameter
the profile tests that the CapabilityStatement does not declare is tried: if the server applies it, it is
tested; if not, the requirement is not verified (undetermined), since FHIR lets a server support the
parameters it chooses and the requirements speak of the search semantics, not of one parameter."""
import unicodedata
from urllib.parse import parse_qsl, urlsplit

from vigie.checks import check, failed, not_applicable, passed, undetermined
from vigie.fhirrest import (
    NO_MATCH,
    declared_search,
    has_instances,
    json_body,
    link_of,
    matched,
    none_served,
    objects_at,
    resources_of,
    search,
    searchset,
    text_at,
    values_at,
)
from vigie.masking import shown_value

UNKNOWN_PARAM = "vigie-unknown-param"


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", str(text)) if not unicodedata.combining(c)).casefold()


def _ids(resources) -> list[str]:
    return [r.get("id") for r in resources]


def _declared_names(capability, rtype: str) -> set[str]:
    return {p.get("name") for p in capability.resources.get(rtype, {}).get("searchParam", [])}


def _supported(http, capability, rtype: str, parameter: str, kind: str, outcome):
    """The parameter is declared, or the server applies it; else the requirement is not verified."""
    declared_search(capability, rtype)
    if parameter in _declared_names(capability, rtype):
        return
    if not has_instances(http, rtype):
        none_served(rtype)
    query = f"{rtype}?{parameter}={NO_MATCH[kind]}"
    response = http.get(rtype, params={parameter: NO_MATCH[kind], "_count": 1})
    if response.status_code != 200:
        undetermined(f"the CapabilityStatement does not declare {rtype}?{parameter} and {query} answered "
                     f"{response.status_code}: the {kind} search the requirement tests on it was not verified")
    found = matched(json_body(response, query))
    if found:
        undetermined(f"{rtype}?{parameter} is neither declared nor applied ({query} matched {found} resources): "
                     f"the {kind} search the requirement tests on it was not verified")
    outcome.message(f"{rtype}?{parameter} is not declared in the CapabilityStatement, but the server applies it")


def _sample(http, rtype: str, element: str, purpose: str, count: int = 50) -> list[dict]:
    """A page of resources that carry the element."""
    served = resources_of(search(http, rtype, {"_count": count}))
    if not served:
        none_served(rtype)
    found = [r for r in served if values_at(r, element)]
    if not found:
        undetermined(f"none of the {len(served)} {rtype} served carries {element}: {purpose} could not be "
                     f"exercised")
    return found


@check("fhir.search-params")
def test_declared_parameters_filter(requirement, http, capability, outcome):
    """Every declared parameter is accepted and filters: a value that no resource carries matches nothing,
    where the search without it matches something."""
    checked, wrong, empty, silent = {}, [], [], []
    for rtype in capability.types_with("search-type"):
        params = [p for p in capability.resources[rtype].get("searchParam", []) if p.get("type") in NO_MATCH]
        if not capability.resources[rtype].get("searchParam"):
            silent.append(rtype)
        if not params:
            continue   # composite and special parameters need a value built for them
        if not has_instances(http, rtype):
            empty.append(rtype)
            continue
        for param in params:
            name, kind = param["name"], param["type"]
            response = http.get(rtype, params={name: NO_MATCH[kind], "_count": 1})
            if response.status_code != 200:
                wrong.append(f"{rtype}?{name}={NO_MATCH[kind]} answered {response.status_code}")
                continue
            found = matched(json_body(response, f"{rtype}?{name}"))
            checked[f"{rtype}.{name}"] = found
            if found:
                wrong.append(f"{rtype}?{name}={NO_MATCH[kind]} matched {found} resources: the parameter is not "
                             f"applied")
    outcome.measure(checked=checked, problems=wrong[:20], no_instance=empty, no_parameter_declared=silent)
    if wrong:
        failed(f"{len(wrong)} declared search parameters misbehave, e.g. {wrong[0]}")
    if empty:
        undetermined(f"the server declares search parameters on {', '.join(empty)} but served no instance: "
                     f"whether they are applied could not be observed")
    if not checked:
        undetermined("the CapabilityStatement declares no search parameter of a simple type on its searchable "
                     "types" + (f" ({', '.join(silent[:5])} declare none at all)" if silent else "") +
                     ": there is no declared parameter to verify")
    passed(f"{len(checked)} declared search parameters accepted and applied (a value no resource carries "
           "matches nothing, while the search without it matches)")


@check("fhir.search-token")
def test_token_search(requirement, http, capability, outcome):
    rtype, param = requirement.params.get("resource", "Patient"), requirement.params.get("parameter", "identifier")
    _supported(http, capability, rtype, param, "token", outcome)
    samples = [(r, i) for r in _sample(http, rtype, "identifier", "token search") for i in objects_at(r, "identifier")
               if text_at(i, "system") and text_at(i, "value")]
    if not samples:
        undetermined(f"no {rtype} served has an identifier with a system and a value: token search could not be "
                     f"exercised")
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
    _supported(http, capability, rtype, param, "string", outcome)
    resource = next((r for r in _sample(http, rtype, element, "string search")
                     if len(str(values_at(r, element)[0])) >= 3), None)
    if resource is None:
        undetermined(f"no {rtype} served has a {element} of three characters or more: string search could not "
                     f"be exercised")
    full = str(values_at(resource, element)[0])
    shown = shown_value(rtype, param, full)   # a patient's name is masked in what the report keeps
    prefix = full[:3].swapcase()    # a prefix in the other case: string search is case-insensitive
    found = resources_of(search(http, rtype, {param: prefix, "_count": 100}, f"{rtype}?{param}={prefix}"))
    outcome.measure(value=shown, query=prefix, returned=len(found))
    if resource.get("id") not in _ids(found):
        failed(f"{rtype}?{param}={prefix} does not find {rtype}/{resource.get('id')} ({shown}): string search "
               "matches the start of the value, ignoring case")
    stray = [r.get("id") for r in found if not any(_fold(v).startswith(_fold(prefix))
                                                     for v in values_at(r, element))]
    if stray:
        failed(f"{rtype}?{param}={prefix} returned resources whose {element} does not start with it: "
               f"{stray[:5]}")
    passed(f"{rtype}?{param}={prefix} finds {rtype}/{resource.get('id')} ({shown}) and only values starting "
           "with it, ignoring case")


@check("fhir.search-date")
def test_date_search(requirement, http, capability, outcome):
    rtype = requirement.params.get("resource", "Patient")
    param, element = requirement.params.get("parameter", "birthdate"), requirement.params.get("element", "birthDate")
    _supported(http, capability, rtype, param, "date", outcome)
    dates = sorted(str(values_at(r, element)[0])[:10] for r in _sample(http, rtype, element, "date search", 100))
    pivot = dates[len(dates) // 2]
    shown = shown_value(rtype, param, pivot)   # a patient's birth date is masked in what the report keeps
    totals = {}
    for prefix, keep in (("ge", lambda d: d >= pivot), ("le", lambda d: d <= pivot), ("eq", lambda d: d == pivot)):
        query = prefix + pivot
        bundle = search(http, rtype, {param: query, "_count": 100}, f"{rtype}?{param}={query}")
        found = resources_of(bundle)
        totals[query] = bundle.get("total", len(found))
        stray = [f"{r.get('id')} ({shown_value(rtype, param, str(values_at(r, element)[:1]))})" for r in found
                 if not any(keep(str(v)[:10]) for v in values_at(r, element))]
        if stray:
            failed(f"{rtype}?{param}={query} returned resources outside the range: {stray[:3]}")
        if not found:
            failed(f"{rtype}?{param}={query} found nothing, yet a served {rtype} has {element} {shown}")
    outcome.measure(pivot=shown, totals={k.replace(pivot, shown): v for k, v in totals.items()})
    # ge and le overlap exactly on the pivot day
    if all(isinstance(t, int) for t in totals.values()) and \
            totals[f"eq{pivot}"] > min(totals[f"ge{pivot}"], totals[f"le{pivot}"]):
        failed(f"eq{shown} matches more than ge{shown} or le{shown}")
    passed(f"{rtype}?{param} with ge, le and eq{shown} returns only resources in range "
           f"({', '.join(str(t) for t in totals.values())} found)")


@check("fhir.paging")
def test_paging(requirement, http, capability, outcome):
    """Following next links visits every match once: no repeat, no gap, each page within _count. Where the
    matches fit on one page, the page size is lowered so that there are pages to follow."""
    rtype, count = requirement.params.get("resource", "Observation"), int(requirement.params.get("count", 50))
    limit = int(requirement.params.get("max_pages", 40))
    declared_search(capability, rtype)
    walk = _page_through(http, rtype, count, limit)
    if walk["pages"] == 1 and len(walk["seen"]) > 1:
        count = max(1, len(walk["seen"]) // 2)
        walk = _page_through(http, rtype, count, limit)
    total, seen, pages = walk["total"], walk["seen"], walk["pages"]
    outcome.measure(total=total, pages=pages, seen=len(seen), repeated=len(walk["repeated"]), count=count)
    if walk["repeated"]:
        failed(f"paging through {rtype} repeats {len(walk['repeated'])} entries, e.g. {walk['repeated'][0]}")
    if isinstance(total, int) and pages < limit and len(seen) != total:
        failed(f"paging through {rtype} visits {len(seen)} entries, total says {total}")
    if not seen:
        none_served(rtype, "to page through")
    if pages == 1:
        undetermined(f"the server served {len(seen)} {rtype}: one page, no next link to follow")
    passed(f"{pages} pages of {rtype} (_count={count}) visit {len(seen)} entries once each" +
           (f" (total {total})" if isinstance(total, int) else ""))


def _page_through(http, rtype: str, count: int, limit: int) -> dict:
    """The ids seen following next links from a search with _count, at most `limit` pages; a failed check
    when a page holds more than `count` entries."""
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
            return {"total": total, "seen": seen, "repeated": repeated, "pages": pages}
        bundle = searchset(http.get(nxt), f"the next link of page {pages} of {rtype}")


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


def _check_included(query: str, name: str, value: str, matches: list, included: list) -> None:
    """Fails the check when an include adds a resource that the matches do not refer to (or that refers to
    none of them)."""
    keys = {f"{r.get('resourceType')}/{r.get('id')}" for r in matches}
    if name == "_include":
        wanted = {k for r in matches for k in _reference_keys(r)}
        stray = sorted({f"{r.get('resourceType')}/{r.get('id')}" for r in included} - wanted)
        if stray:
            failed(f"{query} included resources no match refers to: {stray[:3]}")
    else:
        source = value.split(":")[0]
        stray = [r.get("id") for r in included if r.get("resourceType") != source or not _reference_keys(r) & keys]
        if stray:
            failed(f"{query} included resources that refer to no match: {stray[:3]}")


def _no_include_declared(capability) -> None:
    """No include declared: an observed reason only when the CapabilityStatement declares the searches
    it supports; a statement silent about its search parameters says nothing of includes either."""
    silent = [t for t in capability.types_with("search-type") if not capability.resources[t].get("searchParam")]
    if silent:
        undetermined(f"the CapabilityStatement declares no _include or _revinclude, nor any search parameter on "
                     f"{', '.join(silent[:5])}: what the server supports is not declared, so its includes "
                     f"cannot be verified")
    not_applicable("the CapabilityStatement declares search parameters but no _include or _revinclude")


@check("fhir.include")
def test_include_and_revinclude(requirement, http, capability, outcome):
    """Every declared _include and _revinclude adds the resources referred to (or referring) to the page."""
    count, done, empty, unseen = int(requirement.params.get("count", 5)), {}, [], []
    for rtype in capability.types_with("search-type"):
        declared = capability.resources[rtype]
        for name in ("_include", "_revinclude"):
            for value in declared.get("searchInclude" if name == "_include" else "searchRevInclude", []):
                if value == "*":
                    continue
                query = f"{rtype}?{name}={value}"
                bundle = search(http, rtype, {name: value, "_count": count}, query)
                matches, included = resources_of(bundle), resources_of(bundle, "include")
                _check_included(query, name, value, matches, included)
                if not matches:
                    unseen.append(query)     # no match to include from: nothing observed
                    continue
                done[query] = len(included)
                if not included:
                    empty.append(query)
    outcome.measure(included=done, no_match=unseen)
    if not done and not unseen:
        _no_include_declared(capability)
    if not done:
        undetermined(f"none of the {len(unseen)} declared include searches matched a resource to include "
                     f"from, e.g. {unseen[0]}")
    # a declared include that never adds anything on the first page is not working (or has no data)
    if len(empty) >= len(done):
        failed(f"no declared include added any resource, e.g. {empty[0]}")
    if empty or unseen:
        outcome.message("declared includes that added nothing on the first page (no data?): " +
                        ", ".join(empty + unseen))
    passed(f"{len(done) - len(empty)} of {len(done) + len(unseen)} declared includes add the resources they "
           "name, and only those")


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
        not_applicable("the CapabilityStatement declares no search-type interaction")
    if not any(compared.values()):
        undetermined(f"GET and POST searches of {', '.join(compared)} both returned nothing: two empty answers "
                     f"do not show that POST applies what GET applies")
    passed(f"POST _search returns what GET returns on {len(compared)} types")


def _lenient_baseline(http, capability) -> tuple[str, dict] | tuple[None, None]:
    """The first searchable type (of the first few) that serves instances, and its search without criteria."""
    for rtype in capability.types_with("search-type")[:4]:
        bundle = search(http, rtype, {"_count": 1})
        if matched(bundle):
            return rtype, bundle
    return None, None


@check("fhir.unknown-param")
def test_unknown_parameter(requirement, http, capability, outcome):
    """search.html#errors: reject an unknown parameter (400 + OperationOutcome), or ignore it: then the self
    link leaves it out (the server SHALL return the parameters it used) and the result is what the search
    without it returns, so that a client can see the result is not filtered as asked."""
    types = capability.types_with("search-type")
    if not types:
        not_applicable("the CapabilityStatement declares no search-type interaction")
    rtype, baseline = _lenient_baseline(http, capability)
    rtype = rtype or types[0]
    query = f"{rtype}?{UNKNOWN_PARAM}=1"
    response = http.get(rtype, params={UNKNOWN_PARAM: "1", "_count": 1})
    outcome.measure(status=response.status_code)
    if 400 <= response.status_code < 500:
        body = json_body(response, query)
        if body.get("resourceType") != "OperationOutcome":
            failed(f"{query} was refused without an OperationOutcome")
        passed(f"an unknown parameter is rejected ({response.status_code}, strict handling)")
    if response.status_code != 200:
        failed(f"{query} answered {response.status_code}")
    bundle = json_body(response, query)
    self_link = link_of(bundle, "self")
    outcome.measure(self_link=self_link)
    if not self_link:
        failed(f"{query} was accepted, and the answer has no self link: a client cannot tell whether the "
               f"parameter was applied")
    if UNKNOWN_PARAM in {name for name, _ in parse_qsl(urlsplit(self_link).query)}:
        failed(f"{query} was accepted and the self link claims it was applied")
    if baseline is None:
        undetermined(f"{query} was accepted and left out of the self link, but no searchable type served an "
                     f"instance: whether the result was filtered anyway could not be observed")
    without, with_it = (matched(baseline), _ids(resources_of(baseline))), (matched(bundle), _ids(resources_of(bundle)))
    outcome.measure(without=without, with_unknown=with_it)
    if without != with_it:
        failed(f"{query} is left out of the self link, yet it changed the result ({without[0]} matches without it, "
               f"{with_it[0]} with it): the search was filtered silently")
    passed(f"an unknown parameter is ignored: left out of the self link, and {query} returns what the search "
           f"without it returns ({without[0]} matches; lenient handling)")
