"""Traceability: each access to personal data leaves an AuditEvent (who, what, when, outcome) soon retrievable.

The check does one interaction of its own, marked so that it can be told apart, then searches the target's
AuditEvents (by date, and by entity where the server supports it) until the matching event appears or the
requirement's delay runs out.
"""
import base64
import datetime as dt
import secrets
import time

from vigie import jwt
from vigie.checks import check, failed, not_applicable, passed
from vigie.errors import ObservationError
from vigie.fhirrest import json_body, json_object, link_of, objects_at, resource_ids, resources_of, text_at

POLL_S = 0.25
MAX_PAGES = 10


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(str(text))   # Python 3.11 reads a trailing Z
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _act(interaction, http, capability):
    """Does the interaction; returns (what it did, a predicate on an AuditEvent that recognises it, success)."""
    mark = "vigie-audit-" + secrets.token_hex(4)
    if interaction == "read":
        ids = resource_ids(http.get("Patient", params={"_count": 1}))
        if not ids:
            raise ObservationError("no Patient to read")
        ref = f"Patient/{ids[0]}"
        response = http.get(ref)
        return f"GET {ref} ({response.status_code})", ref, _names(ref), True
    if interaction == "failed":
        ref = f"Patient/{mark}"
        response = http.get(ref)
        return f"GET {ref} ({response.status_code})", ref, _names(ref), False
    if interaction == "search":
        response = http.get("Patient", params={"_id": mark})
        return f"GET Patient?_id={mark} ({response.status_code})", None, _queries(mark), True
    if interaction == "create":
        types = capability.types_with("create")
        if not types:
            not_applicable("the server declares no create interaction")
        rtype = "Observation" if "Observation" in types else types[0]
        body = {"resourceType": rtype, **({"status": "final", "code": {"text": mark}} if rtype == "Observation"
                                          else {})}
        response = http.post(rtype, json=body, headers={"Content-Type": "application/fhir+json"})
        if response.status_code != 201:
            raise ObservationError(f"POST {rtype} answered {response.status_code}: nothing was written to trace")
        location = response.headers.get("Location", "")
        rid = location.split("/_history")[0].rstrip("/").rsplit("/", 1)[-1] if location else \
            text_at(json_object(response) or {}, "id")
        if not rid:
            raise ObservationError(f"POST {rtype} answered 201 with neither a Location header nor an id")
        ref = f"{rtype}/{rid}"
        return f"POST {rtype} → {ref}", ref, _names(ref), True
    raise ValueError(f"unknown interaction {interaction!r}")


def _names(ref):
    return lambda event: any((text_at(what, "reference") or "").endswith(ref)
                             for what in objects_at(event, "entity.what"))


def _queries(mark):
    def test(event):
        for e in objects_at(event, "entity"):
            query = text_at(e, "query")
            if query:
                try:
                    if mark in base64.b64decode(query).decode("utf-8", "replace"):
                        return True
                except ValueError:
                    continue
        return False
    return test


def _events(http, since, ref):
    """AuditEvents recorded since `since`, narrowed to `ref` when the server searches by entity."""
    params = {"date": f"ge{_iso(since)}", "_count": 100}
    if ref:
        response = http.get("AuditEvent", params={**params, "entity": ref})
        if response.status_code != 200:
            response = http.get("AuditEvent", params=params)
    else:
        response = http.get("AuditEvent", params=params)
    for _ in range(MAX_PAGES):
        if response.status_code != 200:
            failed(f"AuditEvent search answered {response.status_code}")
        bundle = json_body(response, "AuditEvent search")
        yield from resources_of(bundle, None)
        nxt = link_of(bundle, "next")
        if not nxt:
            return
        response = http.get(nxt)


@check("audit.trail")
def test_access_is_audited(requirement, http, capability, target, outcome):
    interaction = requirement.params["interaction"]
    within = float(requirement.params.get("within_s", 5))
    skew = dt.timedelta(seconds=float(requirement.params.get("clock_skew_s", 60)))
    if "AuditEvent" not in capability.types_with("search-type"):
        failed("the server declares no AuditEvent search: its audit trail cannot be retrieved")
    started = dt.datetime.now(dt.UTC)
    did, ref, matches, success = _act(interaction, http, capability)
    deadline, found = time.monotonic() + within, None
    while found is None:
        found = next((e for e in _events(http, started - skew, ref) if matches(e)), None)
        if found is not None or time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    outcome.measure(interaction=did)
    if found is None:
        failed(f"no AuditEvent records {did} within {within:g} s")
    outcome.evidence(f"audit/{requirement.id}@{target.id}.json", found)
    agents = [a for a in objects_at(found, "agent") if a.get("who") or a.get("altId")]
    if not agents:
        failed(f"the AuditEvent {found.get('id')} for {did} names no agent (who)")
    try:
        user = jwt.decode(target.token or "").payload.get("fhirUser")
    except jwt.NotAJwt:
        user = None
    if user:
        whos = [text_at(who, "reference") or "" for a in agents for who in objects_at(a, "who")]
        if not any(w.endswith(user) for w in whos):
            failed(f"the AuditEvent {found.get('id')} names {whos}, not the token's user {user}")
    recorded = _parse(found.get("recorded"))
    if recorded is None:
        failed(f"the AuditEvent {found.get('id')} has no valid recorded time")
    if not (started - skew <= recorded <= dt.datetime.now(dt.UTC) + skew):
        failed(f"the AuditEvent {found.get('id')} is recorded at {found.get('recorded')}, not when {did} happened")
    code = found.get("outcome")
    if code is None:
        failed(f"the AuditEvent {found.get('id')} for {did} has no outcome")
    if (code == "0") != success:
        failed(f"the AuditEvent {found.get('id')} for {did} says outcome {code}, expected "
               f"{'0 (success)' if success else 'a failure code'}")
    passed(f"{did} recorded as AuditEvent/{found.get('id')} (outcome {code})",
           audit_event=found.get("id"), recorded=found.get("recorded"), outcome_code=code)
