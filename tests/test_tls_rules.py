"""The TLS rules beyond versions, suites and certificate: encrypt-then-MAC (raw probe and evaluation), key
exchange, protocol features, OCSP stapling, Mozilla's configurations; the profiles' wiring of them; and
the default campaign leaving Mozilla modern out."""
from __future__ import annotations

import datetime as dt
import re
import socket
import ssl
import struct
from pathlib import Path

import pytest
from sslyze.mozilla_tls_profile import tls_config_checker
from test_tls_scan import _cert, _checks, _now_cert, _requirements, _run, _scan, tls_server
from vigie.fixtures.practice import tlsmaterial

from vigie.tls import (
    FEATURES,
    encrypt_then_mac_problems,
    encrypt_then_mac_unobserved,
    feature_problems,
    features_unobserved,
    hello,
    key_exchange_problems,
    mozilla,
    mozilla_problems,
    ocsp_stapling_applies,
    ocsp_stapling_problems,
    scan_tls,
    server_order_problems,
    server_order_unobserved,
    suite_problems,
)

CBC_SUITES = "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384"
NO_ETM = 0x80000   # SSL_OP_NO_ENCRYPT_THEN_MAC


# ---- the raw hello -----------------------------------------------------------------------------------------

def _server_hello(extensions: list[int], suite=0xC023, version=0x0303) -> bytes:
    exts = b"".join(struct.pack("!HH", e, 0) for e in extensions)
    body = struct.pack("!H", version) + bytes(32) + b"\x00" + struct.pack("!H", suite) + b"\x00" \
        + struct.pack("!H", len(exts)) + exts
    return b"\x02" + len(body).to_bytes(3, "big") + body


def test_server_hello_parsing():
    parsed = hello.parse_server_hello(_server_hello([0xFF01, 22, 23]))
    assert parsed == hello.ServerHello(0x0303, 0xC023, (0xFF01, 22, 23))
    assert hello.parse_server_hello(_server_hello([])).extensions == ()
    with pytest.raises(hello.HelloError, match="truncated"):
        hello.parse_server_hello(_server_hello([22])[:-3])
    with pytest.raises(hello.HelloError, match="expected a ServerHello"):
        hello.parse_server_hello(b"\x0b\x00\x00\x00")


def test_client_hello_layout():
    record = hello.client_hello(0x0303, [0xC023], "api.example.fr")
    assert record[0] == 22 and struct.unpack("!H", record[3:5])[0] == len(record) - 5
    assert record[5] == 1 and record[9:11] == b"\x03\x03"
    # the suites vector: the one offered and the renegotiation SCSV
    assert b"\x00\x04\xc0\x23\x00\xff" in record
    assert b"\x00\x16\x00\x00" in record            # encrypt_then_mac, empty
    assert b"api.example.fr" in record
    assert b"127.0.0.1" not in hello.client_hello(0x0303, [0xC023], "127.0.0.1")


def test_suite_codes_from_openssl():
    codes = hello.suite_codes()
    assert codes["ECDHE-ECDSA-AES128-SHA256"] == 0xC023 and codes["ECDHE-RSA-AES256-SHA"] == 0xC014


@pytest.fixture(scope="module")
def ecdsa(tmp_path_factory):
    material = tlsmaterial.generate(tmp_path_factory.mktemp("tls"))
    return str(material.cert_file), str(material.key_file)


@pytest.mark.parametrize("options, agreed", [(0, True), (NO_ETM, False)])
def test_encrypt_then_mac_probe(ecdsa, options, agreed):
    code = hello.suite_codes()["ECDHE-ECDSA-AES128-SHA256"]
    with tls_server(ecdsa, CBC_SUITES, options=options) as port:
        answer = hello.exchange("127.0.0.1", port, "TLSv1.2", [code], "127.0.0.1", timeout=5)
        refused = hello.exchange("127.0.0.1", port, "TLSv1.2", [hello.suite_codes()["AES128-SHA"]], timeout=5)
    assert answer.cipher_suite == code and answer.version == 0x0303
    assert (hello.EXT_ENCRYPT_THEN_MAC in answer.extensions) is agreed
    assert refused is None


def test_probe_of_a_silent_port_is_an_error():
    with socket.create_server(("127.0.0.1", 0)) as silent, \
            pytest.raises(hello.HelloError, match="no answer within 1 s"):
        hello.exchange("127.0.0.1", silent.getsockname()[1], "TLSv1.2", [0xC023], timeout=1)


# ---- evaluation --------------------------------------------------------------------------------------------

