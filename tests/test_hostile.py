"""vigie against hostile systems (fixtures/hostile): every run ends, within its limits and in bounded memory,
with an outcome and a reason for every requirement; and the limits themselves (vigie.limits).

The runs go through the command line as a user would start them (`vigie run --fhir URL --ca-file CA --token
x`), several at once to keep the suite short: they mostly wait on the hostile servers.
"""
import ast
import importlib.util
import json
import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest
import requests
from checkcall import conclude
from peak import measured, peak_mb
from vigie.fixtures.hostile import BEHAVIOURS, start_hostile

from vigie.campaign import Target
from vigie.errors import ObservationError, VigieError
from vigie.fhirrest import Capability, json_body
from vigie.http import RecordingClient
from vigie.limits import Budget, Deadline, Limits, TimeLimitExceeded, make_limits, merge, parse_size
from vigie.plugin import unconcluded
from vigie.suite import CHECK_DIRS, ROOT

SCHEMA = json.loads((Path(__file__).parent.parent / "vigie/schema/report.schema.json").read_text())
# the profiles whose checks make HTTP requests of their own (TLS scans and the load phase do not)
HTTP_PROFILES = ("fhir-r4-rest", "http-hardening", "api-access", "fr-identifiers")
LIMITS = ("--check-timeout", "5", "--run-timeout", "90", "--max-bytes", "40M", "--rate", "200")
MEMORY_MB = 500        # peak RSS of vigie and of its children (the load driver)
WALL_S = 240           # a run's own limits end it far sooner; this only catches a hang
# behaviours also run with the whole default campaign: TLS scans and the load phase meet them too
FULL_CAMPAIGN = ("plain-garbage", "silent", "gzip-bomb", "redirect-away")


@dataclass
class Result:
    code: int
    elapsed: float
    max_rss_mb: float
    output: str
    report: dict | None
    connections: int
    sentinel_connections: int


