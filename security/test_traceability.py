"""Traceability: each access to personal data leaves an AuditEvent (who, what, when, outcome) soon retrievable.

The check does one interaction of its own, then searches the target's AuditEvents until the one the server
recorded for that interaction appears or the requirement's delay runs out. An event counts only if it is
vigie's own: it names what vigie did (a read's resource, a search's unique mark, the created resource), says
the same action when it says one, is recorded no earlier than the interaction started (less the
requirement's clock skew), and, for a read of an existing patient that others may read too, was not already
listed just before vigie's read.

The search is narrowed (date from just before the interaction, entity where the server supports it, newest
first where it sorts) and every page is followed up to MAX_EVENTS (MAX_PAGES): when that bound is reached without
finding the event, vigie could not look at the whole window, and the outcome is an error, not a failure.
"""
from __future__ import annotations

import base64
import datetime as dt
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from vigie import jwt
from vigie.checks import check, failed, not_applicable, passed, undetermined
from vigie.errors import ObservationError
from vigie.fhirrest import (
    json_body,
    json_object,
    link_of,
    objects_at,
    resource_ids,
    resources_of,
    tagged,
    text_at,
)

POLL_S = 0.25
PAGE = 100
MAX_EVENTS = 2_000  # AuditEvents read per listing (20 pages): beyond it, vigie's could not be told absent
MAX_PAGES = 50  # and pages, for a server that ignores _count or links an empty page to the next forever
# IHE Consistent Time asks the clocks of systems that audit to agree within about a second: 5 s leaves room
CLOCK_SKEW_S = 5.0
ACTIONS = {"read": "R", "failed": "R", "search": "E", "create": "C"}  # AuditEvent.action of each interaction


def _iso(moment: dt.datetime) -> str:
    """A search bound floored to the second: FHIR compares a date at its own precision, so `ge` with the
    second of the interaction keeps an event recorded later in that same second."""
    return moment.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _at_precision(moment: dt.datetime, text) -> dt.datetime:
    """`moment` floored to the precision of the instant `text`: FHIR compares instants at their own precision,
    so an event a server records to the millisecond (or the second) in the very millisecond vigie acted is not
    "before" it."""
    found = re.search(r"T\d\d:\d\d:\d\d(?:\.(\d+))?", str(text))
    digits = min(len(found.group(1)), 6) if found and found.group(1) else 0
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 10 ** (6 - digits))


def _parse(text) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(str(text))   # Python 3.11 reads a trailing Z
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@dataclass
class Interaction:
    did: str  # what vigie did, for the summary: "GET Patient/x (200)"
    entity: str | None  # the resource the events name (the search is narrowed to it where supported)
    matches: Callable[[dict], bool]  # recognises an event that names what vigie did
    success: bool
    action: str
    started: dt.datetime
    seen: frozenset = frozenset()  # ids of the matching events listed before the interaction


class AuditSearch:
    """The target's AuditEvent search, narrowed as far as the server allows: the first variant it answers
    with 200 is kept for the rest of the check."""

    def __init__(self, http, entity: str | None):
        self.http = http
        narrow = [{"entity": entity}] if entity else []
        self.variants = [{**n, **s} for n in [*narrow, {}] for s in ({"_sort": "-date"}, {})]

    def list(self, since: dt.datetime) -> tuple[list[dict], bool]:
        """The events recorded since `since` (every page, at most MAX_EVENTS in MAX_PAGES): (events, complete)."""
        response = None
        while self.variants:
            params = {**self.variants[0], "date": f"ge{_iso(since)}", "_count": PAGE}
            response = self.http.get("AuditEvent", params=params)
            if response.status_code == 200 or len(self.variants) == 1:
                break
            self.variants.pop(0)
        events: list[dict] = []
        for _ in range(MAX_PAGES):
            if response.status_code != 200:
                undetermined(f"the AuditEvent search answered {response.status_code}")
            bundle = json_body(response, "AuditEvent search")
            events += [e for e in resources_of(bundle, None) if e.get("resourceType") == "AuditEvent"]
            nxt = link_of(bundle, "next")
            if not nxt:
                return events, True
            if len(events) >= MAX_EVENTS:
                break
            response = self.http.get(nxt)
        return events, False


def _act(interaction, http, capability, skew) -> Interaction:
    """Does the interaction and says how to recognise its AuditEvent."""
    mark = "vigie-audit-" + secrets.token_hex(4)
    action = ACTIONS.get(interaction)
    if interaction == "read":
        ids = resource_ids(http.get("Patient", params={"_count": 1}))
        if not ids:
            raise ObservationError("no Patient to read")
        ref = f"Patient/{ids[0]}"
        # others may read this patient too: the events that name it already are not the record of vigie's read
        before = _now()
        events, complete = AuditSearch(http, ref).list(before - skew)
        if not complete:
            undetermined(f"the AuditEvents naming {ref} since {_iso(before - skew)} could not all be listed "
                         f"({len(events)} read, {MAX_PAGES} pages at most): those made before vigie's read could "
                         f"not be told apart from its own")
        seen = frozenset(text_at(e, "id") for e in events if _names(ref)(e))
        started = _now()
        response = http.get(ref)
        return Interaction(f"GET {ref} ({response.status_code})", ref, _names(ref), True, action, started, seen)
    started = _now()
    if interaction == "failed":
        ref = f"Patient/{mark}"
        response = http.get(ref)
        return Interaction(f"GET {ref} ({response.status_code})", ref, _names(ref), False, action, started)
    if interaction == "search":
        response = http.get("Patient", params={"_id": mark})
        return Interaction(f"GET Patient?_id={mark} ({response.status_code})", None, _queries(mark), True,
                           action, started)
    if interaction == "create":
        return _create(http, capability, mark, action, started)
    raise ValueError(f"unknown interaction {interaction!r}")