CBC12 = {"TLSv1.2": ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"],
         "TLSv1.3": ["TLS_AES_128_GCM_SHA256"]}


def test_encrypt_then_mac_evaluation():
    assert encrypt_then_mac_problems(_scan()) == [] and encrypt_then_mac_unobserved(_scan()) == []
    off = _scan(cipher_suites=CBC12, encrypt_then_mac={"TLSv1.2": False})
    (problem,) = encrypt_then_mac_problems(off)
    assert problem.summary == "TLSv1.2: CBC suites without encrypt-then-MAC"
    assert "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256" in problem.detail and "GCM" not in problem.detail
    assert encrypt_then_mac_problems(_scan(cipher_suites=CBC12, encrypt_then_mac={"TLSv1.2": True})) == []
    assert encrypt_then_mac_unobserved(_scan(cipher_suites=CBC12)) == ["encrypt_then_mac TLSv1.2: not probed"]
    refused = _scan(cipher_suites=CBC12, incomplete={"encrypt_then_mac TLSv1.2": "no answer within 5 s"})
    assert encrypt_then_mac_unobserved(refused) == ["encrypt_then_mac TLSv1.2: no answer within 5 s"]
    sslv3 = _scan(cipher_suites={"SSLv3": ["TLS_RSA_WITH_AES_128_CBC_SHA"]})
    assert [p.summary for p in encrypt_then_mac_problems(sslv3)] == [
        "SSLv3: CBC suites accepted, and SSLv3 has no encrypt-then-MAC"]


def test_obsolete_suites():
    params = {"forbidden": ["RC4", "3DES", "NULL", "anon", "MD5"]}
    old = _scan(cipher_suites={"TLSv1.2": ["TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_RSA_WITH_RC4_128_MD5",
                                           "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"]})
    (problem,) = suite_problems(old, params)
    assert problem.summary == "TLSv1.2: 2 suite(s) with an obsolete algorithm"
    assert "AES_128" not in problem.detail
    # a word, not a substring: DES is not 3DES, NULL is not in "ANULL"
    assert suite_problems(old, {"forbidden": ["DES"]}) == []


def _kx(**suites) -> dict:
    return {"TLSv1.2": suites}


def test_key_exchange_evaluation():
    params = {"allowed_curves": ["secp256r1", "X25519"], "min_dh_bits": 2048}
    good = _scan(curves=["X25519", "secp256r1"],
                 key_exchange=_kx(A={"type": "ECDH", "curve": "X25519", "bits": 253},
                                  B={"type": "DH", "bits": 2048}))
    assert key_exchange_problems(good, params) == []
    bad = _scan(curves=["secp256r1", "sect163k1"],
                key_exchange=_kx(A={"type": "ECDH", "curve": "x448", "bits": 448},
                                 TLS_DHE_RSA_WITH_AES_128_GCM_SHA256={"type": "DH", "bits": 1024}))
    curves, dh = key_exchange_problems(bad, params)
    assert curves.summary == "curve(s) accepted beyond the allowed list: sect163k1, x448"
    assert dh.summary == "DH group of 1024 bits" and "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256" in dh.detail


def test_feature_evaluation():
    every = {"features": list(FEATURES)}
    sound = _scan(compression=False, secure_renegotiation=True, client_renegotiation=False,
                  extended_master_secret=True, early_data=False, fallback_scsv=True, heartbleed=False,
                  ccs_injection=False, robot="NOT_VULNERABLE_NO_ORACLE")
    assert feature_problems(sound, every) == [] and features_unobserved(sound, every) == []
    broken = _scan(compression=True, secure_renegotiation=False, client_renegotiation=True,
                   extended_master_secret=False, early_data=True, fallback_scsv=False, heartbleed=True,
                   ccs_injection=True, robot="VULNERABLE_STRONG_ORACLE")
    assert len(feature_problems(broken, every)) == len(FEATURES)
    assert "VULNERABLE_STRONG_ORACLE" in feature_problems(broken, {"features": ["no-robot"]})[0].detail
    unknown = _scan(robot="UNKNOWN_INCONSISTENT_RESULTS")
    assert features_unobserved(unknown, {"features": ["no-robot", "no-compression"]}) == [
        "robot (no-robot): inconclusive (UNKNOWN_INCONSISTENT_RESULTS)", "tls_compression (no-compression): no result"]


def test_ocsp_stapling_evaluation():
    assert not ocsp_stapling_applies(_scan(certificate=_cert()))
    responder = _cert(ocsp_responders=["http://ocsp.example.fr"], ocsp_stapled=False)
    assert ocsp_stapling_applies(_scan(certificate=responder))
    (problem,) = ocsp_stapling_problems(_scan(certificate=responder))
    assert "http://ocsp.example.fr" in problem.detail
    assert ocsp_stapling_problems(_scan(certificate=responder | {"ocsp_stapled": True})) == []