def run_against(behaviour: str, out: Path, *args: str) -> Result:
    """`vigie run` against one hostile system; the peak RSS covers vigie and the children it waited for."""
    with start_hostile(behaviour, workdir=out.parent / f"{out.name}-tls") as system:
        log, peak_file = out.parent / f"{out.name}.log", out.parent / f"{out.name}.peak"
        started = time.monotonic()
        with open(log, "w") as sink:
            proc = subprocess.Popen(
                measured(peak_file, "run", "--fhir", system.url, "--ca-file", str(system.ca_file), "--token", "x",
                         "--run-anyway", "--out", str(out), *LIMITS, *args),
                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "VIGIE_LOAD_DURATION": "1"})
            try:
                proc.wait(timeout=WALL_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        report = json.loads((out / "report.json").read_text()) if (out / "report.json").is_file() else None
        return Result(proc.returncode, time.monotonic() - started, peak_mb(peak_file), log.read_text(),
                      report, system.connections, system.sentinel_connections)


@pytest.fixture(scope="module")
def hostile_runs(tmp_path_factory):
    """Every behaviour with the HTTP profiles, and a few with the whole default campaign, four at a time
    (more, on two cores, starves the runs enough that a request to a hostile system sometimes fails for the
    machine's sake rather than the system's)."""
    root = tmp_path_factory.mktemp("hostile")
    jobs = {(b, "http"): [a for p in HTTP_PROFILES for a in ("--profile", p)] for b in BEHAVIOURS}
    jobs |= {(b, "full"): [] for b in FULL_CAMPAIGN}
    with ThreadPoolExecutor(4) as pool:
        futures = {key: pool.submit(run_against, key[0], root / f"{key[0]}-{key[1]}", *args)
                   for key, args in jobs.items()}
        return {key: future.result() for key, future in futures.items()}


# what each behaviour must be reported as, beyond "an outcome with a reason for everything"
EXPECTED = {
    "garbage": "the answer is not HTTP",
    "plain-garbage": "wrong version number",
    "huge-body": "body larger than",
    "slow-drip": "time limit of 5 s exceeded",
    "silent": "answered none of the last 3 requests in time",
    "reset": "connection reset",
    "gzip-bomb": "body larger than",
    "broken-gzip": "the body could not be decoded (Content-Encoding)",
    "redirect-loop": "answered 302",
    "redirect-away": "answered 302",
    "wrong-content-type": "wrong content type: metadata → text/html",
    "invalid-utf8": "did not return JSON",
    "deep-json": "JSON nested too deeply to be read",
    "huge-numbers": "JSON number out of the range vigie reads",
    "duplicate-keys": "did not return a searchset Bundle",
    "tls-fail": "TLS handshake refused by the server",
    "wrong-name": "certificate verification failed",
    "unpaired-surrogates": "unpaired surrogate",
    "header-flood": "more than 100 headers",
    "short-body": "ended before its announced length",
    "type-confused": "malformed parts in the CapabilityStatement",
}


def test_every_behaviour_has_an_expectation():
    assert set(EXPECTED) == set(BEHAVIOURS)


def _check_run(result: Result, requirements: int | None = None):
    assert result.code in (1, 2), f"exit {result.code}:\n{result.output[-3000:]}"
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output[-3000:]
    assert result.elapsed < WALL_S, "the run did not end"
    assert result.max_rss_mb < MEMORY_MB, f"peak RSS {result.max_rss_mb:.0f} MB"
    assert result.sentinel_connections == 0, "vigie followed a redirect to a host that is not the target"
    report = result.report
    assert report is not None, result.output[-3000:]
    jsonschema.validate(report, SCHEMA)
    assert report["run"]["complete"] is True and report["verdict"] in ("non-conformant", "incomplete")
    assert report["run"]["limits"]["check_timeout_s"] == 5 and report["run"]["limits"]["max_bytes"] == 40 << 20
    outcomes = report["outcomes"]
    assert len({(o["requirement"], o["target"]) for o in outcomes}) == len(outcomes)
    if requirements is not None:
        assert len(outcomes) == requirements
    for o in outcomes:
        assert o["summary"].strip() and o["summary"].isprintable(), o
        # nothing vigie did not observe is reported as passed for lack of a reason
        assert o["status"] != "error" or o["summary"] != o["title"]["en"], o
        # what a target sent never trips vigie's own code (plugin.py names where an unexpected exception was raised)
        assert "(at " not in o["summary"], o
    # the limits in force bound every check (a little over: the journal write and the bundle follow)
    assert max(o["duration_s"] for o in outcomes) < 5 + 10
    return outcomes


def _profile_requirements(profiles) -> int:
    from vigie.catalogue import load_catalogue
    catalogue = load_catalogue()
    return sum(len(catalogue[p].requirements) for p in profiles)


@pytest.mark.parametrize("behaviour", sorted(BEHAVIOURS))
def test_hostile_system_with_http_profiles(hostile_runs, behaviour):
    result = hostile_runs[(behaviour, "http")]
    outcomes = _check_run(result, _profile_requirements(HTTP_PROFILES))
    assert result.connections > 0, "vigie never reached the hostile system"
    reasons = [o["summary"] for o in outcomes if o["status"] in ("error", "failed")]
    assert any(EXPECTED[behaviour] in r for r in reasons), "\n".join(
        f"{o['requirement']}: {o['status']}: {o['summary']}" for o in outcomes)


@pytest.mark.parametrize("behaviour", FULL_CAMPAIGN)
def test_hostile_system_with_the_default_campaign(hostile_runs, behaviour):
    result = hostile_runs[(behaviour, "full")]
    outcomes = _check_run(result)
    by_check = {}
    for o in outcomes:
        by_check.setdefault(o["check"].split(".")[0], []).append(o)
    assert {"tls", "load", "fhir", "http"} <= set(by_check)
    if behaviour in ("plain-garbage", "silent"):
        # nothing answered: the load phase and the TLS scan observed nothing, and say why
        assert {o["status"] for o in by_check["load"] + by_check["tls"]} == {"error"}
    if behaviour == "plain-garbage":   # sslyze is never let loose on a port that does not speak TLS
        assert any("does not answer in TLS" in o["summary"] for o in by_check["tls"]), by_check["tls"]


def test_run_time_limit_leaves_the_rest_not_tested(tmp_path):
    result = run_against("slow-drip", tmp_path / "bundle", "--profile", "fhir-r4-rest", "--profile",
                         "http-hardening", "--check-timeout", "3", "--run-timeout", "5")
    assert result.code == 2 and "Traceback" not in result.output, result.output[-3000:]
    outcomes = result.report["outcomes"]
    statuses = {o["status"] for o in outcomes}
    assert statuses <= {"error", "not_tested", "passed"}, statuses
    late = [o for o in outcomes if o["status"] == "not_tested"]
    assert late and all("run time limit of 5 s was reached" in o["summary"] for o in late)
    assert result.report["run"]["limits"]["run_timeout_s"] == 5


# ---- the limits, in-process ----------------------------------------------------------------------------

def test_limits_from_a_table_and_flags():
    limits = make_limits({"check_timeout": 10, "max_bytes": "200M", "rate": 5, "max_requests": 100})
    assert (limits.check_timeout_s, limits.max_bytes, limits.rate, limits.max_requests) == (10, 200 << 20, 5, 100)
    assert merge(limits, {"check_timeout": "3", "rate": None}).check_timeout_s == 3
    assert merge(limits, {"rate": None}).rate == 5
    assert Limits().to_json()["run_timeout_s"] == 3600
    assert parse_size("1GiB") == 1 << 30 and parse_size(512) == 512 and parse_size("2k") == 2048


@pytest.mark.parametrize("table", [{"check_timeout": 0}, {"check_timeout": -1}, {"rate": "fast"},
                                   {"max_bytes": "12 parsecs"}, {"max_requests": 1.5e400},
                                   {"max_requests": True}, {"timeout": 3}, {"run_timeout": float("nan")},
                                   {"run_timeout": float("inf")}, {"max_bytes": [1]}])
def test_bad_limits_are_configuration_errors(table):
    with pytest.raises(VigieError):
        make_limits(table)


def test_budget_caps_requests_bytes_and_stalls():
    budget = Budget(make_limits({"max_requests": 2, "max_bytes": 100}), sleep=lambda s: None)
    budget.take_request("GET a")
    budget.take_request("GET b")
    with pytest.raises(ObservationError, match="limit of 2 requests"):
        budget.take_request("GET c")
    budget = Budget(make_limits({"max_bytes": 100}), sleep=lambda s: None)
    budget.spend_bytes(100)
    with pytest.raises(ObservationError, match="limit of 100 bytes"):
        budget.take_request("GET a")
    budget = Budget(Limits(), sleep=lambda s: None)
    for _ in range(3):
        budget.answered(in_time=False)
    with pytest.raises(ObservationError, match="answered none of the last 3"):
        budget.take_request("GET a")


def test_budget_rate_is_a_token_bucket():
    now, slept = [0.0], []
    budget = Budget(make_limits({"rate": 10}), clock=lambda: now[0], sleep=slept.append)
    for _ in range(10):            # a burst of one second's worth goes at once
        budget.take_request("GET")
    assert not slept
    budget.take_request("GET")     # then one request every 1/rate seconds
    assert slept == [pytest.approx(0.1)]
    now[0] += 5                    # an idle while refills the bucket, never beyond one burst
    slept.clear()
    for _ in range(10):
        budget.take_request("GET")
    assert not slept


def test_deadlines_nest_and_interrupt_blocking_calls():
    started = time.monotonic()
    with (pytest.raises(TimeLimitExceeded, match="inner"), Deadline(5, TimeLimitExceeded("outer")),
          Deadline(0.2, TimeLimitExceeded("inner"))):
        time.sleep(3)
    assert time.monotonic() - started < 2
    with Deadline(0.2, TimeLimitExceeded("cancelled")):
        pass
    time.sleep(0.4)                # a cancelled deadline never fires
    with (pytest.raises(TimeLimitExceeded, match="outer"), Deadline(0.3, TimeLimitExceeded("outer")),
          Deadline(5, TimeLimitExceeded("inner"))):
        time.sleep(3)


def test_a_held_deadline_fires_on_release():
    deadline = Deadline(0.1, TimeLimitExceeded("late")).start()
    Deadline.hold()
    try:
        time.sleep(0.3)            # due meanwhile, but held
        with pytest.raises(TimeLimitExceeded, match="late"):
            Deadline.release()
    finally:
        deadline.cancel()
        Deadline.release()


# --- an HTTP library's own assertion, tripped by a target, is no verdict


def _library_assertion(tmp_path):
    """A module outside vigie and its suite whose function fails an assertion, like urllib3's or
    http.client's sanity checks on a broken connection."""
    module = tmp_path / "somelibrary.py"
    module.write_text("def read():\n    assert False\n")
    spec = importlib.util.spec_from_file_location("somelibrary", module)
    library = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(library)
    return library.read


def test_an_assertion_is_never_a_verdict(tmp_path):
    """A library's sanity check tripped by a target, or a bare assert anywhere: an error, never a conclusion
    (an assert vanishes under -O, so a verdict cannot rest on one)."""
    with pytest.raises(AssertionError) as library:
        _library_assertion(tmp_path)()
    status, reason = unconcluded(library)
    assert status == "error" and "internal assertion failed (at somelibrary.py:2)" in reason, reason
    not_json = SimpleNamespace(json=lambda: json.loads("<html>"), headers={"Content-Type": "text/html"})
    # vigie's own helper concludes through the outcome API: a failed check, stated as such
    result = conclude(json_body, not_json, "Patient search")
    assert result.status == "failed"
    assert result.summary == "Patient search: body is not JSON (text/html): Expecting value: line 1 column 1 (char 0)"


def test_a_check_that_ends_without_concluding_is_an_error():
    assert conclude(lambda: None).status == "error"
    assert "without a conclusion" in conclude(lambda: None).summary


def test_the_first_conclusion_counts_even_if_swallowed():
    from vigie.checks import failed, passed

    def sly():
        try:
            failed("observed a violation")
        except BaseException:  # noqa: BLE001, S110 - what a careless check might do
            pass
        passed("all good")

    result = conclude(sly)
    assert (result.status, result.summary) == ("failed", "observed a violation")


def test_an_unexpected_exception_names_where_vigie_met_it():
    with pytest.raises(AttributeError) as crash:
        Capability(None)          # vigie's own code tripped: the report says where, to make it reportable
    status, reason = unconcluded(crash)
    assert status == "error" and re.fullmatch(r"AttributeError: .* \(at vigie/fhirrest\.py:\d+\)", reason), reason


def test_no_check_concludes_with_an_assert():
    """Checks conclude through vigie.checks only: an assert in a check folder (or in the engine's helpers that
    checks call) would decide nothing under -O and is refused here."""
    found = [f"{path.relative_to(ROOT)}:{node.lineno}" for folder in (*CHECK_DIRS, "vigie")
             for path in sorted((ROOT / folder).rglob("*.py"))
             for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Assert)]
    assert not found, found