def _create(http, capability, mark, action, started) -> Interaction:
    types = capability.types_with("create")
    if not types:
        not_applicable("the server declares no create interaction")
    rtype = "Observation" if "Observation" in types else types[0]
    body = tagged({"resourceType": rtype, **({"status": "final", "code": {"text": mark}}
                                             if rtype == "Observation" else {})})
    response = http.post(rtype, json=body, headers={"Content-Type": "application/fhir+json"})
    if response.status_code != 201:
        raise ObservationError(f"POST {rtype} answered {response.status_code}: nothing was written to trace")
    location = response.headers.get("Location", "")
    rid = location.split("/_history")[0].rstrip("/").rsplit("/", 1)[-1] if location else \
        text_at(json_object(response) or {}, "id")
    if not rid:
        raise ObservationError(f"POST {rtype} answered 201 with neither a Location header nor an id")
    ref = f"{rtype}/{rid}"
    return Interaction(f"POST {rtype} → {ref}", ref, _names(ref), True, action, started)


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


def _user(target) -> str | None:
    try:
        return jwt.decode(target.token or "").payload.get("fhirUser")
    except jwt.NotAJwt:
        return None


def _whos(event) -> list[str]:
    return [text_at(who, "reference") or "" for a in objects_at(event, "agent") for who in objects_at(a, "who")]


def _own(events, done: Interaction, skew) -> list[dict]:
    """The events that can be the record of vigie's interaction (see the module's docstring)."""
    own = []
    for event in events:
        eid, recorded = text_at(event, "id"), _parse(event.get("recorded"))
        if not eid or eid in done.seen or not done.matches(event):
            continue
        if event.get("action") not in (None, done.action):  # R4 makes the action optional, BALP does not
            continue  # another interaction on the same resource (the search that found the patient...)
        if recorded is not None and recorded < _at_precision(done.started - skew, event.get("recorded")):
            continue  # recorded before vigie acted: another client's access
        own.append(event)
    return own


def _wait_for(search: AuditSearch, done: Interaction, skew, within: float, user) -> tuple[dict | None, bool, int]:
    """Polls the search until vigie's event appears or `within` seconds have passed:
    (the event, whether the last listing was complete, how many events it held)."""
    deadline = time.monotonic() + within
    while True:
        events, complete = search.list(done.started - skew)
        own = _own(events, done, skew)
        if own:
            return next((e for e in own if user and any(w.endswith(user) for w in _whos(e))), own[0]), complete, \
                len(events)
        if time.monotonic() >= deadline:
            return None, complete, len(events)
        time.sleep(POLL_S)


@check("audit.trail", writes=lambda params: params.get("interaction") == "create")
def test_access_is_audited(requirement, http, capability, target, outcome):
    interaction = requirement.params["interaction"]
    within = float(requirement.params.get("within_s", 5))
    skew = dt.timedelta(seconds=float(requirement.params.get("clock_skew_s", CLOCK_SKEW_S)))
    if "AuditEvent" not in capability.types_with("search-type"):
        failed("the server declares no AuditEvent search: its audit trail cannot be retrieved")
    done = _act(interaction, http, capability, skew)
    user = _user(target)
    found, complete, read = _wait_for(AuditSearch(http, done.entity), done, skew, within, user)
    outcome.measure(interaction=done.did, audit_events_read=read, earlier_events=len(done.seen))
    if found is None and not complete:
        undetermined(f"vigie's AuditEvent for {done.did} was not among the first {read} AuditEvents recorded "
                     f"since {_iso(done.started - skew)}, and the server has more: it could not be looked for "
                     f"among them all")
    if found is None:
        failed(f"no AuditEvent records {done.did} within {within:g} s (AuditEvents recorded since "
               f"{_iso(done.started - skew)}: {read}, of which {len(done.seen)} existed before it)")
    outcome.evidence(f"audit/{requirement.id}@{target.id}.json", found)
    eid = found.get("id")
    if not [a for a in objects_at(found, "agent") if a.get("who") or a.get("altId")]:
        failed(f"the AuditEvent {eid} for {done.did} names no agent (who)")
    if user and not any(w.endswith(user) for w in _whos(found)):
        failed(f"the AuditEvent {eid} names {_whos(found)}, not the token's user {user}")
    recorded = _parse(found.get("recorded"))
    if recorded is None:
        failed(f"the AuditEvent {eid} has no valid recorded time")
    if recorded > _now() + skew:
        failed(f"the AuditEvent {eid} says it was recorded at {found.get('recorded')}, later than now")
    code = found.get("outcome")
    if code is None:
        failed(f"the AuditEvent {eid} for {done.did} has no outcome")
    if (code == "0") != done.success:
        failed(f"the AuditEvent {eid} for {done.did} says outcome {code}, expected "
               f"{'0 (success)' if done.success else 'a failure code'}")
    passed(f"{done.did} recorded as AuditEvent/{eid} (outcome {code}, recorded {found.get('recorded')}, "
           f"a new event since the interaction started)",
           audit_event=eid, recorded=found.get("recorded"), outcome_code=code)