def test_server_order_evaluation():
    two = {"TLSv1.2": ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"]}
    assert server_order_problems(_scan(cipher_suites=two, server_cipher_order=True)) == []
    (problem,) = server_order_problems(_scan(cipher_suites=two, server_cipher_order=False,
                                             server_order_protocol="TLSv1.2"))
    assert problem.summary == "TLSv1.2: the client's suite order wins"
    assert server_order_unobserved(_scan(cipher_suites=two)) == ["server_cipher_order: not probed"]
    assert server_order_unobserved(_scan()) == []   # one suite: nothing to reorder


@pytest.mark.parametrize("server_order", [True, False])
def test_server_order_probe(ecdsa, server_order):
    """Against a real server, through the whole scan."""
    with tls_server(ecdsa, "ECDHE+AESGCM", server_order=server_order) as port:
        scan = scan_tls("127.0.0.1", port)
    assert (scan.server_order_protocol, scan.server_cipher_order) == ("TLSv1.2", server_order)


def test_mozilla_evaluation():
    scan = _scan(mozilla={"intermediate": {"issues": {"tls_versions": "TLS versions {'TLSv1'} ...",
                                                      "dh_param_size": "DH parameter size is 1024 ..."}}})
    (problem,) = mozilla_problems(scan, {"configuration": "intermediate", "rules": ["tls_versions"]})
    assert problem.summary.startswith("tls_versions: \"TLS versions")
    assert mozilla_problems(scan, {"configuration": "intermediate", "rules": ["ciphers"]}) == []
    # path validation failed: the certificate's own analysis says why, in the reader's words
    rules = {"configuration": "intermediate", "rules": ["certificate_path_validation"]}
    failed = {"intermediate": {"issues": {"certificate_path_validation": "Certificate path validation failed"}}}
    expired = _cert(trusted=False, trust_error="expired", untrusted_because=["expired"])
    june = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    (problem,) = mozilla_problems(_scan(mozilla=failed, certificate=expired), rules, now=june)
    assert problem.summary == "certificate expired" and problem.detail.startswith("Mozilla intermediate")
    unknown = _cert(trusted=False, trust_error="unknown issuer", untrusted_because=["chain"])
    assert [p.summary for p in mozilla_problems(_scan(mozilla=failed, certificate=unknown), rules, now=june)] == [
        "certificate chain not trusted"]


# ---- the profiles' requirements through the checks ---------------------------------------------------------

def _sound(**kw):
    base = {"certificate": _now_cert(), "compression": False, "secure_renegotiation": True,
            "client_renegotiation": False, "extended_master_secret": True, "early_data": False,
            "fallback_scsv": True, "heartbleed": False, "ccs_injection": False,
            "robot": "NOT_VULNERABLE_RSA_NOT_SUPPORTED", "curves": ["X25519", "secp256r1"],
            "mozilla": {c: {"issues": {}} for c in mozilla.CONFIGURATIONS}}
    return _scan(**{**base, **kw})


TLS_REQUIREMENTS = [r for r in _requirements().values() if r.check.startswith("tls.")]


@pytest.mark.parametrize("requirement", TLS_REQUIREMENTS, ids=lambda r: r.id)
def test_every_tls_requirement_passes_on_a_sound_scan(requirement):
    status, summary = _run(requirement.id, _sound())
    expected = "not_applicable" if requirement.check == "tls.ocsp-stapling" else "passed"
    assert status == expected and summary, (requirement.id, summary)


READS = "undetermined: the TLS scan did not complete what this requirement reads: "


def test_new_anssi_requirements_fail_with_reviewer_messages():
    assert _run("ANSSI-TLS-06", _sound(cipher_suites=CBC12, encrypt_then_mac={"TLSv1.2": False})) == (
        "failed", "TLSv1.2: CBC suites without encrypt-then-MAC")
    assert _run("ANSSI-TLS-06", _sound(cipher_suites=CBC12))[0] == "error"
    assert _run("ANSSI-TLS-07", _sound(cipher_suites={"TLSv1.2": ["TLS_ECDHE_RSA_WITH_RC4_128_SHA"]})) == (
        "failed", "TLSv1.2: 1 suite(s) with an obsolete algorithm")
    assert _run("ANSSI-TLS-08", _sound(curves=["secp256r1", "secp224r1"])) == (
        "failed", "curve(s) accepted beyond the allowed list: secp224r1")
    assert _run("ANSSI-TLS-09", _sound(key_exchange=_kx(S={"type": "DH", "bits": 1024}))) == (
        "failed", "DH group of 1024 bits")
    assert _run("ANSSI-TLS-11", _sound(client_renegotiation=True)) == (
        "failed", "client-initiated renegotiation accepted (denial of service)")
    assert _run("ANSSI-TLS-13", _sound(early_data=True))[0] == "failed"
    assert _run("ANSSI-TLS-14", _sound(fallback_scsv=None, incomplete={"tls_fallback_scsv": "reset"})) == (
        "error", READS + "tls_fallback_scsv (fallback-scsv): reset")
    assert _run("ANSSI-TLS-15", _sound(heartbleed=True)) == (
        "failed", "vulnerable to Heartbleed (CVE-2014-0160)")
    stapling = _now_cert() | {"ocsp_responders": ["http://ocsp.example.fr"], "ocsp_stapled": False}
    assert _run("ANSSI-TLS-17", _sound(certificate=stapling))[0] == "failed"
    incomplete = _sound(mozilla={"intermediate": {"error": "The robot result is missing."}})
    assert _run("MOZ-TLS-INT-03", incomplete) == (
        "error", READS + "Mozilla intermediate checker: The robot result is missing.")


def test_every_mozilla_issue_belongs_to_exactly_one_requirement():
    """A key that no requirement names would be a finding nobody reports; one named twice, a double count.
    ISSUE_KEYS must also follow sslyze: its checker's source is the list of keys it can raise."""
    source = Path(tls_config_checker.__file__).read_text()
    raised = set(re.findall(r'issues_with_\w+\["(\w+)"\]', source))
    raised.discard("hsts_min_age")   # its check is disabled in sslyze 6; HSTS is http.hsts here
    assert raised == set(mozilla.ISSUE_KEYS)
    for configuration, prefix in (("intermediate", "MOZ-TLS-INT-"), ("modern", "MOZ-TLS-MOD-")):
        named = [k for r in _requirements().values() if r.id.startswith(prefix) and r.check == "tls.mozilla"
                 for k in r.params["rules"]]
        assert sorted(named) == sorted(mozilla.ISSUE_KEYS), configuration
        assert {r.params["configuration"] for r in _requirements().values()
                if r.id.startswith(prefix) and r.check == "tls.mozilla"} == {configuration}


def test_default_campaign_leaves_mozilla_modern_out():
    from vigie.cli import _campaign_profiles
    default = {p.id for p in _campaign_profiles((), ["fhir"])}
    assert {"anssi-tls", "mozilla-tls-intermediate"} <= default and "mozilla-tls-modern" not in default
    assert [p.id for p in _campaign_profiles(("mozilla-tls-modern",), ["fhir"])] == ["mozilla-tls-modern"]


def test_default_campaign_flag_is_validated(tmp_path):
    from vigie.catalogue import load_profile
    from vigie.errors import VigieError
    from vigie.suite import PROFILE_DIR
    source = (PROFILE_DIR / "mozilla-tls-modern.yaml").read_text()
    assert load_profile(PROFILE_DIR / "mozilla-tls-modern.yaml").default_campaign is False
    broken = tmp_path / "modern.yaml"
    broken.write_text(source.replace("default_campaign: false", "default_campaign: maybe"))
    with pytest.raises(VigieError, match="default_campaign must be true or false, or a list"):
        load_profile(broken)


def test_tls_checks_exist_for_every_check_id():
    used = {r.check for r in TLS_REQUIREMENTS}
    assert used <= set(_checks()), used - set(_checks())
    assert ssl.OPENSSL_VERSION_INFO >= (1, 1, 1)   # encrypt-then-MAC and TLS 1.3 in the local OpenSSL


# ---- partial observations: each check, a part of the scan it reads missing ---------------------------------

TWO12 = {"TLSv1.2": ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"],
         "TLSv1.3": ["TLS_AES_128_GCM_SHA256"]}
PARTIAL = [
    # requirement, what the scan lacks, the part the summary must name
    ("ANSSI-TLS-02", {"accepted_protocols": ["TLSv1.2"], "incomplete": {"tls_1_3_cipher_suites": "timeout"}},
     "tls_1_3_cipher_suites: timeout"),
    ("ANSSI-TLS-03", {"incomplete": {"ssl_2_0_cipher_suites": "reset"}}, "ssl_2_0_cipher_suites: reset"),
    ("ANSSI-TLS-06", {"cipher_suites": CBC12, "incomplete": {"encrypt_then_mac TLSv1.2": "no answer within 5 s"}},
     "encrypt_then_mac TLSv1.2: no answer within 5 s"),
    ("ANSSI-TLS-06", {"incomplete": {"tls_1_0_cipher_suites": "reset"}}, "tls_1_0_cipher_suites: reset"),
    ("ANSSI-TLS-08", {"curves": [], "incomplete": {"elliptic_curves": "timeout"}}, "elliptic_curves: timeout"),
    ("ANSSI-TLS-09", {"incomplete": {"tls_1_3_cipher_suites": "timeout"}}, "tls_1_3_cipher_suites: timeout"),
    ("ANSSI-TLS-11", {"secure_renegotiation": None, "client_renegotiation": None,
                      "incomplete": {"session_renegotiation": "reset"}}, "session_renegotiation"),
    ("ANSSI-TLS-15", {"robot": "UNKNOWN_INCONSISTENT_RESULTS"}, "robot (no-robot): inconclusive"),
    ("ANSSI-TLS-18", {"cipher_suites": TWO12, "incomplete": {"server_cipher_order": "TLSv1.2: no answer"}},
     "server_cipher_order: TLSv1.2: no answer"),
    ("ANSSI-TLS-18", {"incomplete": {"tls_1_1_cipher_suites": "reset"}}, "tls_1_1_cipher_suites: reset"),
    ("ANSSI-TLS-05", {"certificate": {}, "incomplete": {"certificate_info": "timeout"}}, "certificate_info: timeout"),
    ("ANSSI-TLS-17", {"certificate": {}, "incomplete": {"certificate_info": "timeout"}}, "certificate_info: timeout"),
    # sslyze's checker counts only a strong ROBOT oracle: an inconclusive result is no pass
    ("MOZ-TLS-INT-06", {"robot": "UNKNOWN_INCONSISTENT_RESULTS"}, "robot (no-robot): inconclusive"),
    ("MOZ-TLS-INT-04", {"certificate": {}, "incomplete": {"certificate_info": "timeout"}}, "certificate_info"),
    ("MOZ-TLS-MOD-03", {"incomplete": {"elliptic_curves": "timeout"}}, "elliptic_curves: timeout"),
]


@pytest.mark.partial_observation("tls.protocols", "tls.cipher-suites", "tls.encrypt-then-mac", "tls.key-exchange",
                                 "tls.features", "tls.server-cipher-order", "tls.certificate", "tls.ocsp-stapling",
                                 "tls.mozilla")
@pytest.mark.parametrize("requirement_id, lacks, part", PARTIAL, ids=[f"{r}-{p}" for r, _, p in PARTIAL])
def test_a_missing_part_leaves_the_rule_undetermined(requirement_id, lacks, part):
    scan = _sound(**lacks)
    if requirement_id.startswith("MOZ-TLS-MOD"):
        scan = _sound(**lacks, accepted_protocols=["TLSv1.3"], cipher_suites={"TLSv1.3": ["TLS_AES_128_GCM_SHA256"]})
    status, summary = _run(requirement_id, scan)
    assert status == "error" and part in summary, (status, summary)
    assert summary.startswith(READS)


def test_covered_check_ids_are_the_suite_s():
    """The table above feeds every TLS check of the suite."""
    covered = {_requirements()[r].check for r, _, _ in PARTIAL}
    assert covered == {r.check for r in TLS_REQUIREMENTS}


def test_every_mozilla_issue_names_the_parts_it_reads():
    from vigie.tls.evaluate import MOZILLA_FEATURES, MOZILLA_READS
    assert not set(MOZILLA_READS) & set(MOZILLA_FEATURES)
    assert set(MOZILLA_READS) | set(MOZILLA_FEATURES) == set(mozilla.ISSUE_KEYS)
    assert set(MOZILLA_FEATURES.values()) <= set(FEATURES)


def test_a_protocol_seen_accepted_is_known_whatever_its_list_lacks():
    """Silent suites of TLS 1.3 leave its suite list open, not whether TLS 1.3 is accepted: the protocol
    rules pass, the suite rules do not."""
    scan = _sound(incomplete={"tls_1_3_cipher_suites": "1 suite(s) got no answer within the timeout"})
    for requirement_id in ("ANSSI-TLS-01", "ANSSI-TLS-02", "MOZ-TLS-INT-01"):
        assert _run(requirement_id, scan)[0] == "passed", requirement_id
    for requirement_id in ("ANSSI-TLS-03", "MOZ-TLS-INT-02"):
        assert _run(requirement_id, scan)[0] == "error", requirement_id
