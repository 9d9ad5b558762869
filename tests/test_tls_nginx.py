"""The TLS profiles against a real nginx in several configurations, end to end through `vigie run`: each
configuration fails exactly the requirements it should; and vigie's protocols, suites and HSTS agree with
testssl.sh's on the same servers.

One nginx master serves every configuration (one server block and port each), one `vigie run` scans them all
as targets of one campaign, and testssl.sh runs on three of them at the same time.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from nginxserver import HSTS_TWO_YEARS, LOCAL, NGINX, Site, nginx, standard_pki

TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")
PROFILES = ("anssi-tls", "mozilla-tls-intermediate", "mozilla-tls-modern")
GOOD = ["ssl_protocols TLSv1.2 TLSv1.3;", "ssl_ciphers ECDHE+AESGCM:ECDHE+CHACHA20;",
        "ssl_prefer_server_ciphers on;", "ssl_ecdh_curve X25519:prime256v1:secp384r1;", HSTS_TWO_YEARS]
# Every configuration accepts TLS 1.2 but one, so Mozilla modern's protocol and suite rules fail on them.
MODERN = {"MOZ-TLS-MOD-01", "MOZ-TLS-MOD-02"}


def _like_good(*directives: str) -> list[str]:
    """GOOD with the directives of the same name replaced (or added)."""
    names = {d.split()[0] for d in directives}
    return [d for d in GOOD if d.split()[0] not in names] + list(directives)


# name -> (certificates, directives, the requirements it must fail, and no other)
CONFIGURATIONS = {
    "good": (["ecdsa"], GOOD, MODERN),
    "tls13-only": (["ecdsa"], _like_good("ssl_protocols TLSv1.3;"), set()),
    "tls10": (["ecdsa"], _like_good("ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;",
                                    "ssl_ciphers ECDHE+AESGCM:ECDHE+CHACHA20:ECDHE+AES+SHA1:@SECLEVEL=0;"),
              {"ANSSI-TLS-01", "ANSSI-TLS-04", "MOZ-TLS-INT-01", "MOZ-TLS-INT-02"} | MODERN),
    # CBC suites with encrypt-then-MAC: only the AEAD preference (a SHOULD) and Mozilla's suite list fail
    "cbc-etm": (["ecdsa"], _like_good("ssl_ciphers ECDHE+AESGCM:ECDHE+CHACHA20:"
                                      "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384;"),
                {"ANSSI-TLS-04", "MOZ-TLS-INT-02"} | MODERN),
    "cbc-no-etm": (["ecdsa"], _like_good("ssl_ciphers ECDHE+AESGCM:ECDHE+CHACHA20:"
                                         "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384;",
                                         "ssl_conf_command Options -EncryptThenMac;"),
                   {"ANSSI-TLS-04", "ANSSI-TLS-06", "MOZ-TLS-INT-02"} | MODERN),
    "rsa-key-exchange": (["rsa2048"], _like_good("ssl_ciphers ECDHE+AESGCM:AES128-GCM-SHA256:AES256-SHA;"),
                         {"ANSSI-TLS-03", "ANSSI-TLS-04", "MOZ-TLS-INT-02", "MOZ-TLS-MOD-04"} | MODERN),
    "rsa1024": (["ecdsa", "rsa1024"], _like_good("ssl_ciphers ECDHE+AESGCM:ECDHE+CHACHA20:@SECLEVEL=0;"),
                {"ANSSI-TLS-05", "MOZ-TLS-INT-04"} | MODERN),
    "weak-dh": (["ecdsa", "rsa2048"], _like_good("ssl_ciphers ECDHE+AESGCM:ECDHE+CHACHA20:"
                                                 "DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0;",
                                                 "ssl_dhparam {pki}/dh1024.pem;"),
                {"ANSSI-TLS-09", "MOZ-TLS-INT-03"} | MODERN),
    # no TLS 1.3: the ANSSI guide's recommendation (a SHOULD) fails, Mozilla intermediate still holds
    "tls12-only": (["ecdsa"], _like_good("ssl_protocols TLSv1.2;"), {"ANSSI-TLS-02"} | MODERN),
    # an anonymous ECDH suite (no server authentication, CBC): this OpenSSL build has no RC4, DES or NULL left;
    # with no authenticated ephemeral key, vigie counts it as without forward secrecy too
    "anonymous-suite": (["ecdsa"], _like_good("ssl_ciphers ECDHE+AESGCM:ECDHE+CHACHA20:AECDH-AES128-SHA:"
                                              "@SECLEVEL=0;"),
                        {"ANSSI-TLS-03", "ANSSI-TLS-04", "ANSSI-TLS-07", "MOZ-TLS-INT-02"} | MODERN),
    "early-data": (["ecdsa"], _like_good("ssl_early_data on;"), {"ANSSI-TLS-13"} | MODERN),
    # secp521r1 and X448 are in ANSSI's list, not in Mozilla's
    "extra-curves": (["ecdsa"], _like_good("ssl_ecdh_curve X25519:prime256v1:secp384r1:secp521r1:X448;"),
                     {"MOZ-TLS-INT-03", "MOZ-TLS-MOD-03"} | MODERN),
    # nginx's default: the client's order of preference wins
    "client-order": (["ecdsa"], _like_good("ssl_prefer_server_ciphers off;"), {"ANSSI-TLS-18"} | MODERN),
    "no-hsts": (["ecdsa"], [d for d in GOOD if not d.startswith("add_header")],
                {"ANSSI-TLS-16", "MOZ-TLS-INT-07", "MOZ-TLS-MOD-07"} | MODERN),
    # the certificate names an OCSP responder, and nginx staples nothing
    "no-ocsp-staple": (["ecdsa-ocsp"], GOOD, {"ANSSI-TLS-17", "MOZ-TLS-INT-08", "MOZ-TLS-MOD-08"} | MODERN),
    # certificates an expert rejects at once: expired since yesterday, issued for another host
    "expired": (["ecdsa-expired"], GOOD, {"ANSSI-TLS-05", "MOZ-TLS-INT-05", "MOZ-TLS-MOD-05"} | MODERN),
    "other-host": (["ecdsa-other-host"], GOOD, {"ANSSI-TLS-05", "MOZ-TLS-INT-05", "MOZ-TLS-MOD-05"} | MODERN),
}
# http.hsts reads public metadata, personal data (a Bundle with a resource) and an error: each site answers
# them as a FHIR server would
_BUNDLE = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {"resourceType": "Patient",
                                                                                 "id": "p1"}}]}
_NOT_FOUND = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]}
FHIR_ANSWERS = [f"location = /Patient {{ default_type application/fhir+json; return 200 '{json.dumps(_BUNDLE)}'; }}",
                f"location /Patient/ {{ default_type application/fhir+json; return 404 '{json.dumps(_NOT_FOUND)}'; }}"]
# HSTS on personal data and errors is read with vigie's token, which it never sends over a connection whose
# certificate failed verification (a browser ignores the header there too, RFC 6797 8.1): not observed
HSTS = {"ANSSI-TLS-16", "MOZ-TLS-INT-07", "MOZ-TLS-MOD-07"}
NOT_OBSERVED = {"expired": HSTS, "other-host": HSTS}
COMPARED = ("tls10", "no-hsts", "weak-dh")   # against testssl.sh: protocols, suites (ECDHE, DHE, CBC), HSTS
TESTSSL_TIMEOUT_S = 150   # measured: about 25 s each on an idle 2-core machine, 3 at once


def _need(tool: str | None, package: str):
    if tool:
        return
    message = f"{package} is not installed (.ci/run installs it with apt-get)"
    if os.environ.get("CI"):
        pytest.fail(message)   # in CI a missing tool is a broken set-up, not a reason to test less
    pytest.skip(message)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    _need(NGINX, "nginx")
    root = tmp_path_factory.mktemp("nginx")
    pki = standard_pki(root)
    sites = [Site(name, certs, [d.format(pki=root) for d in directives] + FHIR_ANSWERS)
             for name, (certs, directives, _) in CONFIGURATIONS.items()]
    with nginx(root / "prefix", pki, sites) as running:
        yield root, pki, {s.name: s for s in running}


def _testssl(site: Site, out) -> subprocess.Popen:
    command = [TESTSSL, "--jsonfile", str(out), "--warnings", "off", "--quiet", "--color", "0",
               "--connect-timeout", "5", "--openssl-timeout", "5", "-p", "-E", "-h",
               f"https://{LOCAL}:{site.port}/"]
    if shutil.which("openssl"):
        command[1:1] = ["--openssl", shutil.which("openssl")]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def observed(served):
    """The report of one `vigie run` over every configuration, and testssl.sh's JSON for COMPARED (run at the
    same time; None for each when testssl.sh is absent)."""
    root, pki, sites = served
    runs = {}
    if TESTSSL:
        runs = {name: (_testssl(sites[name], root / f"testssl-{name}.json"), root / f"testssl-{name}.json")
                for name in COMPARED}
    config = root / "vigie.toml"
    config.write_text("".join(f'[[targets]]\nid = "{s.name}"\nkind = "fhir"\n'
                              f'url = "https://{LOCAL}:{s.port}/"\nca_file = "{pki.ca_file}"\n\n'
                              for s in sites.values()))
    out = root / "bundle"
    try:
        result = subprocess.run([sys.executable, "-m", "vigie", "run", "--config", str(config),
                                 *[a for p in PROFILES for a in ("--profile", p)], "--out", str(out),
                                 "--run-anyway"],   # some sites' certificates are wrong on purpose
                                check=False, capture_output=True, text=True, timeout=480)
        testssl = {}
        deadline = time.monotonic() + TESTSSL_TIMEOUT_S
        for name, (proc, path) in runs.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                # only the comparison with testssl.sh fails then, with this reason
                testssl[name] = f"testssl.sh did not finish within {TESTSSL_TIMEOUT_S} s"
                continue
            testssl[name] = json.loads(path.read_text()) if path.exists() else proc.stderr.read()
    finally:
        for proc, _ in runs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()
    assert (out / "report.json").exists(), result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((out / "report.json").read_text()), out, testssl


@pytest.mark.parametrize("name", list(CONFIGURATIONS))
def test_configuration_fails_exactly_its_requirements(observed, name):
    report, _, _ = observed
    outcomes = [o for o in report["outcomes"] if o["target"] == name]
    assert {o["profile"] for o in outcomes} == set(PROFILES)
    odd = {o["requirement"]: (o["status"], o["summary"]) for o in outcomes
           if o["status"] not in ("passed", "failed", "not_applicable")}
    assert set(odd) == NOT_OBSERVED.get(name, set()), odd
    assert all(status == "error" and "the certificate failed verification" in summary
               for status, summary in odd.values()), odd
    failed = {o["requirement"]: o["summary"] for o in outcomes if o["status"] == "failed"}
    assert set(failed) == CONFIGURATIONS[name][2], failed


def test_certificate_findings_name_the_problem(observed):
    """Each says what is wrong, once: the chain itself is trusted (our CA), so an expired certificate or one
    for another host is not reported as an untrusted chain, by ANSSI's rule nor by Mozilla's."""
    report, _, _ = observed
    for requirement in ("ANSSI-TLS-05", "MOZ-TLS-INT-05", "MOZ-TLS-MOD-05"):
        summary = {o["target"]: o["summary"] for o in report["outcomes"] if o["requirement"] == requirement}
        assert summary["expired"] == "certificate expired", (requirement, summary["expired"])
        assert summary["other-host"] == f"certificate not valid for {LOCAL}", (requirement, summary["other-host"])


def test_ocsp_stapling_not_applicable_without_a_responder(observed):
    report, _, _ = observed
    stapling = {o["status"] for o in report["outcomes"]
                if o["target"] == "good" and o["check"] == "tls.ocsp-stapling"}
    assert stapling == {"not_applicable"}


def test_run_verdicts(observed):
    report, _, _ = observed
    verdicts = {p["id"]: p["verdict"] for p in report["profiles"]}
    assert verdicts["mozilla-tls-modern"] == "non-conformant" and report["verdict"] == "non-conformant"


# ---- testssl.sh: an independent scanner on the same servers ----------------------------------------------

_TESTSSL_PROTOCOLS = {"SSLv2": "SSLv2", "SSLv3": "SSLv3", "TLS1": "TLSv1.0", "TLS1_1": "TLSv1.1",
                      "TLS1_2": "TLSv1.2", "TLS1_3": "TLSv1.3"}
_TESTSSL_SUITE = re.compile(r"^cipher-(ssl[23]|tls1(?:_[123])?)_x[0-9a-f]+$")
_SUITE_PROTOCOLS = {"ssl2": "SSLv2", "ssl3": "SSLv3", "tls1": "TLSv1.0", "tls1_1": "TLSv1.1",
                    "tls1_2": "TLSv1.2", "tls1_3": "TLSv1.3"}


def read_testssl(entries: list[dict]) -> dict:
    """Protocols offered, IANA suites per protocol, and the HSTS max-age (None: no header) from testssl.sh's
    flat JSON (--jsonfile)."""
    by_id = {e["id"]: e["finding"] for e in entries}
    protocols = sorted(ours for theirs, ours in _TESTSSL_PROTOCOLS.items()
                       if by_id.get(theirs, "").startswith("offered"))
    suites: dict[str, set] = {}
    for entry in entries:
        if match := _TESTSSL_SUITE.match(entry["id"]):
            # the finding is a table row whose last column is the IANA name
            suites.setdefault(_SUITE_PROTOCOLS[match.group(1)], set()).add(entry["finding"].split()[-1])
    max_age = None
    if "HSTS_time" in by_id:
        max_age = int(re.search(r"=(\d+) seconds", by_id["HSTS_time"]).group(1))
    return {"protocols": protocols, "suites": suites, "hsts_max_age": max_age}


@pytest.mark.parametrize("name", COMPARED)
def test_testssl_agrees(observed, name):
    _need(TESTSSL, "testssl.sh")
    report, bundle, testssl = observed
    entries = testssl[name]
    assert isinstance(entries, list), f"testssl.sh gave no JSON: {entries}"
    problems = [e for e in entries if e["id"] in ("scanProblem", "scanTime") and e["severity"] == "FATAL"]
    assert not problems, problems
    theirs = read_testssl(entries)
    ours = json.loads((bundle / "evidence" / "tls" / f"{name}.json").read_text())
    assert sorted(ours["accepted_protocols"]) == theirs["protocols"]
    assert {p: set(s) for p, s in ours["cipher_suites"].items()} == theirs["suites"]
    hsts = {o["requirement"]: o["status"] for o in report["outcomes"]
            if o["target"] == name and o["check"] == "http.hsts"}
    one_year = theirs["hsts_max_age"] is not None and theirs["hsts_max_age"] >= 31536000
    assert hsts["ANSSI-TLS-16"] == ("passed" if one_year else "failed")
    assert (theirs["hsts_max_age"] is None) == (name == "no-hsts")


def test_testssl_parser_on_a_sample():
    sample = [{"id": "TLS1", "finding": "offered (deprecated)"}, {"id": "TLS1_3", "finding": "not offered"},
              {"id": "cipher-tls1_xc013",
               "finding": "TLSv1  xc013  ECDHE-RSA-AES128-SHA  ECDH 253  AES  128  "
                          "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"},
              {"id": "HSTS_time", "finding": "730 days (=63072000 seconds) > 15552000 seconds"}]
    assert read_testssl(sample) == {"protocols": ["TLSv1.0"],
                                        "suites": {"TLSv1.0": {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"}},
                                        "hsts_max_age": 63072000}
    assert read_testssl([{"id": "HSTS", "finding": "not offered"}])["hsts_max_age"] is None