def test_http_stack_failures_are_observation_errors(tmp_path):
    read = _library_assertion(tmp_path)

    class Tripping(requests.adapters.HTTPAdapter):
        def send(self, *args, **kwargs):
            read()

    client = RecordingClient(Target(id="t", kind="fhir", url="https://127.0.0.1:9/fhir", token="x"))
    client.session.mount("https://", Tripping())
    try:
        with pytest.raises(ObservationError, match=r"GET .*/metadata failed: the HTTP client failed on the "
                                                   r"answer \(AssertionError in somelibrary.py:2\)"):
            client.get("metadata")
        assert client.take_exchanges()[0]["error"] is not None   # the attempt stays in the evidence
    finally:
        client.close()


def test_an_observation_never_concludes_for_the_check_that_ran_it():
    """An observation is shared by every check of a target: a helper that concludes inside it (a defect)
    becomes the observation's error for all of them, not a verdict of the first one."""
    from vigie.checks import failed
    from vigie.observations import ObservationCache, observation

    @observation("vigie-test-concluding", kinds=("fhir",))
    def concluding(target, store):
        failed("decided inside an observation")

    store = SimpleNamespace(write_json=lambda name, data: name)
    cache = ObservationCache(store)
    target = Target(id="t", kind="fhir", url="https://127.0.0.1:9/fhir")

    def check():
        _, error, _ = cache.get("vigie-test-concluding", target)
        raise error

    result = conclude(check)
    assert result.status == "error" and "decided inside an observation" in result.summary


