"""scan_tls against real TLS servers on 127.0.0.1, and the evaluation functions on hand-made scans."""
from __future__ import annotations

import datetime as dt
import importlib.util
import ipaddress
import socket
import ssl
import threading
import time
import warnings
from contextlib import contextmanager

import pytest
from checkcall import Outcome, conclude
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vigie.catalogue import load_profile
from vigie.errors import ObservationError
from vigie.suite import PROFILE_DIR, ROOT
from vigie.tls import (
    TlsScan,
    certificate_problems,
    hostname_matches,
    is_aead,
    is_forward_secret,
    protocol_problems,
    protocols_unobserved,
    scan_tls,
    suite_problems,
)

LOCAL = "127.0.0.1"
# Suites of a good server: ECDHE with AEAD only, for TLS 1.2 (TLS 1.3 suites are always AEAD and ephemeral).
GOOD_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
# A weak server: legacy versions and ECDHE CBC suites, which OpenSSL 3 only allows at security level 0.
WEAK_CIPHERS = "ECDHE+AESGCM:ECDHE+AES:@SECLEVEL=0"


# ---- certificates (cryptography, not trustme: sslyze's strict path validation refuses trustme's) ----

def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """An ECDSA P-256 CA, an ECDSA leaf and an RSA 1024 leaf for 127.0.0.1, as files."""
    d = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("vigie test CA")).issuer_name(_name("vigie test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       key_cert_sign=True, crl_sign=True, encipher_only=False,
                                       decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(name, key):
        cert = (x509.CertificateBuilder().subject_name(_name(LOCAL)).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=7))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOCAL))]),
                               critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        (d / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (d / f"{name}.key").write_bytes(_pem_key(key))
        return str(d / f"{name}.pem"), str(d / f"{name}.key")

    return {"ca": str(d / "ca.pem"),
            "ec": leaf("ec", ec.generate_private_key(ec.SECP256R1())),
            "rsa1024": leaf("rsa1024", rsa.generate_private_key(public_exponent=65537, key_size=1024))}


# ---- a TLS server in a thread ---------------------------------------------------------------------------

def offered_suites(raw: socket.socket, timeout: float = 2) -> list[int]:
    """The cipher suites of the ClientHello waiting on `raw`, read without consuming it ([] if none)."""
    raw.settimeout(timeout)
    data = b""
    try:
        while len(data) < 5 or len(data) < 5 + int.from_bytes(data[3:5], "big"):
            more = raw.recv(1 << 16, socket.MSG_PEEK)
            if len(more) == len(data):
                return []
            data = more
    except OSError:
        return []
    at = 5 + 4 + 2 + 32
    if data[0] != 22 or at + 1 > len(data):   # not a TLS handshake record (an SSLv2 hello...)
        return []
    at += 1 + data[at]   # session id
    size = int.from_bytes(data[at:at + 2], "big")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(at + 2, min(at + 2 + size, len(data) - 1), 2)]


