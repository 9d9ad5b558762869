"""The FHIR REST observation (the target's CapabilityStatement) and helpers the FHIR checks share."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NoReturn

from .checks import failed, not_applicable, undetermined
from .errors import ObservationError
from .http import RecordingClient
from .observations import observation

FHIR_JSON = "application/fhir+json"
# a value of each search parameter type that no real resource carries: a search by it must match nothing
NO_MATCH = {"token": "vigie-no-such-code", "string": "zzvigie-no-such-text", "date": "1801-01-01",
            "reference": "vigie-no-such-id", "number": "-987654321", "quantity": "-987654321",
            "uri": "http://vigie.invalid/no-such-uri"}


@dataclass
class Capability:
    """The target's CapabilityStatement, and the view of it the checks use: only its well-formed parts
    (a resource with a string type, interactions with a string code...). What is malformed is listed in
    `defects`, which the CapabilityStatement requirement reports; the other checks go on with the rest."""
    statement: dict
    exchanges: list = field(default_factory=list)
    defects: list = field(init=False, default_factory=list)
    formats: list = field(init=False, default_factory=list)
    server: dict = field(init=False, default_factory=dict)
    resources: dict = field(init=False, default_factory=dict)

    def __post_init__(self):
        self.formats = self._strings(self.statement.get("format"), "CapabilityStatement.format")
        for where, rest in self._objects(self.statement.get("rest"), "CapabilityStatement.rest"):
            if rest.get("mode") == "server" and not self.server:
                self.server = self._server(rest, where)

    def _server(self, rest: dict, where: str) -> dict:
        for at, resource in self._objects(rest.get("resource"), f"{where}.resource"):
            if not isinstance(resource.get("type"), str):
                self.defects.append(f"{at}.type is not a string")
                continue
            self.resources[resource["type"]] = {
                **resource,
                "interaction": self._named(resource.get("interaction"), f"{at}.interaction", ("code",)),
                "searchParam": self._named(resource.get("searchParam"), f"{at}.searchParam", ("name", "type")),
                "searchInclude": self._strings(resource.get("searchInclude"), f"{at}.searchInclude"),
                "searchRevInclude": self._strings(resource.get("searchRevInclude"), f"{at}.searchRevInclude")}
        return {**rest, "resource": list(self.resources.values())}

    def _objects(self, value, where: str) -> list[tuple[str, dict]]:
        """(path, object) of each object in an array."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.defects.append(f"{where} is not an array")
            return []
        self.defects += [f"{where}[{i}] is not an object" for i, item in enumerate(value) if not isinstance(item, dict)]
        return [(f"{where}[{i}]", item) for i, item in enumerate(value) if isinstance(item, dict)]

    def _named(self, value, where: str, keys: tuple) -> list[dict]:
        """The objects of an array whose `keys` are strings."""
        kept = []
        for at, item in self._objects(value, where):
            wrong = [key for key in keys if not isinstance(item.get(key), str)]
            self.defects += [f"{at}.{key} {item.get(key)!r} is not a string" for key in wrong]
            if not wrong:
                kept.append(item)
        return kept

    def _strings(self, value, where: str) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.defects.append(f"{where} is not an array of strings")
            return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
        return value

    def interactions(self, rtype: str) -> set[str]:
        return {i["code"] for i in self.resources.get(rtype, {}).get("interaction", [])}

    def types_with(self, interaction: str) -> list[str]:
        return [t for t in self.resources if interaction in self.interactions(t)]

    def to_json(self) -> dict:
        return {"statement": self.statement, "exchanges": self.exchanges}


@observation("capability", kinds=("fhir",))
def observe_capability(target, store) -> Capability:
    client = RecordingClient(target)
    try:
        response = client.get("metadata", auth=False)
    finally:
        client.close()
    if response.status_code != 200:
        raise ObservationError(f"GET {target.url}/metadata answered {response.status_code}, not 200")
    try:
        statement = response.json()
    except ValueError:
        raise ObservationError(f"GET {target.url}/metadata did not return JSON") from None
    if not isinstance(statement, dict) or statement.get("resourceType") != "CapabilityStatement":
        raise ObservationError(f"GET {target.url}/metadata did not return a CapabilityStatement")
    return Capability(statement, client.take_exchanges())


def declared_search(capability: Capability, rtype: str) -> None:
    """Ends the check not_applicable unless the CapabilityStatement declares search on rtype: the observed
    reason a requirement about rtype does not concern the target."""
    if "search-type" not in capability.interactions(rtype):
        not_applicable(f"the CapabilityStatement declares no search on {rtype}")


def none_served(rtype: str, purpose: str = "to check") -> NoReturn:
    """A type declared searchable that served no instance: nothing to judge, which is no evidence of
    conformance (the vendor's test system must hold data)."""
    undetermined(f"the server declares {rtype} search but served no {rtype} {purpose}")


def matched(bundle: dict) -> int:
    """How many resources a searchset Bundle says matched: its total, else its match entries."""
    total = bundle.get("total")
    return total if isinstance(total, int) and not isinstance(total, bool) else len(resources_of(bundle))


def has_instances(http, rtype: str) -> bool:
    """Whether a search of rtype without criteria matches anything: a search that matches nothing proves a
    parameter applied only where the unfiltered search matches something."""
    return matched(search(http, rtype, {"_count": 1}, f"GET {rtype}?_count=1")) > 0


def json_body(response, what: str) -> dict:
    """The response's JSON object, or a failed check saying what came instead."""
    try:
        body = response.json()
    except ValueError as exc:
        failed(f"{what}: body is not JSON ({response.headers.get('Content-Type', 'no content type')})"
               f": {str(exc)[:120]}")
    if not isinstance(body, dict):
        failed(f"{what}: body is not a JSON object")
    return body


