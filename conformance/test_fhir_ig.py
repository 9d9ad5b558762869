"""Requirements generated from an implementation guide's CapabilityStatements (vigie/igprofile.py): the
server supports each declared interaction, search parameter and _include/_revinclude.

Support is observed on data: a read needs an instance, a parameter that matches nothing proves it applied
only where the search without it matches something, an include needs a resource to add. A type that serves
nothing leaves these requirements undetermined."""
from vigie.checks import check, failed, not_tested, passed, undetermined
from vigie.fhirrest import NO_MATCH, json_body, matched, resources_of, search, values_at

# interactions that change data: vigie sends no writes to a system under test
WRITES = {"create", "update", "patch", "delete"}


def _declares(capability, rtype, what, outcome):
    """What the target's own CapabilityStatement says (informative: the behaviour is what is tested)."""
    declared = capability.resources.get(rtype)
    outcome.measure(declared_by_target=bool(declared and what(declared)))


def _served(http, rtype: str, purpose: str) -> dict:
    """A search of rtype that matched something, else undetermined."""
    bundle = search(http, rtype, {"_count": 1}, f"GET {rtype}?_count=1")
    if not matched(bundle):
        undetermined(f"GET {rtype}?_count=1 answered an empty searchset: the server served no {rtype} {purpose}")
    return bundle


@check("ig.interaction")
def test_ig_interaction(requirement, http, capability, outcome):
    rtype, code = requirement.params["resource"], requirement.params["interaction"]
    _declares(capability, rtype, lambda d: code in {i.get("code") for i in d.get("interaction", [])}, outcome)
    if code in WRITES:
        not_tested(f"{code} changes data: vigie does not send writes to a system under test")
    if code not in ("read", "search-type"):
        not_tested(f"the {code} interaction is not exercised by this version of vigie")
    # an empty searchset is also what a server answers for a type it does not hold: support shows on data
    found = resources_of(_served(http, rtype, "to search or read"))
    if code == "search-type":
        passed(f"GET {rtype}?_count=1 answered a searchset Bundle with {rtype} matches")
    rid = found[0].get("id") if found else None
    if not isinstance(rid, str):
        undetermined(f"GET {rtype}?_count=1 returned no {rtype} with an id to read")
    response = http.get(f"{rtype}/{rid}")
    if response.status_code != 200:
        failed(f"GET {rtype}/{rid} answered {response.status_code}")
    body = json_body(response, f"{rtype}/{rid}")
    if (body.get("resourceType"), body.get("id")) != (rtype, rid):
        failed(f"GET {rtype}/{rid} returned {body.get('resourceType')}/{body.get('id')}")
    passed(f"GET {rtype}/{rid} returned it")


@check("ig.search-param")
def test_ig_search_parameter(requirement, http, capability, outcome):
    rtype, code, kind = requirement.params["resource"], requirement.params["code"], requirement.params.get("type")
    _declares(capability, rtype, lambda d: code in {p.get("name") for p in d.get("searchParam", [])}, outcome)
    if requirement.params.get("definition_not_loaded"):
        undetermined(f"the SearchParameter {requirement.params['definition_not_loaded']} that gives the HTTP name of "
                     f"'{requirement.params.get('label', code)}' is in no loaded package (add the guide's "
                     f"dependencies with vigie packages add): the name '{code}' may not be the one to send")
    if kind not in NO_MATCH:
        not_tested(f"{code} is a {kind} parameter: vigie cannot build a value for it generically")
    value = NO_MATCH[kind]
    response = http.get(rtype, params={code: value, "_count": 1})
    outcome.measure(status=response.status_code)
    if response.status_code != 200:
        failed(f"GET {rtype}?{code}={value} answered {response.status_code}: the parameter is not supported")
    found = matched(json_body(response, f"{rtype}?{code}"))
    outcome.measure(matched=found)
    if found:
        failed(f"GET {rtype}?{code}={value} matched {found} resources: the parameter is not applied")
    _served(http, rtype, "for the parameter to filter out")
    passed(f"GET {rtype}?{code}={value} is accepted and matches nothing, while GET {rtype} matches")


