"""The robustness observation: a bounded fuzzing run against a FHIR target's searches and reads.

Choice: hypothesis drives generation directly (not schemathesis): the operations and their parameters come
from the target's CapabilityStatement (the FHIR document every server publishes), and every request goes
through vigie's RecordingClient, so it obeys the run's limits and its redaction. Two phases:

1. a fixed corpus, always sent: SQL, NoSQL, script, template and path-traversal payloads in a string search
   parameter and in a read's id, plus malformed requests (bad dates, unknown parameters, bad _count);
2. generated requests (hypothesis, derandomised so that a run is reproducible), a bounded number of examples.

Each answer is judged (5xx, error without OperationOutcome, internals disclosed, payload executed or
reflected) and each finding keeps a curl line that reproduces it, its token redacted. A refusal (401, 403)
is access control's answer, not the operation's: it is counted per operation, and an operation that most
requests did not get past is reported as not reached rather than as fuzzed.
"""
from __future__ import annotations

import os
import shlex
import string
from dataclasses import dataclass, field

from .disclosure import disclosed, sql_error
from .errors import ObservationError
from .fhirrest import Capability
from .http import RecordingClient, TokenRefused
from .observations import observation

EXAMPLES = int(os.environ.get("VIGIE_FUZZ_EXAMPLES", "80"))
# the corpus phase sends payloads to this many searchable types, malformed requests to fewer: the run's
# request rate cap (50/s by default) makes every request count
MAX_TYPES, MALFORMED_TYPES = 4, 2
KEPT_PER_KIND = 25        # findings kept in the evidence per kind (all are counted)
NO_MATCH = "vigieNoMatch7q"
MAX_SILENT = 3            # requests in a row without an answer end the run with an error
REFUSED = (401, 403)
# an operation counts as fuzzed when at least this share of its requests got past access control. Half: a
# gateway that refuses the hostile payloads (14 of the 21 corpus requests of a type) still lets the benign,
# malformed and most generated requests through, while below half what was judged is the exception, and
# the operation itself was not exercised
MIN_REACHED_SHARE = 0.5

# payload name -> (value, what betrays its execution in a body, or None)
PAYLOADS = {
    "sql-quote": ("'", None),
    "sql-tautology": (f"{NO_MATCH}' OR '1'='1", None),
    "sql-comment": (f"{NO_MATCH}'--", None),
    "sql-union": (f"{NO_MATCH}' UNION SELECT NULL--", None),
    "nosql-operator": ('{"$gt": ""}', None),
    "nosql-where": (f"{NO_MATCH}'; return true; var x='", None),
    "script": ("<script>alert('vigie')</script>", None),
    "html-attribute": ('"><img src=x onerror=alert(1)>', None),
    "template": ("vigie{{7*191}}${7*191}", "vigie1337"),
    "path-traversal": ("../../../../../../etc/passwd", "root:x:0:0"),
    "path-traversal-windows": ("..\\..\\..\\..\\windows\\win.ini", "[extensions]"),
    "null-byte": ("vigie\x00x", None),
    "crlf": ("vigie\r\nX-Vigie-Injected: 1", None),
    "long": ("A" * 5000, None),
}
# boolean-based detection: a payload that must match no more than NO_MATCH alone does
TAUTOLOGIES = ("sql-tautology", "nosql-where")
MALFORMED = {
    "bad date": {"birthdate": "20x1-13-45"},
    "bad prefix": {"birthdate": "zz2000"},
    "unknown parameter": {"vigie-unknown-param": "1"},
    "bad _count": {"_count": "-5"},
    "huge _count": {"_count": "99999999999999999999"},
    "empty value": {"family": ""},
}
ERROR_CODES = range(400, 600)


@dataclass
class Finding:
    kind: str          # server-error, not-operation-outcome, disclosure, injection
    detail: str
    method: str
    url: str
    status: int | None
    curl: str

    def to_json(self) -> dict:
        return self.__dict__.copy()


@dataclass
class FuzzRun:
    requests: int = 0
    statuses: dict = field(default_factory=dict)
    findings: list = field(default_factory=list)
    examples: int = 0
    operations: list = field(default_factory=list)
    # operation ("search Patient", "read Patient") -> {"sent": n, "refused": n}
    answers: dict = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    def count(self, operation: str, refused: bool) -> None:
        tally = self.answers.setdefault(operation, {"sent": 0, "refused": 0})
        tally["sent"] += 1
        tally["refused"] += refused

    def unreached(self) -> dict[str, dict]:
        """The operations whose requests mostly did not get past access control."""
        return {op: t for op, t in self.answers.items()
                if t["sent"] - t["refused"] < MIN_REACHED_SHARE * t["sent"]}

    def to_json(self) -> dict:
        kinds = sorted({f.kind for f in self.findings})
        return {"generator": "hypothesis (derandomised) + fixed payload corpus", "examples": self.examples,
                "requests": self.requests, "statuses": self.statuses, "operations": self.operations,
                "answers": self.answers, "unreached": sorted(self.unreached()),
                "findings": {k: {"count": len(self.of_kind(k)),
                                 "kept": [f.to_json() for f in self.of_kind(k)[:KEPT_PER_KIND]]} for k in kinds}}


