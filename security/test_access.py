"""Access control: missing, malformed and forged tokens, scopes, the patient compartment, request budgets.

Forgeries start from the target's own valid token (see vigie.jwt), so these checks need no key of the target
and work on any server that issues JWTs. Role tokens come from the target's `tokens` table (vigie.toml).
"""
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from vigie import jwt
from vigie.checks import check, failed, not_applicable, not_tested, passed, undetermined
from vigie.errors import ObservationError
from vigie.fhirrest import answered_resources, objects_at, resource_ids, tagged, text_at

REFUSED = (401, 403)
# another patient's record may also be hidden as if it did not exist (404)
HIDDEN = (*REFUSED, 404)
MAX_WAIT_S = 10  # the longest Retry-After a check honours


def _probe_path(capability, public) -> str:
    """An authenticated search to probe with: Patient if served, else the first searchable type."""
    types = [t for t in capability.types_with("search-type") if t not in public]
    if not types:
        raise ObservationError("the server declares no search to probe")
    return f"{'Patient' if 'Patient' in types else types[0]}?_count=1"


def _role_token(target, role: str) -> str:
    token = target.tokens.get(role)
    if not token:
        not_tested(f"no '{role}' token configured for this target ([targets.tokens] {role} = ...)")
    return token


def _main_token(target) -> str:
    if not target.token:
        not_tested("no token configured for this target (--token or token in vigie.toml): no genuine token to "
                   "tell a refused forgery from a refused token")
    return target.token


def _waited_get(http, path, auth, **kw):
    """GET that waits out a 429 (a budget spent by an earlier burst is not what these checks look at)."""
    for _ in range(4):
        response = http.get(path, auth=auth, **kw)
        if response.status_code != 429:
            return response
        time.sleep(min(_retry_after(response) or 1, MAX_WAIT_S))
    return response


