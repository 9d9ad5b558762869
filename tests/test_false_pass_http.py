"""False-pass routes of HTTP hardening, access control and robustness (issue 12), reproduced end to end: each
once ended `passed` (or a vendor's `failed`) on something vigie did not observe, and must not any more."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from checkcall import Outcome, conclude
from nginxserver import NGINX, Site, nginx, standard_pki
from test_security_checks import plain_server, requirement
from vigie.fixtures.practice import start_practice

from security import test_http_hardening
from vigie.campaign import Target
from vigie.http import RecordingClient

ROBUSTNESS = {"ROB-01", "ROB-02", "ROB-03", "ROB-04"}


def vigie_run(out: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    result = subprocess.run([sys.executable, "-m", "vigie", "run", "--out", str(out), "--format", "md",
                             "--run-anyway", *args],   # a wrong token, a broken site: the campaign must say it
                            capture_output=True, text=True, timeout=300, check=False)
    report = json.loads((out / "report.json").read_text())
    return result, {o["requirement"]: o for o in report["outcomes"]}


def table(outcomes: dict) -> str:
    return "\n".join(f"{r}: {o['status']}: {o['summary']}" for r, o in sorted(outcomes.items()))


@pytest.mark.parametrize("wrong", ["garbage", "expired"])
def test_a_refused_token_concludes_nothing(tmp_path, wrong):
    """Routes 1 and 2: with a wrong or expired --token every request that carries it is answered 401. The
    fuzzer once passed ROB-01..04 against --flaw sql-error-leak, HTTP-03 and HTTP-05 passed on 401 answers,
    and fhir-r4-rest failed 13 SHALLs for "answered 401": all must now be `error`, naming the token."""
    with start_practice(flaws=["sql-error-leak"]) as system:
        token = "vigie-wrong-token" if wrong == "garbage" else system.tokens["expired"]
        result, outcomes = vigie_run(tmp_path / "b", "--fhir", system.url, "--ca-file", str(system.ca_file),
                                     "--token", token, "--profile", "fhir-r4-rest", "--profile", "api-robustness",
                                     "--profile", "http-hardening")
    assert result.returncode == 2, result.stdout + result.stderr   # incomplete, never non-conformant
    refused = "the target refused vigie's token (401 on GET"
    for req in ROBUSTNESS | {"HTTP-03", "HTTP-05"}:
        assert outcomes[req]["status"] == "error", table(outcomes)
        assert refused in outcomes[req]["summary"] and "check it (--token, or token" in outcomes[req]["summary"]
    rest = {r: o for r, o in outcomes.items() if o["profile"] == "fhir-r4-rest"}
    assert not [r for r, o in rest.items() if o["status"] == "failed"], table(rest)
    assert len([r for r, o in rest.items() if o["status"] == "error" and refused in o["summary"]]) >= 13, table(rest)
    # what needs no token is still observed: the capability statement, the headers of the public answers
    assert outcomes["FHIR-REST-01"]["status"] == "passed" and outcomes["HTTP-09"]["status"] == "passed"


@pytest.mark.partial_observation("http.hsts")
def test_hsts_is_not_demanded_of_a_plain_http_answer():
    """Route 3: RFC 6797 §7.2 forbids HSTS over plain HTTP; serving plain HTTP is HTTP-09's finding."""
    server = plain_server(200, {"Content-Type": "application/fhir+json", "X-Content-Type-Options": "nosniff"})
    target = Target(id="plain-http", kind="fhir", url=f"http://127.0.0.1:{server.server_address[1]}/fhir",
                    token="t")
    http = RecordingClient(target)
    try:
        hsts = conclude(test_http_hardening.test_hsts, requirement(), http, target, Outcome())
        plain = conclude(test_http_hardening.test_plain_http_refused, requirement(), target, Outcome())
    finally:
        http.close()
        server.shutdown()
    assert hsts.status == "not_applicable" and "RFC 6797 §7.2" in hsts.summary, hsts.summary
    assert plain.status == "failed" and "served over plain http" in plain.summary
    assert http.exchanges == []   # nothing was asked of the target to reach that conclusion


@pytest.fixture(scope="module")
def rsa1024_nginx(tmp_path_factory):
    """A real nginx serving only an RSA-1024 certificate (OpenSSL at level 2: "EE certificate key too weak"),
    without HSTS and with its version banner, as testssl.sh reports such a server."""
    if NGINX is None:
        pytest.skip("nginx is not installed (Debian's nginx package; CI installs it)")
    root = tmp_path_factory.mktemp("rsa1024-nginx")
    (root / "pki").mkdir()
    pki = standard_pki(root / "pki")
    site = Site("rsa1024-only", ["rsa1024"], ["ssl_ciphers ECDHE+AESGCM:@SECLEVEL=0;", "server_tokens on;"])
    with nginx(root / "nginx", pki, [site]):
        yield site, pki


@pytest.mark.partial_observation("http.hsts", "http.banner", "http.plaintext")
def test_weak_certificate_keeps_its_reason_and_public_headers_are_still_observed(rsa1024_nginx, tmp_path):
    """Route 4: every hardening check once ended "certificate verification failed", OpenSSL's reason lost, so
    the missing HSTS and the version banner went unreported. Route 5: nginx's stock answer to plain HTTP on
    its TLS port, "400 The plain HTTP request was sent to HTTPS port", once failed HTTP-09."""
    site, pki = rsa1024_nginx
    out = tmp_path / "b"
    result, outcomes = vigie_run(out, "--fhir", f"https://127.0.0.1:{site.port}/fhir", "--ca-file",
                                 str(pki.ca_file), "--token", "vigie-secret-token", "--profile", "http-hardening")
    assert result.returncode == 1, result.stdout + result.stderr
    unverified = "observed over a connection whose certificate failed verification: EE certificate key too weak"
    for req, found in (("HTTP-01", "no Strict-Transport-Security header on the metadata response"),
                               ("HTTP-04", "Server: nginx/")):
        assert outcomes[req]["status"] == "failed", table(outcomes)
        assert found in outcomes[req]["summary"] and unverified in outcomes[req]["summary"]
    # what needs vigie's token is never sent over that connection
    for req in ("HTTP-03", "HTTP-05"):
        assert outcomes[req]["status"] == "error", table(outcomes)
        assert "certificate failed verification (EE certificate key too weak)" in outcomes[req]["summary"]
    assert outcomes["HTTP-09"]["status"] == "passed", table(outcomes)
    assert "400 Bad Request" in outcomes["HTTP-09"]["summary"]
    sent = [e for f in (out / "evidence" / "http").glob("*.json") for e in json.loads(f.read_text())]
    unverified_requests = [e["request"] for e in sent if e.get("certificate")]
    assert unverified_requests and all("Authorization" not in r["headers"] for r in unverified_requests)
    assert "vigie-secret-token" not in "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