# --- the harness is safe to point at a hostile system (issue 16) -----------------------------------------

def test_links_outside_the_declared_base_url_are_never_followed():
    """Next links and references to another port, a downgrade to http or another path prefix: not fetched
    (the bearer token once went to 127.0.0.1:OTHERPORT in clear), whatever a check asks."""
    import socket as sockets

    from vigie.http import LeftTarget
    other = sockets.socket()
    other.bind(("127.0.0.1", 0))
    other.listen(8)
    other.settimeout(0.5)
    port = other.getsockname()[1]
    client = RecordingClient(Target(id="t", kind="fhir", url="https://127.0.0.1:8443/fhir", token="x" * 20))
    try:
        for url in (f"http://127.0.0.1:{port}/fhir/Patient?page=2", f"https://127.0.0.1:{port}/fhir/Patient",
                    "http://127.0.0.1:8443/fhir/Patient", "https://127.0.0.1:8443/admin/Patient",
                    "https://127.0.0.1:99999/fhir/Patient", "https://localhost:8443/fhir/Patient"):
            with pytest.raises(LeftTarget, match="outside the target's declared base URL"):
                client.get(url)
        with pytest.raises(OSError):   # nothing ever connected to the other port
            other.accept()
    finally:
        client.close()
        other.close()
    assert client.within("https://127.0.0.1:8443/fhir/Patient?_count=1")
    assert client.within("https://127.0.0.1:8443/fhir") and not client.within("https://127.0.0.1:8443/fhirx")