def curl_line(response, target) -> str:
    """A shell line that sends the same request again (the token is a placeholder)."""
    request = response.request
    parts = ["curl", "-sS", "-X", request.method]
    if target.ca_file:
        parts += ["--cacert", target.ca_file]
    for name, value in request.headers.items():
        if name.lower() == "authorization":
            value = "Bearer $TOKEN"
        if name.lower() in ("authorization", "accept", "content-type"):
            parts += ["-H", f"{name}: {value}"]
    return shlex.join([*parts, request.url])


class Fuzzer:
    def __init__(self, target, client: RecordingClient):
        self.target, self.client, self.run = target, client, FuzzRun()
        self.silent = 0   # requests without an answer in a row

    def send(self, method: str, path: str, params=None, payload: str | None = None, marker: str | None = None,
             baseline: bool = False):
        """baseline: a benign request, which vigie's token must get through (a 401 says the token is wrong);
        any other may be refused, which is counted against its operation."""
        try:
            response = self.client.request(method, path, params=params, may_refuse=not baseline)
        except TokenRefused as exc:
            raise ObservationError(f"fuzzing stopped: {exc}") from None
        except ObservationError as exc:
            # a target that never answered, or stopped answering, cannot be fuzzed: say so, do not insist
            self.silent += 1
            if self.run.requests == 0 or self.silent >= MAX_SILENT:
                raise ObservationError(f"fuzzing stopped: {exc}") from None
            self.run.findings.append(Finding("server-error", f"no answer: {exc}", method, path, None, ""))
            return None
        finally:
            self.client.take_exchanges()  # findings keep their own record; the rest is counted
        self.silent = 0
        self.run.requests += 1
        self.run.statuses[str(response.status_code)] = self.run.statuses.get(str(response.status_code), 0) + 1
        self.run.count(operation_of(path), response.status_code in REFUSED)
        self.judge(response, payload, marker)
        return response

    def finding(self, kind: str, detail: str, response) -> None:
        self.run.findings.append(Finding(kind, detail, response.request.method, response.request.url,
                                         response.status_code, curl_line(response, self.target)))

    def judge(self, response, payload: str | None, marker: str | None) -> None:
        status, text = response.status_code, response.content[:262144].decode("utf-8", "replace")
        media = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if status >= 500:
            self.finding("server-error", f"answered {status}", response)
        # a refusal is access control's answer, judged by api-access, not the operation's error (a bare 401
        # from a gateway is no finding of the API); what any body discloses or reflects is still judged
        if status in ERROR_CODES and status not in REFUSED:
            try:
                body = response.json()
            except ValueError:
                body = None
            if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
                self.finding("not-operation-outcome", f"{status} with {media or 'no content type'} instead of "
                                                      "an OperationOutcome", response)
        leak = disclosed(text)
        if leak:
            self.finding("disclosure", f"the body discloses internals: '{leak}'", response)
        if payload is None:
            return
        if marker and marker in text:
            self.finding("injection", f"the payload was executed: '{marker}' in the body", response)
        elif status >= 500 or sql_error(text):
            self.finding("injection", "the payload broke the server's query"
                         + (f" ('{sql_error(text)}')" if sql_error(text) else f" ({status})"), response)
        if payload in text and "json" not in media and "xml" not in media:
            self.finding("injection", f"the payload is reflected unescaped in a {media or 'untyped'} body", response)


def operation_of(path: str) -> str:
    """The operation a request exercises: "read Type" for Type/id, else "search Type"."""
    rtype, _, rest = path.partition("/")
    return f"{'read' if rest else 'search'} {rtype}"


def _string_param(resource: dict) -> str | None:
    params = [p for p in resource.get("searchParam", []) if isinstance(p, dict)]
    names = [p.get("name") for p in params if p.get("type") == "string"]
    return names[0] if names else (params[0].get("name") if params else None)


def _total(response) -> int | None:
    if response is None or response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return len(body.get("entry", []) or []) if isinstance(body, dict) else None