def _retry_after(response) -> float | None:
    """Retry-After in seconds: delay-seconds, or an HTTP-date (RFC 9110 §10.2.3)."""
    value = (response.headers.get("Retry-After") or "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _send_with(http, path, token):
    return _waited_get(http, path, auth=False, headers={"Authorization": f"Bearer {token}"})


def _genuine_accepted(http, path):
    response = _waited_get(http, path, auth=True)
    if response.status_code != 200:
        raise ObservationError(f"GET {path} with the target's own token answered {response.status_code}: "
                               "cannot tell a refused forgery from a refused token")


@check("auth.required")
def test_token_required(requirement, http, capability, outcome):
    public = set(requirement.params.get("public", ["metadata"]))
    paths = [t for t in capability.types_with("search-type") if t not in public]
    paths += [f"{t}/{rid}" for t, rid in requirement.params.get("reads", {}).items()]
    answered = {}
    for path in paths:
        response = _waited_get(http, path, auth=False)
        answered[path] = response.status_code
        if response.status_code != 401:
            failed(f"GET {path} without a token answered {response.status_code}, not 401")
        challenge = response.headers.get("WWW-Authenticate", "")
        if not challenge.lower().startswith("bearer"):
            failed(f"GET {path} without a token: no Bearer WWW-Authenticate challenge ({challenge or 'none'})")
    if not answered:
        undetermined("the server declares no search or read to probe")
    passed(f"{len(answered)} requests without a token refused with 401 and a Bearer challenge", statuses=answered)


@check("auth.malformed-token")
def test_malformed_tokens_refused(requirement, http, capability, target, outcome):
    token = _main_token(target)
    path = _probe_path(capability, set(requirement.params.get("public", ["metadata"])))
    _genuine_accepted(http, path)
    answered = {}
    for name, variant in jwt.malformed(token).items():
        answered[name] = _send_with(http, path, variant).status_code
    outcome.measure(statuses=answered)
    accepted = [n for n, s in answered.items() if s not in REFUSED]
    if accepted:
        failed(f"GET {path} with a malformed token ({', '.join(accepted)}) answered "
               f"{answered[accepted[0]]}, not 401")
    if not all(s == 401 for s in answered.values()):
        failed(f"malformed tokens refused, but not with 401: {answered}")
    passed(f"{len(answered)} malformed tokens refused with 401")


def _judge_refusal(what: str, path: str, statuses: dict) -> None:
    """Fails on a forgery accepted (2xx); undetermined on an answer that is neither accepted nor refused."""
    accepted = [n for n, s in statuses.items() if 200 <= s < 300]
    if accepted:
        failed(f"{what} ({accepted[0]}) was accepted (GET {path}: {statuses[accepted[0]]})")
    unclear = [n for n, s in statuses.items() if s not in REFUSED]
    if unclear:
        undetermined(f"{what} ({unclear[0]}) was answered {statuses[unclear[0]]} on GET {path}: neither "
                     "accepted nor refused (401/403)")


@check("auth.forged-token")
def test_forged_token_refused(requirement, http, capability, target, outcome):
    kind = requirement.params["forgery"]
    token = _main_token(target)
    try:
        header = jwt.decode(token).header
    except jwt.NotAJwt as exc:
        not_applicable(f"the target's token is not a JWT ({exc}): no {kind} forgery to try")
    path = _probe_path(capability, set(requirement.params.get("public", ["metadata"])))
    _genuine_accepted(http, path)
    status = _send_with(http, path, jwt.forge(token, kind)).status_code
    outcome.measure(original_alg=header.get("alg"), forgery=kind, status=status)
    _judge_refusal(f"the {kind} forgery of the target's own token", path, {kind: status})
    passed(f"{kind} forgery refused with {status}")


@check("auth.expired-token")
def test_expired_token_refused(requirement, http, capability, target, outcome):
    token = _main_token(target)
    path = _probe_path(capability, set(requirement.params.get("public", ["metadata"])))
    role = requirement.params.get("role", "expired")
    try:
        jwt.decode(token)
        is_jwt = True
    except jwt.NotAJwt:
        is_jwt = False
    _genuine_accepted(http, path)
    statuses = {}
    if is_jwt:  # with its original signature: a server that checks neither signature nor expiry accepts it
        statuses["exp altered"] = _send_with(http, path, jwt.forge(token, "expired")).status_code
    expired = target.tokens.get(role)
    if expired:
        try:
            exp = jwt.decode(expired).payload.get("exp")
        except jwt.NotAJwt:
            exp = None
        if isinstance(exp, int | float) and exp > time.time():
            raise ObservationError(f"the '{role}' token has not expired yet (exp {int(exp)})")
        statuses["genuine expired"] = _send_with(http, path, expired).status_code
    outcome.measure(statuses=statuses)
    _judge_refusal("an expired token", path, statuses)
    if not expired:
        # an opaque token cannot be altered, and a forged one proves only that signatures are checked: a
        # genuine expired token is what this requirement needs
        not_tested(f"no genuine expired token configured ([targets.tokens] {role} = ...)"
                   + (": the forged one was refused, which proves only that signatures are checked" if is_jwt
                      else " and the target's token is not a JWT that vigie could alter"))
    passed("expired tokens refused: " + ", ".join(f"{n} → {s}" for n, s in statuses.items()))


@check("auth.read-only-scope", writes=True)   # a create, which the server must refuse
def test_read_only_token_cannot_write(requirement, http, capability, target, outcome):
    role = requirement.params.get("role", "reader")
    _role_token(target, role)
    creatable = capability.types_with("create")
    if not creatable:
        not_applicable("the server declares no create interaction")
    rtype = "Patient" if "Patient" in creatable else creatable[0]
    readable = _waited_get(http, f"{rtype}?_count=1", auth=role)
    if readable.status_code != 200:
        raise ObservationError(f"the '{role}' token cannot even search {rtype} ({readable.status_code}): a "
                               "refused write would prove nothing of its scope")
    body = tagged({"resourceType": rtype, **({"name": [{"family": "Vigie-Probe", "given": ["Lecture"]}]}
                                             if rtype == "Patient" else {})})
    # the token was just accepted: a 401 to its write is the target's refusal of the write
    response = http.post(rtype, auth=role, may_refuse=True, json=body,
                         headers={"Content-Type": "application/fhir+json"})
    outcome.measure(type=rtype, status=response.status_code)
    if 200 <= response.status_code < 300:
        failed(f"a read-only '{role}' token created a {rtype} (POST {rtype}: {response.status_code})")
    if response.status_code not in REFUSED:
        raise ObservationError(f"POST {rtype} with the '{role}' token answered {response.status_code}: "
                               "neither written nor refused for lack of rights, so nothing is concluded")
    passed(f"the '{role}' token's create was refused with {response.status_code}")


def _own_patient(http, role: str, token: str) -> str:
    """The patient a patient token stands for: its `patient` claim, else the only Patient it sees."""
    try:
        own = jwt.decode(token).payload.get("patient")
    except jwt.NotAJwt:
        own = None
    if isinstance(own, str) and own:
        return own
    ids = resource_ids(_waited_get(http, "Patient", auth=role))
    if len(ids) != 1:
        raise ObservationError(f"cannot tell which patient the '{role}' token stands for ({len(ids)} visible)")
    return ids[0]


def _of_patient(resource: dict, patient: str) -> bool:
    """Whether a resource is that patient's own record or refers to it as its subject or patient."""
    if resource.get("resourceType") == "Patient":
        return text_at(resource, "id") == patient
    refs = [text_at(o, "reference") or "" for key in ("subject", "patient") for o in objects_at(resource, key)]
    return any(r == f"Patient/{patient}" or r.endswith(f"/Patient/{patient}") for r in refs)


@check("auth.patient-compartment")
def test_patient_token_stays_in_its_compartment(requirement, http, capability, target, outcome):
    role = requirement.params.get("role", "patient")
    own = _own_patient(http, role, _role_token(target, role))
    # a token that reads nothing at all would be "refused" everywhere: it must first read its own record
    mine = _waited_get(http, f"Patient/{own}", auth=role)
    if mine.status_code != 200:
        raise ObservationError(f"the '{role}' token cannot read its own record, Patient/{own} "
                               f"({mine.status_code}): a refusal of another patient's would prove nothing")
    others = [i for i in resource_ids(http.get("Patient", params={"_count": 10})) if i != own]
    if not others:
        raise ObservationError("the target's main token sees no other patient to probe with")
    other = others[0]
    seen = {}
    # another patient's record may be refused with 401 as well as 403: a refusal, not a wrong token
    read = _waited_get(http, f"Patient/{other}", auth=role, may_refuse=True)
    seen[f"Patient/{other}"] = read.status_code
    if read.status_code in range(200, 300):
        failed(f"the '{role}' token of Patient/{own} read another patient, Patient/{other} ({read.status_code})")
    if read.status_code not in HIDDEN:
        undetermined(f"GET Patient/{other} with the '{role}' token answered {read.status_code}: neither served "
                     "nor refused")
    searches = [("Patient", {"_id": other})]
    for rtype in capability.types_with("search-type"):
        names = {sp.get("name") for sp in capability.resources[rtype].get("searchParam", [])}
        if "patient" in names and rtype != "Patient":
            searches.append((rtype, {"patient": f"Patient/{other}"}))
    for rtype, params in searches[:3]:
        response = _waited_get(http, rtype, auth=role, may_refuse=True, params=params)
        # whatever is not the patient's own is out of its compartment (a server may ignore the criterion
        # and answer the patient's own records, which is no breach)
        entries = [r for r in answered_resources(response) if not _of_patient(r, own)] \
            if response.status_code == 200 else []
        seen[f"{rtype}?{next(iter(params))}={next(iter(params.values()))}"] = (response.status_code, len(entries))
        if entries:
            failed(f"the '{role}' token of Patient/{own} found {len(entries)} {rtype} that are not its own "
                   f"(searching for Patient/{other})")
        if response.status_code not in (200, *REFUSED):
            undetermined(f"GET {rtype} with the '{role}' token and {params} answered {response.status_code}: "
                         "neither an answer nor a refusal")
    passed(f"the '{role}' token of Patient/{own} reads its own record and reached nothing of Patient/{other} "
           f"({len(seen)} requests)", own=f"Patient/{own}", other=f"Patient/{other}", answers=seen)


@check("auth.rate-limit")
def test_burst_is_rate_limited(requirement, http, capability, target, outcome):
    role = requirement.params.get("role", "patient")
    _role_token(target, role)
    burst = int(requirement.params.get("burst", 60))
    if burst < 1:
        undetermined(f"the requirement's burst is {burst}: no request to send")
    path = _probe_path(capability, set(requirement.params.get("public", ["metadata"])))
    started, limited, sent = time.monotonic(), None, 0
    for sent in range(1, burst + 1):
        response = http.get(path, auth=role)
        if response.status_code == 429:
            limited = response
            break
        # a burst of refused or failing requests may never reach the request budget
        if response.status_code != 200:
            undetermined(f"request {sent} of the burst (GET {path}) answered {response.status_code}, not 200: the "
                         f"burst must be made of accepted requests")
    elapsed = round(time.monotonic() - started, 3)
    outcome.measure(role=role, sent=sent, elapsed_s=elapsed, limited_at=sent if limited is not None else None)
    if limited is None:
        failed(f"{burst} requests in {elapsed} s from one '{role}' token were never answered 429")
    wait = _retry_after(limited)
    outcome.measure(retry_after=limited.headers.get("Retry-After"))
    if wait is None:
        failed("429 without a Retry-After (delay in seconds or HTTP-date)")
    if wait > MAX_WAIT_S:
        passed(f"limited after {sent} requests in {elapsed} s with Retry-After {wait:g} s (longer than the "
               f"{MAX_WAIT_S} s vigie waits: the budget's return was not observed)")
    # the budget must come back: and the check leaves the token usable for the checks after it
    time.sleep(wait)
    again = http.get(path, auth=role)
    if again.status_code == 429:
        failed(f"still 429 after waiting the {wait:g} s that Retry-After asked")
    if again.status_code != 200:
        undetermined(f"after waiting the {wait:g} s that Retry-After asked, GET {path} answered "
                     f"{again.status_code}: whether the budget came back is not known")
    passed(f"limited after {sent} requests in {elapsed} s, Retry-After {wait:g} s honoured")