def search_all(http, rtype: str, params: dict | None = None, limit: int = 1000, page_size: int = 100):
    """Every resource a search returns, following `next` links, at most `limit` resources."""
    bundle = search(http, rtype, {**(params or {}), "_count": page_size})
    seen = 0
    pages = 0
    while True:
        for resource in resources_of(bundle, None):
            if resource.get("resourceType") == rtype:
                yield resource
                seen += 1
                if seen >= limit:
                    return
        nxt = link_of(bundle, "next")
        pages += 1
        if not nxt or pages >= limit:
            return
        bundle = searchset(http.get(nxt), f"GET {rtype} search, page {pages + 1}")


# every resource vigie creates on a target carries this tag (meta.tag), so that what vigie wrote in one run
# (the load phase's Encounters, a traced Observation) is never judged as the vendor's data in the next one
CREATED_TAG = {"system": "http://vigie.invalid/CodeSystem/origin", "code": "created-by-vigie",
               "display": "created by the vigie conformance harness"}


def tagged(resource: dict) -> dict:
    """`resource` with vigie's tag in its meta.tag, and the run's (vigie.writes: how the run finds what it
    created, to delete it at its end)."""
    from .writes import run_tag
    meta = dict(resource.get("meta") or {})
    meta["tag"] = [*(meta.get("tag") or []), CREATED_TAG, *([run_tag()] if run_tag() else [])]
    return {**resource, "meta": meta}


def created_by_vigie(resource: dict) -> bool:
    tags = (resource.get("meta") or {}).get("tag") if isinstance(resource.get("meta"), dict) else None
    return any(isinstance(t, dict) and t.get("system") == CREATED_TAG["system"]
               and t.get("code") == CREATED_TAG["code"] for t in (tags if isinstance(tags, list) else []))


def served_data(http, rtype: str, limit: int, page_size: int = 100) -> list[dict]:
    """The rtype resources the target serves as its own data (at most `limit` read): search_all, without
    the resources vigie created (this run's or an earlier run's)."""
    return [r for r in search_all(http, rtype, limit=limit, page_size=page_size) if not created_by_vigie(r)]


def link_of(bundle: dict, relation: str) -> str | None:
    links = bundle.get("link")
    url = next((link.get("url") for link in (links if isinstance(links, list) else [])
                if isinstance(link, dict) and link.get("relation") == relation), None)
    return url if isinstance(url, str) else None


def entries_of(bundle: dict) -> list[dict]:
    """A Bundle's entries that are JSON objects (whatever else a server put in `entry` is skipped)."""
    entries = bundle.get("entry")
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def resources_of(bundle: dict, mode: str | None = "match") -> list[dict]:
    """The resources of a searchset Bundle whose search.mode is `mode` (None: every entry).
    An entry without search.mode counts as a match (the mode is optional in R4)."""
    out = []
    for entry in entries_of(bundle):
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            continue
        search = entry.get("search")
        if mode is None or (search.get("mode", "match") if isinstance(search, dict) else "match") == mode:
            out.append(resource)
    return out


def json_object(response) -> dict | None:
    """The answer's JSON object, without judging the answer: None when it is not one (json_body fails the
    check instead)."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def answered_resources(response) -> list[dict]:
    """The resources a search answered, without judging the answer: none when it is not a JSON Bundle."""
    return resources_of(json_object(response) or {}, None)


def ids_of(resources: list[dict]) -> list[str]:
    """The ids of resources, those that have one (a string)."""
    return [i for i in (text_at(r, "id") for r in resources) if i]


def resource_ids(response) -> list[str]:
    """The ids of the resources a search answered (see answered_resources)."""
    return ids_of(answered_resources(response))


def claimed_profiles(resource: dict) -> list[str]:
    """The profiles a resource claims in meta.profile."""
    return [p for p in values_at(resource, "meta.profile") if isinstance(p, str)]


def search(http, rtype: str, params, what: str | None = None) -> dict:
    """One search page as a Bundle; a failed check if the answer is not 200 and a searchset Bundle. Named
    in what the check says by `what`, else by its request line (GET Patient?family=Mar&_count=1)."""
    pairs = params.items() if isinstance(params, dict) else params or ()
    query = "&".join(f"{name}={value}" for name, value in pairs)
    return searchset(http.get(rtype, params=params), what or f"GET {rtype}" + (f"?{query}" if query else ""))


def searchset(response, label: str) -> dict:
    """The searchset Bundle a search (or a page of one) answered, or a failed check saying what came."""
    if response.status_code != 200:
        failed(f"{label} answered {response.status_code}")
    bundle = json_body(response, label)
    if not (bundle.get("resourceType") == "Bundle" and bundle.get("type") == "searchset"):
        failed(f"{label} did not return a searchset Bundle")
    return bundle


def objects_at(resource, path: str) -> list[dict]:
    """The JSON objects at a dotted path: what a check may read fields of, whatever else a server sent
    there (a malformed resource is the validation requirements' finding, not a reason to crash)."""
    return [v for v in values_at(resource, path) if isinstance(v, dict)]


def text_at(obj: dict, key: str) -> str | None:
    """A string field of an object, or None when it holds anything else."""
    value = obj.get(key)
    return value if isinstance(value, str) else None


def values_at(resource, path: str) -> list:
    """The values at a dotted element path (lists are flattened on the way), e.g. "name.family"."""
    values = [resource]
    for key in path.split("."):
        found = [v.get(key) for v in values if isinstance(v, dict)]
        values = [x for f in found for x in (f if isinstance(f, list) else [f]) if x is not None]
    return values