def corpus_phase(fuzzer: Fuzzer, capability: Capability) -> None:
    searchable = [t for t in capability.types_with("search-type") if t != "AuditEvent"][:MAX_TYPES]
    for index, rtype in enumerate(searchable):
        param = _string_param(capability.resources[rtype])
        if not param:
            continue
        baseline = _total(fuzzer.send("GET", rtype, {param: NO_MATCH}, baseline=True))
        for name, (value, marker) in PAYLOADS.items():
            response = fuzzer.send("GET", rtype, {param: value}, payload=value, marker=marker)
            matched = _total(response)
            if name in TAUTOLOGIES and baseline is not None and matched is not None and matched > baseline:
                fuzzer.finding("injection", f"{name}: {param}={value!r} matched {matched} entries where "
                                            f"{NO_MATCH!r} matched {baseline}: the payload was evaluated", response)
        for params in MALFORMED.values() if index < MALFORMED_TYPES else ():
            fuzzer.send("GET", rtype, params)
    for rtype in capability.types_with("read")[:MALFORMED_TYPES]:
        for name in ("path-traversal", "script", "sql-quote"):
            value, marker = PAYLOADS[name]
            fuzzer.send("GET", f"{rtype}/{_quote_path(value)}", payload=value, marker=marker)


def _quote_path(value: str) -> str:
    from urllib.parse import quote
    return quote(value, safe="")


def generation_phase(fuzzer: Fuzzer, capability: Capability, examples: int) -> None:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    operations = []
    for rtype in capability.types_with("search-type"):
        params = [(p.get("name"), p.get("type")) for p in capability.resources[rtype].get("searchParam", [])
                  if isinstance(p, dict) and p.get("name")]
        operations.append(("search", rtype, params))
    for rtype in capability.types_with("read"):
        operations.append(("read", rtype, []))
    if not operations:
        return
    fuzzer.run.operations = [f"{kind} {rtype}" for kind, rtype, _ in operations]
    text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
    corpus = st.sampled_from([v for v, _ in PAYLOADS.values() if len(v) < 100])
    dates = st.builds(lambda p, y, m, d: f"{p}{y:04d}-{m:02d}-{d:02d}", st.sampled_from(["", "ge", "le", "gt", "lt",
                                                                                           "eq", "ne", "sa", "xx"]),
                      st.integers(0, 9999), st.integers(0, 13), st.integers(0, 32))
    tokens = st.builds(lambda s, c: f"{s}|{c}", st.sampled_from(["", "http://loinc.org", "urn:oid:1.2.250.1.213.1.4.8"]),
                       st.text(alphabet=string.ascii_letters + string.digits + "-.", max_size=12))
    numbers = st.one_of(st.integers().map(str), st.floats(allow_nan=True).map(str), st.just("1" * 400))
    values = {"date": st.one_of(dates, text, corpus), "token": st.one_of(tokens, text, corpus),
              "reference": st.one_of(st.from_regex(r"[A-Z][a-z]{2,10}/[A-Za-z0-9.\-]{1,20}", fullmatch=True), text,
                                     corpus),
              "number": st.one_of(numbers, text), "quantity": st.one_of(numbers, text)}
    modifiers = st.sampled_from(["", "", "", ":exact", ":contains", ":missing", ":not", ":vigie"])

    def query(params):
        known = st.sampled_from(params) if params else st.nothing()
        pair = st.one_of(
            st.tuples(known, modifiers).flatmap(
                lambda nm: st.tuples(st.just(nm[0][0] + nm[1]), values.get(nm[0][1], st.one_of(text, corpus)))),
            st.tuples(st.sampled_from(["_count", "_include", "_revinclude", "_sort", "_format", "_summary"]),
                      st.one_of(text, numbers, corpus)),
            st.tuples(text.filter(bool), text))
        return st.lists(pair, max_size=4)

    ids = st.one_of(st.from_regex(r"[A-Za-z0-9\-.]{1,64}", fullmatch=True), text.filter(bool), corpus)
    requests = st.sampled_from(operations).flatmap(
        lambda op: st.tuples(st.just(op), query(op[2]) if op[0] == "search" else ids))

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(requests)
    def explore(request):
        if stopped:
            return
        (kind, rtype, _), arg = request
        fuzzer.run.examples += 1
        try:
            if kind == "search":
                fuzzer.send("GET", rtype, [(n, v) for n, v in arg])
            else:
                fuzzer.send("GET", f"{rtype}/{_quote_path(arg)}")
        except ObservationError as exc:  # kept out of hypothesis, which would report it as a falsifying example
            stopped.append(exc)

    stopped: list[ObservationError] = []
    explore()
    if stopped:
        raise stopped[0]


@observation("fuzz", kinds=("fhir",))
def observe_fuzz(target, store) -> FuzzRun:
    client = RecordingClient(target)
    try:
        response = client.get("metadata", auth=False)
        client.take_exchanges()
        try:
            statement = response.json()
        except ValueError:
            statement = None
        if response.status_code != 200 or not isinstance(statement, dict):
            raise ObservationError(f"GET metadata answered {response.status_code} without a CapabilityStatement: "
                                   "nothing to fuzz from")
        capability = Capability(statement)
        fuzzer = Fuzzer(target, client)
        corpus_phase(fuzzer, capability)
        generation_phase(fuzzer, capability, EXAMPLES)
        return fuzzer.run
    finally:
        client.close()