def _included_one_by_one(http, rtype: str, name: str, value: str, matches: list[dict]) -> int:
    """Resources included when the search is narrowed to each match in turn (by _id)."""
    for match in matches[:5]:
        if not isinstance(match.get("id"), str):
            continue
        response = http.get(rtype, params={"_id": match["id"], name: value})
        included = len(resources_of(json_body(response, f"{rtype}?_id={match['id']}&{name}={value}"), "include")) \
            if response.status_code == 200 else 0
        if included:
            return included
    return 0


def _evidence_of_something_to_include(http, rtype: str, name: str, value: str, matches: list[dict]) -> str | None:
    """What shows there was a resource to include, observed without the include: for _include=Source:param, a
    match whose element of that name (R4 names most reference parameters after their element, case aside:
    partof, partOf) holds a literal reference to another resource, any element for _include=*;
    for _revinclude=Source:param, a Source found by searching param=<a match>. None when nothing shows it (the
    include may be right, with nothing to add)."""
    source, _, param = value.partition(":")
    if name.startswith("_include") and (value == "*" or source == rtype):
        for match in matches:
            own = f"{match.get('resourceType')}/{match.get('id')}"
            elements = [k for k in match if value == "*" or k.lower() == param.lower()]
            for element in elements:
                for ref in values_at(match, element):
                    target = ref.get("reference") if isinstance(ref, dict) else None
                    # narrowed to this match alone (as tried above), anything else it refers to is to include
                    if isinstance(target, str) and target.count("/") == 1 and target != own:
                        return f"{match.get('resourceType')}/{match.get('id')}.{element} refers to {target}"
        return None
    if name == "_revinclude" and param and param != "*":
        for match in matches[:3]:
            key = f"{match.get('resourceType')}/{match.get('id')}"
            response = http.get(source, params={param: key, "_count": 1})
            if response.status_code == 200 and matched(json_body(response, f"{source}?{param}={key}")):
                return f"{source}?{param}={key} finds a {source} that refers to a match"
    return None


@check("ig.include")
def test_ig_include(requirement, http, capability, outcome):
    rtype, name, value = requirement.params["resource"], requirement.params["parameter"], requirement.params["value"]
    key = "searchInclude" if name == "_include" else "searchRevInclude"
    _declares(capability, rtype, lambda d: value in d.get(key, []), outcome)
    # an _include whose source is another type follows an earlier include: it needs :iterate
    if name == "_include" and value != "*" and value.split(":")[0] != rtype:
        name = "_include:iterate"
    response = http.get(rtype, params={name: value, "_count": 5})
    outcome.measure(status=response.status_code)
    if response.status_code != 200:
        failed(f"GET {rtype}?{name}={value} answered {response.status_code}")
    bundle = json_body(response, f"{rtype}?{name}={value}")
    if bundle.get("resourceType") != "Bundle":
        failed(f"GET {rtype}?{name}={value} did not return a Bundle")
    matches, included = len(resources_of(bundle)), len(resources_of(bundle, "include"))
    if matches and not included:
        # what a match refers to may be another match, which is not repeated as an include: one match alone
        included = _included_one_by_one(http, rtype, name, value, resources_of(bundle))
    outcome.measure(matches=matches, included=included)
    if not included and (missed := _evidence_of_something_to_include(http, rtype, name, value,
                                                                     resources_of(bundle))):
        failed(f"GET {rtype}?{name}={value} included nothing, yet {missed}")
    if not included:
        undetermined(f"GET {rtype}?{name}={value} answered {matches} matches and no included resource: whether the "
                     f"server supports it cannot be told from this data")
    passed(f"GET {rtype}?{name}={value} answered a Bundle with {included} included resources", included=included)
