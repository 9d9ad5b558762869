"""The FHIR REST observation (the target's CapabilityStatement) and helpers the FHIR checks share."""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ObservationError
from .http import RecordingClient
from .observations import observation

FHIR_JSON = "application/fhir+json"


@dataclass
class Capability:
    statement: dict
    exchanges: list = field(default_factory=list)

    @property
    def server(self) -> dict:
        for rest in self.statement.get("rest", []):
            if rest.get("mode") == "server":
                return rest
        return {}

    @property
    def resources(self) -> dict[str, dict]:
        return {r["type"]: r for r in self.server.get("resource", []) if isinstance(r, dict) and "type" in r}

    def interactions(self, rtype: str) -> set[str]:
        return {i.get("code") for i in self.resources.get(rtype, {}).get("interaction", [])}

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


def json_body(response, what: str) -> dict:
    """The response's JSON object, or a failed check saying what came instead."""
    try:
        body = response.json()
    except ValueError as exc:
        raise AssertionError(f"{what}: body is not JSON ({response.headers.get('Content-Type', 'no content type')})"
                             f": {str(exc)[:120]}") from None
    if not isinstance(body, dict):
        raise AssertionError(f"{what}: body is not a JSON object")  # noqa: TRY004 - a failed check, not a bug
    return body


def search_all(http, rtype: str, params: dict | None = None, limit: int = 1000, page_size: int = 100):
    """Every resource a search returns, following `next` links, at most `limit` resources."""
    bundle = search(http, rtype, {**(params or {}), "_count": page_size})
    seen = 0
    pages = 0
    while True:
        for entry in bundle.get("entry", []):
            resource = entry.get("resource")
            if isinstance(resource, dict) and resource.get("resourceType") == rtype:
                yield resource
                seen += 1
                if seen >= limit:
                    return
        nxt = link_of(bundle, "next")
        pages += 1
        if not nxt or pages >= limit:
            return
        bundle = searchset(http.get(nxt), f"GET {rtype} search, page {pages + 1}")


def link_of(bundle: dict, relation: str) -> str | None:
    return next((l.get("url") for l in bundle.get("link", []) if l.get("relation") == relation), None)


def resources_of(bundle: dict, mode: str | None = "match") -> list[dict]:
    """The resources of a searchset Bundle whose search.mode is `mode` (None: every entry).
    An entry without search.mode counts as a match (the mode is optional in R4)."""
    out = []
    for entry in bundle.get("entry", []) or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        if mode is None or (entry.get("search") or {}).get("mode", "match") == mode:
            out.append(resource)
    return out


def search(http, rtype: str, params, what: str | None = None) -> dict:
    """One search page as a Bundle; a failed check if the answer is not 200 and a searchset Bundle."""
    return searchset(http.get(rtype, params=params), what or f"GET {rtype} search")


def searchset(response, label: str) -> dict:
    """The searchset Bundle a search (or a page of one) answered, or a failed check saying what came."""
    assert response.status_code == 200, f"{label} answered {response.status_code}"
    bundle = json_body(response, label)
    assert bundle.get("resourceType") == "Bundle" and bundle.get("type") == "searchset", \
        f"{label} did not return a searchset Bundle"
    return bundle


def values_at(resource, path: str) -> list:
    """The values at a dotted element path (lists are flattened on the way), e.g. "name.family"."""
    values = [resource]
    for key in path.split("."):
        found = [v.get(key) for v in values if isinstance(v, dict)]
        values = [x for f in found for x in (f if isinstance(f, list) else [f]) if x is not None]
    return values
