"""The load observation: locust in a subprocess against a tiny FHIR-like server on loopback; statistics.

Each load run lasts 2 s with at most 3 users; the subprocess adds about a second.
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import math
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vigie.errors import ObservationError, VigieError
from vigie.loadrun import AGGREGATED, LoadResult, RequestStats, evaluate_target, percentile, run_load

ROOT = Path(__file__).resolve().parent.parent
PRACTICE = ROOT / "load" / "locustfile_practice.py"
TOKEN = "test-token-5b1d0c"
RUN = {"users": 3, "spawn_rate": 10, "duration_s": 2}


# ------------------------------------------------------------------------------------------- pure statistics

def test_percentile_is_nearest_rank_on_the_full_histogram():
    hist = {10: 50, 20: 45, 300: 5}
    assert percentile(hist, 50) == 10
    assert percentile(hist, 95) == 20
    assert percentile(hist, 95.1) == 300
    assert percentile(hist, 99) == 300
    assert percentile(hist, 100) == 300
    assert percentile(hist, 0) == 10
    assert percentile({42: 1}, 95) == 42
    assert math.isnan(percentile({}, 95))


def _result(**scenarios) -> LoadResult:
    stats = {n: RequestStats(n, count=c, failures=f, histogram=h, duration_s=10.0,
                             total_response_time=sum(k * v for k, v in h.items()),
                             min_response_time=min(h), max_response_time=max(h))
             for n, (c, f, h) in scenarios.items()}
    hist: dict[int, int] = {}
    for s in stats.values():
        for k, v in s.histogram.items():
            hist[k] = hist.get(k, 0) + v
    agg = RequestStats(AGGREGATED, count=sum(s.count for s in stats.values()),
                       failures=sum(s.failures for s in stats.values()), histogram=hist,
                       total_response_time=sum(s.total_response_time for s in stats.values()),
                       min_response_time=min(hist), max_response_time=max(hist), duration_s=10.0)
    return LoadResult(scenarios=stats, aggregated=agg, duration_s=10.0, users=5, http_responses=agg.count)


def test_evaluate_target_latency_error_rate_throughput():
    result = _result(**{"patient-search": (100, 0, {100: 90, 900: 10}), "patient-read": (100, 2, {20: 100})})
    ok, observed, message = evaluate_target(result, {"metric": "latency", "aggregation": "p95", "op": "<",
                                                     "value": 1000, "scenario": "patient-search"})
    assert (ok, observed) == (True, 900)
    assert "p95 latency of patient-search: 900 ms, target < 1000 ms" in message
    assert evaluate_target(result, {"metric": "latency", "aggregation": "p95", "op": "<", "value": 900,
                                    "scenario": "patient-search"})[0] is False
    assert evaluate_target(result, {"metric": "latency", "aggregation": "p95", "op": "<=", "value": 900,
                                    "scenario": "patient-search"})[0] is True
    # over every request: 190 of 200 at or below 100 ms
    def overall(aggregation):
        params = {"metric": "latency", "aggregation": aggregation, "op": "<", "value": 500}
        return evaluate_target(result, params)
    assert overall("p95")[:2] == (True, 100)
    assert overall("max")[:2] == (False, 900)
    assert overall("mean")[:2] == (True, 100)
    ok, observed, message = evaluate_target(result, {"metric": "error_rate", "aggregation": "rate", "op": "<",
                                                     "value": 0.01})
    assert observed == pytest.approx(0.01) and not ok
    assert "error rate of all requests: 1 %, target < 1 %" in message
    assert evaluate_target(result, {"metric": "error_rate", "op": "<=", "value": 0.01})[0] is True
    ok, observed, _ = evaluate_target(result, {"metric": "throughput", "op": ">", "value": 15})
    assert (ok, observed) == (True, 20.0)


def test_evaluate_target_refuses_bad_params_and_missing_scenarios():
    result = _result(**{"patient-search": (10, 0, {100: 10})})
    for bad in ({"metric": "speed", "op": "<", "value": 1}, {"metric": "latency", "op": "=", "value": 1},
                {"metric": "latency", "aggregation": "rate", "op": "<", "value": 1},
                {"metric": "latency", "op": "<", "value": "fast"}):
        with pytest.raises(VigieError):
            evaluate_target(result, bad)
    with pytest.raises(ObservationError, match="no 'patient-read' request"):
        evaluate_target(result, {"metric": "latency", "op": "<", "value": 1, "scenario": "patient-read"})


def test_result_survives_json():
    result = _result(**{"patient-search": (100, 3, {100: 90, 900: 10})})
    again = LoadResult.from_json(json.loads(json.dumps(result.to_json())))
    assert again.scenarios["patient-search"].histogram == {100: 90, 900: 10}
    assert again.aggregated.percentile(95) == 900 and again.aggregated.error_rate == 0.03


# ------------------------------------------------------------------------------------------- a tiny server

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA and a loopback server certificate: ECDSA P-256, SAN IP 127.0.0.1 (not critical)."""
    d = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vigie test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    leaf = (x509.CertificateBuilder().subject_name(leaf_name).issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (d / "server.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (d / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                     serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    return d


class FhirLike(BaseHTTPRequestHandler):
    """Answers Patient, Practitioner and Slot searches, Patient reads and Encounter creation; behaviour set on
    the server object."""
    protocol_version = "HTTP/1.1"  # keep-alive, as a real server: one TLS handshake per user, not per request

    def do_GET(self):
        srv = self.server
        with srv.lock:
            srv.hits += 1
            n = srv.hits
        if srv.delay_s:
            time.sleep(srv.delay_s)
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.reply(401, {"resourceType": "OperationOutcome"})
        if srv.fail_every and n % srv.fail_every == 0:
            return self.reply(500, {"resourceType": "OperationOutcome"})
        path = self.path.split("?")[0]
        if path in ("/fhir/Patient", "/fhir/Practitioner", "/fhir/Slot"):
            kind = path.rsplit("/", 1)[1]
            entries = [{"resource": {"resourceType": kind, "id": f"{kind.lower()}-{i}",
                                     "identifier": [{"system": "urn:test", "value": str(i)}]}} for i in range(3)]
            return self.reply(200, {"resourceType": "Bundle", "type": "searchset", "entry": entries})
        if path.startswith("/fhir/Patient/"):
            return self.reply(200, {"resourceType": "Patient", "id": path.rsplit("/", 1)[1]})
        return self.reply(404, {"resourceType": "OperationOutcome"})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.reply(401, {"resourceType": "OperationOutcome"})
        if self.path.split("?")[0] == "/fhir/Encounter":
            return self.reply(201, {"resourceType": "Encounter", "id": "enc-1"})
        return self.reply(404, {"resourceType": "OperationOutcome"})

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(pki):
    """Starts the server over HTTPS; the test sets delay_s / fail_every before the run."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FhirLike)
    srv.daemon_threads = True
    srv.lock, srv.hits, srv.delay_s, srv.fail_every = threading.Lock(), 0, 0.0, 0
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki / "server.pem", pki / "server.key")
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    srv.url = f"https://127.0.0.1:{srv.server_address[1]}/fhir"
    yield srv
    srv.shutdown()
    srv.server_close()


def _settings(pki) -> dict:
    return {"VIGIE_LOAD_CA_FILE": str(pki / "ca.pem"), "VIGIE_LOAD_TOKEN": TOKEN}


# ------------------------------------------------------------------------------------------- load runs

def test_fast_server_meets_the_baseline_through_the_observation(server, pki, tmp_path, monkeypatch):
    from vigie.campaign import Target
    from vigie.catalogue import load_profile
    from vigie.evidence import EvidenceStore, Redactor
    from vigie.load.driver import extension_s
    from vigie.loadrun import observe_load, observe_load_for, plan_for

    monkeypatch.setenv("VIGIE_LOAD_DURATION", "2")  # the command line's --load-duration, --load-users
    monkeypatch.setenv("VIGIE_LOAD_USERS", "3")
    monkeypatch.setenv("VIGIE_LOAD_SPAWN_RATE", "10")
    requirements = load_profile(ROOT / "profiles" / "load-baseline.yaml").requirements
    plan = plan_for(requirements[0])
    assert (plan.users, plan.duration_s, plan.mix["patient-search-name"]) == (3, 2.0, 4)
    assert [rid for rid, _ in plan.abort] == ["LOAD-02"]
    target = Target(id="practice", kind="fhir", url=server.url, ca_file=str(pki / "ca.pem"), token=TOKEN)
    store = EvidenceStore(tmp_path, Redactor([TOKEN]))
    started = time.monotonic()
    result = observe_load_for(lambda name: observe_load(target, store), target, plan)
    elapsed = time.monotonic() - started

    # the 2 s asked, and longer while a target lacked the responses it needs (20 slot searches for LOAD-04's p95)
    assert result.duration_s < 2 + extension_s(2) + 1 and elapsed < 2 + extension_s(2) + 15
    assert result.scenarios["slot-search"].count >= 20
    assert set(result.scenarios) == {"patient-search-name", "patient-search-identifier", "patient-read",
                                     "practitioner-search", "slot-search", "encounter-create"}
    search = result.scenarios["patient-search-name"]
    assert search.count > result.scenarios["practitioner-search"].count  # weighted towards patient search
    assert result.aggregated.count == sum(s.count for s in result.scenarios.values())
    assert result.aggregated.failures == 0 and result.http_responses == result.aggregated.count
    assert result.status_codes == {200: result.aggregated.count - result.scenarios["encounter-create"].count,
                                   201: result.scenarios["encounter-create"].count}
    assert sum(search.histogram.values()) == search.count
    assert result.timeseries and all({"t", "rps", "failures_per_s", "p50", "p95", "users"} <= set(p)
                                     for p in result.timeseries)
    assert result.plan["users"] == 3 and result.plan["profile"] == "load-baseline" and not result.aborted
    for req in requirements:
        ok, _, message = evaluate_target(result, req.params)
        assert ok, f"{req.id}: {message}"
    evidence = tmp_path / "evidence" / "load" / "practice"
    assert json.loads((evidence / "stats.json").read_text())["aggregated"]["count"] == result.aggregated.count
    assert TOKEN not in (evidence / "locust.log").read_text()
    assert json.loads(json.dumps(result.to_json()))["scenarios"]["patient-search-name"]["response_times"]


def test_slow_server_fails_a_latency_target(server, pki, tmp_path):
    server.delay_s = 0.3
    result = run_load(PRACTICE, server.url, env=_settings(pki), out_dir=tmp_path, **RUN)
    ok, observed, message = evaluate_target(result, {"metric": "latency", "aggregation": "p95", "op": "<",
                                                     "value": 200})
    assert not ok and observed >= 300, message
    assert result.aggregated.failures == 0


def test_failing_server_fails_the_error_rate_target(server, pki, tmp_path):
    server.fail_every = 2
    result = run_load(PRACTICE, server.url, env=_settings(pki), out_dir=tmp_path, **RUN)
    ok, observed, message = evaluate_target(result, {"metric": "error_rate", "op": "<", "value": 0.01})
    assert not ok and 0.3 < observed < 0.7, message
    assert any("HTTP 500" in e for e in result.errors)


def test_wrong_ca_is_an_observation_error(server, tmp_path, pki):
    with pytest.raises(ObservationError, match="no HTTP response .*CERTIFICATE_VERIFY_FAILED"):
        run_load(PRACTICE, server.url, env={"VIGIE_LOAD_TOKEN": TOKEN}, out_dir=tmp_path, **RUN)


def test_refused_token_is_an_observation_error(server, pki, tmp_path):
    with pytest.raises(ObservationError, match=r"every load request was refused \(HTTP 401 x\d+\)"):
        run_load(PRACTICE, server.url, env={**_settings(pki), "VIGIE_LOAD_TOKEN": "wrong"}, out_dir=tmp_path,
                 **RUN)


def test_closed_port_is_an_observation_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ObservationError, match="(?i)no HTTP response .*refused"):
        run_load(PRACTICE, f"http://127.0.0.1:{port}/fhir", env={}, out_dir=tmp_path, **RUN)


def test_broken_locustfile_is_an_observation_error(tmp_path):
    bad = tmp_path / "locustfile_bad.py"
    bad.write_text("from locust import HttpUser\nclass U(HttpUser)\n    pass\n")
    started = time.monotonic()
    with pytest.raises(ObservationError, match="cannot be loaded: SyntaxError") as err:
        run_load(bad, "http://127.0.0.1:9/", env={}, out_dir=tmp_path / "out", **RUN)
    assert "\n" not in str(err.value) and time.monotonic() - started < 10


def test_hung_subprocess_is_killed_at_the_deadline(tmp_path):
    hang = tmp_path / "locustfile_hang.py"
    hang.write_text("import time\ntime.sleep(600)\n")
    started = time.monotonic()
    with pytest.raises(ObservationError, match="did not end within 3 s"):
        run_load(hang, "http://127.0.0.1:9/", env={}, out_dir=tmp_path / "out", timeout_s=3, **RUN)
    assert time.monotonic() - started < 8


def test_practice_reference_system_serves_every_scenario(tmp_path):
    from vigie.fixtures.practice import start_practice
    with start_practice(port=0, workdir=tmp_path / "practice") as system:
        result = run_load(PRACTICE, system.url, env={"VIGIE_LOAD_CA_FILE": str(system.ca_file),
                                                      "VIGIE_LOAD_TOKEN": system.token},
                          out_dir=tmp_path / "out", **RUN)
    assert result.aggregated.failures == 0, result.errors
    assert {"patient-search-name", "patient-search-identifier", "patient-read", "practitioner-search",
            "slot-search", "encounter-create"} == set(result.scenarios)


def test_abort_on_fail_stops_the_run_once_the_target_is_lost(server, pki, tmp_path):
    server.fail_every = 2
    target = {"metric": "error_rate", "op": "<", "value": 0.01, "abort_on_fail": True, "abort_delay_s": 0.5}
    started = time.monotonic()
    result = run_load(PRACTICE, server.url, env=_settings(pki), out_dir=tmp_path, abort=[("LOAD-02", target)],
                      **{**RUN, "duration_s": 20})
    assert time.monotonic() - started < 12 and result.duration_s < 5  # not the 20 s asked
    assert result.aborted.startswith("run aborted after") and "LOAD-02 lost (error rate" in result.aborted
    ok, _, message = evaluate_target(result, target)
    assert not ok and message.endswith(result.aborted)
    assert json.loads((tmp_path / "stats.json").read_text())["aborted"] == result.aborted
