"""Requirements generated from an implementation guide's CapabilityStatements (vigie/igprofile.py): the
server supports each declared interaction, search parameter and _include/_revinclude."""
from vigie.checks import check, failed, not_applicable, not_tested, passed
from vigie.fhirrest import json_body, resources_of, search

# interactions that change data: vigie sends no writes to a system under test
WRITES = {"create", "update", "patch", "delete"}
# a value no resource carries, per search parameter type: the server must accept it and match nothing
NO_MATCH = {"token": "vigie-no-such-code", "string": "zzvigie-no-such-text", "date": "1801-01-01",
            "reference": "vigie-no-such-id", "number": "-987654321", "quantity": "-987654321",
            "uri": "http://vigie.invalid/no-such-uri"}


def _declares(capability, rtype, what, outcome):
    """What the target's own CapabilityStatement says (informative: the behaviour is what is tested)."""
    declared = capability.resources.get(rtype)
    outcome.measure(declared_by_target=bool(declared and what(declared)))


@check("ig.interaction")
def test_ig_interaction(requirement, http, capability, outcome):
    rtype, code = requirement.params["resource"], requirement.params["interaction"]
    _declares(capability, rtype, lambda d: code in {i.get("code") for i in d.get("interaction", [])}, outcome)
    if code in WRITES:
        not_tested(f"{code} changes data: vigie does not send writes to a system under test")
    if code not in ("read", "search-type"):
        not_tested(f"the {code} interaction is not exercised by this version of vigie")
    bundle = search(http, rtype, {"_count": 1}, f"GET {rtype}?_count=1")
    if code == "search-type":
        passed(f"GET {rtype}?_count=1 answered a searchset Bundle")
    found = resources_of(bundle)
    if not found:
        not_applicable(f"no {rtype} is served to read")
    rid = found[0].get("id")
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
    if kind not in NO_MATCH:
        not_tested(f"{code} is a {kind} parameter: vigie cannot build a value for it generically")
    value = NO_MATCH[kind]
    response = http.get(rtype, params={code: value, "_count": 1})
    outcome.measure(status=response.status_code)
    if response.status_code != 200:
        failed(f"GET {rtype}?{code}={value} answered {response.status_code}: the parameter is not supported")
    bundle = json_body(response, f"{rtype}?{code}")
    matched = bundle.get("total") if isinstance(bundle.get("total"), int) else len(resources_of(bundle))
    outcome.measure(matched=matched)
    if matched:
        failed(f"GET {rtype}?{code}={value} matched {matched} resources: the parameter is not applied")
    passed(f"GET {rtype}?{code}={value} is accepted and matches nothing")


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
    included = len(resources_of(bundle, "include"))
    passed(f"GET {rtype}?{name}={value} answered a Bundle with {included} included resources", included=included)