@contextmanager
def tls_server(cert, ciphers=GOOD_CIPHERS, minimum=ssl.TLSVersion.TLSv1_2, options=0, server_order=True,
               silent=None, also=()):
    """Serves TLS on 127.0.0.1 until the block ends: each connection is handshaken, then every read is
    answered, so that sslyze's renegotiation, heartbeat and early-data probes get answers. A ClientHello
    whose suites (signalling values left out) `silent(suites)` is true for gets no answer, as on a network
    glitch. `also`: more (certificate, key) pairs of other key types."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = minimum
    ctx.options |= options
    if not server_order:   # Python's server contexts impose their order by default
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.set_ciphers(ciphers)
    # Explicit groups: Python's defaults include X448 and secp521r1.
    if hasattr(ctx, "set_groups"):
        ctx.set_groups("X25519:P-256:P-384")
    for pair in (cert, *also):
        ctx.load_cert_chain(*pair)
    listener = socket.create_server((LOCAL, 0))
    listener.settimeout(0.1)
    stop = threading.Event()
    workers: list[threading.Thread] = []

    def handle(raw):
        if silent and silent(set(offered_suites(raw)) - {0x00FF, 0x5600}):
            stop.wait(5)
            raw.close()
            return
        raw.settimeout(2)
        try:
            with ctx.wrap_socket(raw, server_side=True) as conn:
                # sslyze's early-data probe expects an HTTP answer to its request.
                while not stop.is_set() and conn.recv(4096):
                    conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        except (OSError, ssl.SSLError, ValueError):
            pass   # sslyze sends malformed and refused handshakes on purpose
        finally:
            raw.close()

    def serve():
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            t = threading.Thread(target=handle, args=(raw,), daemon=True)
            t.start()
            workers.append(t)

    acceptor = threading.Thread(target=serve, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        acceptor.join(5)
        listener.close()
        for t in workers:
            t.join(5)
        alive = [t for t in (acceptor, *workers) if t.is_alive()]
        assert not alive, "server threads left running"


@pytest.fixture(scope="module")
def good_scan(pki):
    before = set(threading.enumerate())
    with tls_server(pki["ec"]) as port:
        started = time.monotonic()
        scan = scan_tls(LOCAL, port, ca_file=pki["ca"])
        scan.wall_s = time.monotonic() - started
    assert set(threading.enumerate()) <= before, "sslyze threads left running"
    return scan


# ---- scans ----------------------------------------------------------------------------------------------

def test_good_server(good_scan):
    scan = good_scan
    assert scan.accepted_protocols == ["TLSv1.2", "TLSv1.3"]
    assert not scan.untested_protocols and not scan.incomplete, scan.incomplete
    suites = [s for p in scan.accepted_protocols for s in scan.cipher_suites[p]]
    assert all(is_forward_secret(s) and is_aead(s) for s in suites)
    assert "TLS_AES_128_GCM_SHA256" in scan.cipher_suites["TLSv1.3"]
    assert protocol_problems(scan, {"allowed": ["TLSv1.2", "TLSv1.3"], "required": ["TLSv1.3"]}) == []
    assert suite_problems(scan, {"forward_secrecy": True, "aead_only": True}) == []
    assert scan.heartbleed is False and scan.ccs_injection is False and scan.compression is False
    assert scan.secure_renegotiation is not None and scan.robot is not None
    print(f"\nfull scan of a local server: {scan.wall_s:.2f} s")
    assert scan.wall_s < 15


def test_good_certificate(good_scan):
    cert = good_scan.certificate
    assert (cert["key_type"], cert["key_bits"], cert["signature_hash"]) == ("EC", 256, "sha256")
    assert cert["san"] == [LOCAL] and cert["hostname_match"] is True and good_scan.other_certificates == []
    assert cert["trusted"] is True, cert["trust_error"]
    params = {"min_rsa_bits": 2048, "min_ec_bits": 256, "signature_hashes": ["sha256", "sha384", "sha512"],
              "hostname": True, "valid_now": True, "trusted": True}
    assert certificate_problems(good_scan, params) == []


def test_json_is_plain(good_scan):
    import json
    data = json.loads(json.dumps(good_scan.to_json()))
    assert data["accepted_protocols"] == ["TLSv1.2", "TLSv1.3"] and data["scanner"].startswith("sslyze ")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1 is deprecated:DeprecationWarning")
def test_weak_server_accepts_tls10(pki):
    with tls_server(pki["ec"], WEAK_CIPHERS, ssl.TLSVersion.TLSv1) as port:
        scan = scan_tls(LOCAL, port)
    assert "TLSv1.0" in scan.accepted_protocols
    assert "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA" in scan.cipher_suites["TLSv1.0"]
    problems = protocol_problems(scan, {"allowed": ["TLSv1.2", "TLSv1.3"]})
    assert "TLSv1.0 accepted" in [p.summary for p in problems]
    assert "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA" in problems[0].detail
    assert any(p.summary.startswith("TLSv1.0: ") and "not AEAD" in p.summary
               for p in suite_problems(scan, {"aead_only": True}))
    # No CA file: the private CA is in no public store.
    assert scan.certificate["trust_store"] == "public" and scan.certificate["trusted"] is False
    assert scan.certificate["untrusted_because"] == ["chain"]      # valid now, for this name: the issuer is unknown


def test_small_rsa_key(pki):
    with tls_server(pki["rsa1024"], "ECDHE+AESGCM:@SECLEVEL=0") as port:
        scan = scan_tls(LOCAL, port, ca_file=pki["ca"])
    cert = scan.certificate
    assert (cert["key_type"], cert["key_bits"], cert["signature_hash"]) == ("RSA", 1024, "sha256")
    problems = certificate_problems(scan, {"min_rsa_bits": 2048, "min_ec_bits": 256})
    assert [p.summary for p in problems] == ["RSA key of 1024 bits"]
    # The chain is sound: only vigie's own key-size rule catches the small key.
    assert cert["trusted"] is True, cert["trust_error"]


def test_closed_port_fails_fast():
    with socket.create_server((LOCAL, 0)) as s:
        port = s.getsockname()[1]   # bound, then closed: nothing listens there
    started = time.monotonic()
    with pytest.raises(ObservationError, match=rf"TLS scan of {LOCAL}:{port} failed: "):
        scan_tls(LOCAL, port, timeout=2)
    assert time.monotonic() - started < 5


def test_silent_port_fails_within_timeout():
    """A port that accepts connections but never answers: sslyze alone would wait ~11 timeouts."""
    with socket.create_server((LOCAL, 0), backlog=64) as silent:
        started = time.monotonic()
        with pytest.raises(ObservationError, match="no TLS handshake within 1 s"):
            scan_tls(LOCAL, silent.getsockname()[1], timeout=1)
    assert time.monotonic() - started < 3


def test_plain_tcp_server_is_not_tls():
    """A port that accepts TCP but never speaks TLS: every handshake fails, so the scan fails."""
    listener = socket.create_server((LOCAL, 0))
    stop = threading.Event()

    def serve():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with pytest.raises(ObservationError, match="failed"):
            scan_tls(LOCAL, listener.getsockname()[1], timeout=2)
    finally:
        stop.set()
        t.join(5)
        listener.close()


# ---- evaluation functions, no network ---------------------------------------------------------------------

def _scan(**kw) -> TlsScan:
    base = {"host": "h", "port": 443, "server_name": "h", "accepted_protocols": ["TLSv1.2", "TLSv1.3"],
            "cipher_suites": {"TLSv1.2": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
                              "TLSv1.3": ["TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]}}
    base.update(kw)
    return TlsScan(**base)


def test_protocol_problems():
    modern = {"allowed": ["TLSv1.2", "TLSv1.3"]}
    assert protocol_problems(_scan(), modern) == []
    old = _scan(accepted_protocols=["TLSv1.0", "TLSv1.2"],
                cipher_suites={"TLSv1.0": ["TLS_RSA_WITH_AES_128_CBC_SHA"], "TLSv1.2": []})
    problems = protocol_problems(old, {**modern, "required": ["TLSv1.3"]})
    assert [p.summary for p in problems] == ["TLSv1.0 accepted", "TLSv1.3 not offered"]
    assert "TLS_RSA_WITH_AES_128_CBC_SHA" in problems[0].detail
    # A protocol that could not be scanned is neither a pass nor a failure.
    partial = _scan(accepted_protocols=["TLSv1.2"], cipher_suites={"TLSv1.2": ["TLS_AES_128_GCM_SHA256"]},
                    incomplete={"tls_1_1_cipher_suites": "CONNECTIVITY_ISSUE: reset",
                                "tls_1_3_cipher_suites": "CONNECTIVITY_ISSUE: timeout"})
    assert partial.untested_protocols == ["TLSv1.1", "TLSv1.3"]
    assert protocol_problems(partial, {"required": ["TLSv1.3"]}) == []
    # `allowed` reads every protocol, `required` only its own
    assert protocols_unobserved(partial, modern) == ["tls_1_1_cipher_suites: CONNECTIVITY_ISSUE: reset",
                                                     "tls_1_3_cipher_suites: CONNECTIVITY_ISSUE: timeout"]
    assert protocols_unobserved(partial, {"required": ["TLSv1.3"]}) == [
        "tls_1_3_cipher_suites: CONNECTIVITY_ISSUE: timeout"]
    assert protocols_unobserved(partial, {"required": ["TLSv1.2"]}) == []
    assert protocols_unobserved(_scan(), modern) == []


def test_suite_problems():
    assert suite_problems(_scan(), {"forward_secrecy": True, "aead_only": True}) == []
    weak = _scan(cipher_suites={"TLSv1.2": ["TLS_RSA_WITH_AES_128_GCM_SHA256",
                                            "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
                                            "TLS_ECDH_anon_WITH_AES_128_CBC_SHA"],
                                "TLSv1.3": ["TLS_AES_128_GCM_SHA256"]})
    fs, aead = suite_problems(weak, {"forward_secrecy": True, "aead_only": True})
    assert fs.summary == "TLSv1.2: 2 suite(s) without forward secrecy"
    assert "TLS_RSA_WITH_AES_128_GCM_SHA256" in fs.detail and "anon" in fs.detail
    assert aead.summary == "TLSv1.2: 2 suite(s) not AEAD" and "GCM" not in aead.detail
    assert suite_problems(weak, {}) == []


def test_suite_classification():
    assert is_forward_secret("TLS_DHE_RSA_WITH_AES_256_GCM_SHA384")
    assert is_forward_secret("TLS_AES_128_CCM_8_SHA256") and is_aead("TLS_AES_128_CCM_8_SHA256")
    assert not is_forward_secret("SSL_CK_RC4_128_WITH_MD5")
    assert is_aead("TLS_ECDHE_ECDSA_WITH_AES_256_CCM")
    assert is_aead("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256")
    assert not is_aead("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384")


def _cert(**kw) -> dict:
    base = {"subject": "CN=h", "issuer": "CN=ca", "key_type": "EC", "key_bits": 256,
            "signature_algorithm": "ecdsa-with-SHA256", "signature_hash": "sha256",
            "not_before": "2025-01-01T00:00:00+00:00", "not_after": "2025-12-31T00:00:00+00:00",
            "san": ["h"], "hostname": "h", "hostname_match": True, "trust_store": "ca_file",
            "trusted": True, "trust_error": None, "chain": []}
    base.update(kw)
    return base


CERT_PARAMS = {"min_rsa_bits": 2048, "min_ec_bits": 256, "signature_hashes": ["sha256", "sha384", "sha512"],
               "hostname": True, "valid_now": True}
JUNE = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


def test_certificate_problems_none():
    assert certificate_problems(_scan(certificate=_cert()), CERT_PARAMS, now=JUNE) == []
    rsa_ok = _cert(key_type="RSA", key_bits=2048, chain=[{"subject": "CN=int", "signature_hash": "sha384"}])
    assert certificate_problems(_scan(certificate=rsa_ok), CERT_PARAMS, now=JUNE) == []


def test_certificate_problems_found():
    bad = _cert(key_type="RSA", key_bits=1024, signature_hash="sha1", hostname_match=False, san=["other"],
                trusted=False, trust_error="Supplied CA file: unknown issuer",
                chain=[{"subject": "CN=int", "signature_hash": "md5"}])
    problems = certificate_problems(_scan(certificate=bad), {**CERT_PARAMS, "trusted": True},
                                    now=dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    assert [p.summary for p in problems] == [
        "RSA key of 1024 bits", "signature with sha1", "signature with md5", "certificate not valid for h",
        "certificate expired", "certificate chain not trusted"]
    assert "CN=int" in problems[2].detail and "unknown issuer" in problems[-1].detail
    small_ec = _cert(key_bits=224, not_before="2025-07-01T00:00:00+00:00")
    assert [p.summary for p in certificate_problems(_scan(certificate=small_ec), CERT_PARAMS, now=JUNE)] == [
        "EC key of 224 bits", "certificate not yet valid"]
    assert certificate_problems(_scan(), CERT_PARAMS) == []   # nothing seen: certificate_unobserved says so
    dual = _scan(certificate=_cert(),
                 other_certificates=[_cert(key_type="RSA", key_bits=1024, subject="CN=r")])
    (problem,) = certificate_problems(dual, CERT_PARAMS, now=JUNE)
    assert problem.summary == "RSA certificate: RSA key of 1024 bits" and "CN=r" in problem.detail


def test_untrusted_chain_is_explained_by_its_cause():
    """certificate.py finds why path validation failed; the trust rule then names that cause, once."""
    expired = _cert(trusted=False, trust_error="Supplied CA file: certificate expired", untrusted_because=["expired"])
    august = dt.datetime(2026, 8, 1, tzinfo=dt.UTC)
    assert [p.summary for p in certificate_problems(_scan(certificate=expired), {"trusted": True}, now=august)] == [
        "certificate expired"]
    assert [p.summary for p in certificate_problems(_scan(certificate=expired), {**CERT_PARAMS, "trusted": True},
                                                    now=august)] == ["certificate expired"]
    elsewhere = _cert(trusted=False, hostname_match=False, san=["other"], untrusted_because=["name"],
                      trust_error="Supplied CA file: no matching name")
    assert [p.detail for p in certificate_problems(_scan(certificate=elsewhere), {"trusted": True}, now=JUNE)] == [
        "certificate names other, not h"]
    unknown = _cert(trusted=False, trust_error="Supplied CA file: unknown issuer", untrusted_because=["chain"])
    (problem,) = certificate_problems(_scan(certificate=unknown), {"trusted": True}, now=JUNE)
    assert problem.summary == "certificate chain not trusted" and "unknown issuer" in problem.detail


def test_hostname_matching():
    assert hostname_matches("127.0.0.1", [], ["127.0.0.1"])
    assert not hostname_matches("127.0.0.1", ["127.0.0.1"], [])
    assert hostname_matches("::1", [], ["0:0:0:0:0:0:0:1"])
    assert hostname_matches("api.example.fr", ["*.example.fr"], [])
    assert not hostname_matches("a.api.example.fr", ["*.example.fr"], [])
    assert not hostname_matches("example.fr", ["*.fr"], []) and not hostname_matches("fr", ["*.fr"], [])
    assert hostname_matches("Example.FR.", ["example.fr"], [])


# ---- the checks of security/test_tls.py on hand-made scans, with the anssi-tls profile's params -----------

def _checks():
    """check id -> the function of security/test_tls.py marked with it."""
    spec = importlib.util.spec_from_file_location("vigie_security_test_tls",
                                                  ROOT / "security" / "test_tls.py")
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():   # the vigie_check mark is registered by the plugin, absent here
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        spec.loader.exec_module(module)
    return {mark.args[0]: fn for fn in vars(module).values()
            for mark in getattr(fn, "pytestmark", []) if mark.name == "vigie_check"}


def _requirements() -> dict:
    return {r.id: r for name in ("anssi-tls", "mozilla-tls-intermediate", "mozilla-tls-modern")
            for r in load_profile(PROFILE_DIR / f"{name}.yaml").requirements}


def _run(requirement_id: str, scan: TlsScan):
    """(status, summary) as the plugin would see them."""
    requirement = _requirements()[requirement_id]
    result = conclude(_checks()[requirement.check], requirement=requirement, tls_scan=scan, outcome=Outcome())
    return result.status, result.summary


def _now_cert() -> dict:
    now = dt.datetime.now(dt.UTC)
    day = dt.timedelta(days=1)
    return _cert(not_before=(now - day).isoformat(), not_after=(now + day).isoformat())


def test_profile_checks_pass_on_a_good_scan():
    scan = _scan(certificate=_now_cert())
    for rid in ("ANSSI-TLS-01", "ANSSI-TLS-02", "ANSSI-TLS-03", "ANSSI-TLS-04", "ANSSI-TLS-05"):
        status, summary = _run(rid, scan)
        assert status == "passed" and summary, (rid, summary)


def test_profile_checks_fail_with_reviewer_messages():
    weak = _scan(accepted_protocols=["TLSv1.0", "TLSv1.2"], certificate=_now_cert() | {"key_bits": 192},
                 cipher_suites={"TLSv1.0": ["TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"],
                                "TLSv1.2": ["TLS_RSA_WITH_AES_128_GCM_SHA256"]})
    assert _run("ANSSI-TLS-01", weak) == ("failed", "TLSv1.0 accepted")
    assert _run("ANSSI-TLS-02", weak) == ("failed", "TLSv1.3 not offered")
    assert _run("ANSSI-TLS-03", weak) == ("failed", "TLSv1.2: 1 suite(s) without forward secrecy")
    assert _run("ANSSI-TLS-04", weak) == ("failed", "TLSv1.0: 1 suite(s) not AEAD")
    assert _run("ANSSI-TLS-05", weak) == ("failed", "EC key of 192 bits")


@pytest.mark.partial_observation("tls.protocols", "tls.cipher-suites", "tls.certificate")
def test_profile_checks_error_when_the_scan_is_incomplete():
    partial = _scan(certificate=_now_cert(), incomplete={"tls_1_0_cipher_suites": "CONNECTIVITY_ISSUE: reset"})
    status, summary = _run("ANSSI-TLS-01", partial)
    assert status == "error" and "tls_1_0_cipher_suites" in summary and "reset" in summary
    assert _run("ANSSI-TLS-02", partial)[0] == "passed"    # TLSv1.0 does not matter to it
    for rid in ("ANSSI-TLS-03", "ANSSI-TLS-04", "ANSSI-TLS-07"):
        assert _run(rid, partial)[0] == "error", rid
    # a problem already seen fails the rule whatever the missing part would have shown
    weak = _scan(accepted_protocols=["TLSv1.1", "TLSv1.2"], incomplete=partial.incomplete,
                 cipher_suites={"TLSv1.1": ["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"]})
    assert _run("ANSSI-TLS-01", weak) == ("failed", "TLSv1.1 accepted")
    assert _run("ANSSI-TLS-04", weak) == ("failed", "TLSv1.1: 1 suite(s) not AEAD")
    status, summary = _run("ANSSI-TLS-05", _scan(incomplete={"certificate_info": "CONNECTIVITY_ISSUE: reset"}))
    assert status == "error" and "certificate_info: CONNECTIVITY_ISSUE: reset" in summary
    status, summary = _run("ANSSI-TLS-05", _scan())      # completed, and yet no certificate
    assert status == "error" and "no certificate retrieved" in summary