def test_a_target_that_echoes_forged_tokens_cannot_leak_the_genuine_one(tmp_path):
    """Forgeries keep the genuine token's header.payload or its signature (flipped): a target that echoes what
    it receives would put enough into the bundle to rebuild the genuine token."""
    import base64 as b64
    import http.server
    import threading

    from vigie import jwt
    from vigie.evidence import EvidenceStore, Redactor

    class Echo(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            sent = self.headers.get("Authorization", "")
            body = json.dumps({"resourceType": "OperationOutcome", "echo": sent,
                               "b64": b64.b64encode(sent[7:].encode()).decode()}).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    genuine = jwt.Jwt({"alg": "ES256", "typ": "JWT"}, {"sub": "clinician", "exp": 4102444800},
                      bytes(range(64))).encode()
    target = Target(id="t", kind="fhir", url=f"http://127.0.0.1:{server.server_address[1]}/fhir", token=genuine)
    client = RecordingClient(target)
    try:
        for forged in [jwt.forge(genuine, k) for k in ("alg-none", "bad-signature", "expired")] + \
                list(jwt.malformed(genuine).values()):
            client.get("Patient", auth=False, may_refuse=True, headers={"Authorization": f"Bearer {forged}"})
        store = EvidenceStore(tmp_path, Redactor(target.secrets()))
        written = (tmp_path / store.write_json("http/echo.json", client.take_exchanges())).read_text()
    finally:
        client.close()
        server.shutdown()
    head, payload, signature = genuine.split(".")
    for part in (genuine, f"{head}.{payload}", payload, signature):
        assert part not in written and b64.b64encode(part.encode()).decode() not in written
    flipped = jwt.forge(genuine, "bad-signature").split(".")[2]
    assert flipped not in written
    assert written.count("[redacted]") >= 7
