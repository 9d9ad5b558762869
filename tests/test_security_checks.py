"""Security checks proven both ways on behaviours the reference system's flaws do not cover: each check
function is called directly with small stand-ins for the plugin's fixtures."""
import http.server
import threading
from types import SimpleNamespace

import pytest
from checkcall import Outcome, conclude

from fixtures.practice import start_practice
from security import test_access, test_http_hardening
from vigie import fuzz
from vigie.campaign import Target
from vigie.http import RecordingClient


def requirement(**params):
    return SimpleNamespace(id="TEST-01", params=params)


def plain_server(status: int, headers: dict):
    """A plain-HTTP server on loopback answering every GET with `status` and `headers`."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def practice():
    with start_practice() as system:
        yield system


def target_of(system, **overrides):
    fields = {"id": "practice", "kind": "fhir", "url": system.url, "ca_file": str(system.ca_file),
              "token": system.token, "tokens": dict(system.tokens)}
    return Target(**{**fields, **overrides})


# --- plain HTTP (HTTP-09)


def test_plaintext_passes_on_a_tls_only_port(practice):
    result = conclude(test_http_hardening.test_plain_http_refused, requirement(), target_of(practice), Outcome())
    assert result.status == "passed" and "no HTTP answer" in result.summary


def test_plaintext_fails_when_plain_http_is_served():
    server = plain_server(200, {"Content-Type": "application/fhir+json"})
    try:
        # the declared URL says https, but the same port answers plain HTTP
        target = Target(id="t", kind="fhir", url=f"https://127.0.0.1:{server.server_address[1]}/fhir")
        result = conclude(test_http_hardening.test_plain_http_refused, requirement(), target, Outcome())
        assert result.status == "failed" and "answered 200" in result.summary
        result = conclude(test_http_hardening.test_plain_http_refused, requirement(), Target(
            id="t", kind="fhir", url=f"http://127.0.0.1:{server.server_address[1]}/fhir"), Outcome())
        assert result.status == "failed" and "plain http" in result.summary
    finally:
        server.shutdown()


def test_plaintext_accepts_a_redirect_to_https_only():
    good = plain_server(301, {"Location": "https://127.0.0.1/fhir/metadata"})
    bad = plain_server(302, {"Location": "http://elsewhere.invalid/"})
    try:
        result = conclude(test_http_hardening.test_plain_http_refused, requirement(),
                          Target(id="t", kind="fhir", url=f"https://127.0.0.1:{good.server_address[1]}/fhir"), Outcome())
        assert result.status == "passed" and "redirected to https://" in result.summary
        result = conclude(test_http_hardening.test_plain_http_refused, requirement(),
                          Target(id="t", kind="fhir", url=f"https://127.0.0.1:{bad.server_address[1]}/fhir"), Outcome())
        assert result.status == "failed" and "not refused nor redirected" in result.summary
    finally:
        good.shutdown()
        bad.shutdown()


# --- CORS (HTTP-06): an origin echoed back with credentials


class CorsClient:
    """Answers like a server whose CORS policy is `policy(origin) -> headers`."""

    def __init__(self, policy):
        self.policy = policy

    def request(self, method, path, auth=True, headers=None):
        bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {"resourceType": "Patient"}}]}
        return SimpleNamespace(headers=self.policy(headers["Origin"]), status_code=200, json=lambda: bundle)


@pytest.mark.parametrize("policy, passes", [
    (lambda origin: {}, True),
    (lambda origin: {"Access-Control-Allow-Origin": "*"}, True),   # no credentials: a bearer API may allow any
    (lambda origin: {"Access-Control-Allow-Origin": "https://app.example"}, True),
    (lambda origin: {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true"}, False),
    (lambda origin: {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Credentials": "true"}, False),
    (lambda origin: {"Access-Control-Allow-Origin": "https://app.example",
                     "Access-Control-Allow-Credentials": "true"}, True),
])
def test_cors_policies(policy, passes):
    result = conclude(test_http_hardening.test_cors_never_any_origin_with_credentials, requirement(),
                      CorsClient(policy), Outcome())
    assert result.status == ("passed" if passes else "failed"), result.summary
    assert passes or "credentials" in result.summary


# --- access checks without the role tokens they need


def test_role_checks_are_not_tested_without_their_token(practice):
    target = target_of(practice, tokens={})
    http = RecordingClient(target)
    capability = SimpleNamespace(types_with=lambda i: ["Patient"], resources={"Patient": {}})
    try:
        for check in (test_access.test_read_only_token_cannot_write,
                      test_access.test_patient_token_stays_in_its_compartment,
                      test_access.test_burst_is_rate_limited):
            result = conclude(check, requirement(), http, capability, target, Outcome())
            assert result.status == "not_tested" and "token configured" in result.summary
    finally:
        http.close()


def test_forgeries_do_not_apply_to_opaque_tokens(practice):
    target = target_of(practice, token="opaque-token-not-a-jwt")
    result = conclude(test_access.test_forged_token_refused, requirement(forgery="alg-none"), None, None, target,
                      Outcome())
    assert result.status == "not_applicable" and "not a JWT" in result.summary


# --- fuzzing: findings carry a reproducible request, without the token


def test_fuzz_findings_carry_curl_lines_without_the_token():
    with start_practice(flaws=["sql-error-leak"]) as system:
        target = target_of(system)
        client = RecordingClient(target)
        try:
            fuzzer = fuzz.Fuzzer(target, client)
            capability = fuzz.Capability(client.get("metadata", auth=False).json())
            fuzz.corpus_phase(fuzzer, capability)
        finally:
            client.close()
    kinds = {f.kind for f in fuzzer.run.findings}
    assert {"server-error", "disclosure", "injection"} <= kinds and "not-operation-outcome" not in kinds
    for finding in fuzzer.run.findings:
        assert finding.curl.startswith("curl ") and "Bearer $TOKEN" in finding.curl
        assert system.token not in finding.curl and finding.url in finding.curl
    assert fuzzer.run.to_json()["findings"]["injection"]["count"] >= 1


def test_fuzz_finds_nothing_on_the_clean_system(practice):
    target = target_of(practice)
    client = RecordingClient(target)
    try:
        fuzzer = fuzz.Fuzzer(target, client)
        capability = fuzz.Capability(client.get("metadata", auth=False).json())
        fuzz.corpus_phase(fuzzer, capability)
        fuzz.generation_phase(fuzzer, capability, 20)
    finally:
        client.close()
    assert fuzzer.run.examples == 20 and fuzzer.run.requests > 60
    assert fuzzer.run.findings == []


def test_fuzzing_stops_when_the_target_stops_answering():
    from fixtures.practice.capability import capability_statement
    from vigie.errors import ObservationError

    class Silent:
        """Answers nothing: every request fails as a timed-out one would."""
        calls = 0

        def request(self, method, path, params=None, **kwargs):
            Silent.calls += 1
            raise ObservationError(f"{method} {path} failed: timed out")

        def take_exchanges(self):
            return []

    fuzzer = fuzz.Fuzzer(Target(id="t", kind="fhir", url="https://127.0.0.1:1/fhir"), Silent())
    fuzzer.run.requests = 5            # it had answered before
    with pytest.raises(ObservationError, match="fuzzing stopped"):
        fuzz.generation_phase(fuzzer, fuzz.Capability(capability_statement("https://127.0.0.1:1/fhir")), 50)
    assert Silent.calls == fuzz.MAX_SILENT
