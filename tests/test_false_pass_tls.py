"""TLS routes to a false pass (issue 12), each reproduced and closed:

1. half a scan taken for a whole one: a TLS 1.2 cipher-suite scan that errored, or whose handshakes got no
   answer (sslyze counts silence as refusal), left the suite rules judging TLS 1.3 alone;
2. a CA the user supplied with --ca-file that lacks keyUsage (OpenSSL and testssl.sh trust it) made a
   correctly configured server fail "certificate chain not trusted", while a chain the server gets wrong
   must still fail.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import ssl

import pytest
from checkcall import Outcome, conclude
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from test_tls_rules import _sound
from test_tls_scan import LOCAL, _checks, _pem_key, _requirements, tls_server

from vigie.tls import scan_tls

# the rules that read the TLS 1.2 suite list (every protocol's, or those before TLS 1.3)
READ_TLS12 = ("ANSSI-TLS-01", "ANSSI-TLS-03", "ANSSI-TLS-04", "ANSSI-TLS-06", "ANSSI-TLS-07", "ANSSI-TLS-09",
              "ANSSI-TLS-18", "MOZ-TLS-INT-01", "MOZ-TLS-INT-02", "MOZ-TLS-INT-03", "MOZ-TLS-MOD-01",
              "MOZ-TLS-MOD-02", "MOZ-TLS-MOD-03")
# the rules that do not, and still pass on what they read
NOT_TLS12 = ("ANSSI-TLS-02", "ANSSI-TLS-05", "ANSSI-TLS-08", "ANSSI-TLS-15", "MOZ-TLS-INT-04", "MOZ-TLS-INT-05",
             "MOZ-TLS-INT-06")


def outcome_of(requirement_id: str, scan):
    """The outcome of one requirement's check on a scan, and the messages it recorded."""
    requirement = _requirements()[requirement_id]
    recorder = Outcome()
    result = conclude(_checks()[requirement.check], requirement=requirement, tls_scan=scan, outcome=recorder)
    return result, recorder.messages


# ---- route 1: half an observation -------------------------------------------------------------------------

def _tls12_errored():
    """A sound scan whose TLS 1.2 command errored: only TLS 1.3 was seen. sslyze's Mozilla checker would have
    refused the scan; here it claims no issue, so that the checks must see the gap themselves."""
    scan = _sound(accepted_protocols=["TLSv1.3"],
                  cipher_suites={"TLSv1.3": ["TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]},
                  incomplete={"tls_1_2_cipher_suites": "CONNECTIVITY_ISSUE: ConnectionToServerTimedOut: "
                                                       "Connection to the server timed out"})
    return scan


@pytest.mark.partial_observation("tls.protocols", "tls.cipher-suites", "tls.encrypt-then-mac", "tls.key-exchange",
                                 "tls.server-cipher-order", "tls.mozilla")
@pytest.mark.parametrize("requirement_id", READ_TLS12)
def test_an_errored_tls12_command_leaves_its_rules_undetermined(requirement_id):
    result, _ = outcome_of(requirement_id, _tls12_errored())
    assert result.status == "error", (result.status, result.summary)
    assert "tls_1_2_cipher_suites: CONNECTIVITY_ISSUE" in result.summary and "timed out" in result.summary


@pytest.mark.parametrize("requirement_id", NOT_TLS12)
def test_rules_that_do_not_read_tls12_still_pass(requirement_id):
    result, _ = outcome_of(requirement_id, _tls12_errored())
    assert result.status == "passed", (result.status, result.summary)


def test_the_same_scan_complete_passes():
    """Both ways: with TLS 1.2 seen, every rule above passes."""
    for requirement_id in READ_TLS12:
        if requirement_id.startswith("MOZ-TLS-MOD"):
            continue   # modern refuses TLS 1.2
        result, _ = outcome_of(requirement_id, _sound())
        assert result.status == "passed", (requirement_id, result.summary)


def test_a_problem_already_seen_still_fails():
    """A rule the part seen already breaks fails: the missing part could not save it."""
    scan = _tls12_errored()
    scan.accepted_protocols.insert(0, "TLSv1.0")
    scan.cipher_suites["TLSv1.0"] = ["TLS_RSA_WITH_3DES_EDE_CBC_SHA"]
    assert outcome_of("ANSSI-TLS-01", scan)[0].summary == "TLSv1.0 accepted"
    assert outcome_of("ANSSI-TLS-07", scan)[0].status == "failed"


# ECDHE-ECDSA-AES256-GCM-SHA384: a TLS 1.2 suite the test server accepts
SILENT_SUITE = 0xC02C


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.mark.parametrize("glitch", [True, False], ids=["silent-suite", "clean"])
def test_a_tls12_suite_without_answer_is_no_refusal(pki, glitch):
    """A real server that does not answer one TLS 1.2 suite's handshake (a network glitch, as sslyze sees
    it): sslyze counts the suite as rejected, the scan marks TLS 1.2's list incomplete, and every rule that
    reads it is undetermined. The same server answering every hello passes them."""
    cert = pki.leaf("plain", pki.ca, pki.ca_key)
    with tls_server(cert, silent=(lambda suites: suites == {SILENT_SUITE}) if glitch else None) as port:
        scan = scan_tls(LOCAL, port, ca_file=pki.ca_file, timeout=1)
    accepted_tls12 = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" in scan.cipher_suites["TLSv1.2"]
    assert accepted_tls12 is not glitch, scan.cipher_suites
    statuses = {rid: outcome_of(rid, scan)[0] for rid in ("ANSSI-TLS-03", "ANSSI-TLS-04", "ANSSI-TLS-06",
                                                          "ANSSI-TLS-07", "ANSSI-TLS-09", "MOZ-TLS-INT-02")}
    expected = "error" if glitch else "passed"
    assert {rid: r.status for rid, r in statuses.items()} == dict.fromkeys(statuses, expected), \
        {rid: r.summary for rid, r in statuses.items()}
    if glitch:
        assert "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" in statuses["ANSSI-TLS-03"].summary
    # TLS 1.2 was seen accepted, and TLS 1.3 whole: the protocol rules are determined
    for requirement_id in ("ANSSI-TLS-01", "ANSSI-TLS-02", "MOZ-TLS-INT-01"):
        assert outcome_of(requirement_id, scan)[0].status == "passed", requirement_id


# ---- route 2: the user's own CA -----------------------------------------------------------------------------

def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


_NOW = dt.datetime.now(dt.UTC)


def _certificate(subject: str, issuer: x509.Name, public_key, signing_key, ca: bool, key_usage: bool = True,
                 san: x509.GeneralName | None = None) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number()).not_valid_before(_NOW - dt.timedelta(hours=1))
               .not_valid_after(_NOW + dt.timedelta(days=30 if ca else 7))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
    if key_usage and ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True)
    if not ca:
        builder = (builder.add_extension(x509.SubjectAlternativeName(
            [san or x509.IPAddress(ipaddress.ip_address(LOCAL))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    if subject != issuer.rfc4514_string().removeprefix("CN="):
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            signing_key.public_key()), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


class Pki:
    """A CA with keyUsage (`ca`), one without (`bare_ca`), and leaves under either, written as files."""

    def __init__(self, folder):
        self.folder = folder
        self.ca_key, self.bare_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        self.ca = _certificate("vigie CA", _name("vigie CA"), self.ca_key.public_key(), self.ca_key, ca=True)
        self.bare = _certificate("vigie CA without keyUsage", _name("vigie CA without keyUsage"),
                                 self.bare_key.public_key(), self.bare_key, ca=True, key_usage=False)
        self.ca_file, self.bare_file = self._write("ca.pem", self.ca), self._write("bare.pem", self.bare)

    def _write(self, name: str, *certs: x509.Certificate) -> str:
        path = self.folder / name
        path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
        return str(path)

    def leaf(self, name: str, issuer: x509.Certificate, issuer_key, san=None, above=()) -> tuple[str, str]:
        """A server certificate (and key) for 127.0.0.1 issued by `issuer`; `above`: the intermediates the
        server sends after it."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(LOCAL, issuer.subject, key.public_key(), issuer_key, ca=False, san=san)
        (self.folder / f"{name}.key").write_bytes(_pem_key(key))
        return self._write(f"{name}.pem", cert, *above), str(self.folder / f"{name}.key")


def _scan_with(cert, ca_file):
    with tls_server(cert) as port:
        return scan_tls(LOCAL, port, ca_file=ca_file)


def test_a_user_ca_without_key_usage_is_judged_as_openssl_judges_it(pki):
    """The server is right; the CA file the user gave lacks keyUsage: the chain is trusted (as by OpenSSL,
    curl and testssl.sh), and the outcome warns that the CA file is what a strict verifier refuses."""
    scan = _scan_with(pki.leaf("under-bare", pki.bare, pki.bare_key), pki.bare_file)
    assert scan.certificate["trusted"] is True and "no keyUsage extension" in scan.certificate["ca_file_warning"]
    for requirement_id in ("ANSSI-TLS-05", "MOZ-TLS-INT-05"):
        result, messages = outcome_of(requirement_id, scan)
        assert result.status == "passed", (requirement_id, result.summary)
        (warning,) = messages
        assert warning.startswith("warning: the CA file you supplied") and pki.bare_file in warning
        assert "not the server" in warning


def test_a_chain_the_ca_did_not_sign_still_fails(pki):
    """Both ways: the same CA file, a server whose certificate another CA issued. Not trusted, and the
    finding is the chain's; the warning about the CA file stays."""
    scan = _scan_with(pki.leaf("under-other", pki.ca, pki.ca_key), pki.bare_file)
    for requirement_id in ("ANSSI-TLS-05", "MOZ-TLS-INT-05"):
        result, messages = outcome_of(requirement_id, scan)
        assert (result.status, result.summary) == ("failed", "certificate chain not trusted"), requirement_id
        assert any("CA file you supplied" in m for m in messages)


def test_a_wrong_name_under_a_bare_ca_is_named(pki):
    """The user's CA set aside, what is wrong with the server is said as it is: the name."""
    scan = _scan_with(pki.leaf("bare-other-host", pki.bare, pki.bare_key, san=x509.DNSName("other.invalid")),
                      pki.bare_file)
    result, _ = outcome_of("ANSSI-TLS-05", scan)
    assert (result.status, result.summary) == ("failed", f"certificate not valid for {LOCAL}")


def test_an_intermediate_without_key_usage_sent_by_the_server_still_fails(pki):
    """The server's own chain lacks keyUsage on its intermediate: OpenSSL accepts it, the web PKI profile
    does not, and this one is the server's to fix: still failed."""
    int_key = ec.generate_private_key(ec.SECP256R1())
    intermediate = _certificate("vigie intermediate without keyUsage", pki.ca.subject, int_key.public_key(),
                                pki.ca_key, ca=True, key_usage=False)
    scan = _scan_with(pki.leaf("under-bare-int", intermediate, int_key, above=(intermediate,)), pki.ca_file)
    assert scan.certificate["ca_file_warning"] is None
    result, _ = outcome_of("ANSSI-TLS-05", scan)
    assert (result.status, result.summary) == ("failed", "certificate chain not trusted")


def _rsa_only(suites: set[int]) -> bool:
    """sslyze's hello for the RSA certificate deployment: RSA-authenticated suites (ECDHE and plain RSA key
    exchange), no ECDSA one."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ciphers("aECDSA:@SECLEVEL=0")
    ecdsa = {c["id"] & 0xFFFF for c in ctx.get_ciphers() if c["protocol"] != "TLSv1.3"}
    return {0xC02F, 0x009C} <= suites and not suites & ecdsa


@pytest.mark.partial_observation("tls.certificate")
@pytest.mark.parametrize("glitch", [True, False], ids=["rsa-deployment-silent", "clean"])
def test_a_certificate_deployment_missed_is_no_pass(pki, glitch):
    """A server with an ECDSA and an RSA 1024 certificate, whose answer to sslyze's RSA-only hello is lost:
    sslyze drops that deployment and reports the ECDSA one alone. The RSA suites accepted show an RSA
    certificate exists, so ANSSI-TLS-05 is undetermined, not passed; seen whole, it fails on the RSA key."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    rsa_cert = _certificate(LOCAL, pki.ca.subject, rsa_key.public_key(), pki.ca_key, ca=False)
    (pki.folder / "rsa1024.key").write_bytes(_pem_key(rsa_key))
    rsa_pair = pki._write("rsa1024.pem", rsa_cert), str(pki.folder / "rsa1024.key")
    with tls_server(pki.leaf("ecdsa", pki.ca, pki.ca_key), "ECDHE+AESGCM:@SECLEVEL=0", also=(rsa_pair,),
                    silent=_rsa_only if glitch else None) as port:
        scan = scan_tls(LOCAL, port, ca_file=pki.ca_file, timeout=1)
    assert "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" in scan.cipher_suites["TLSv1.2"]
    result, _ = outcome_of("ANSSI-TLS-05", scan)
    if glitch:
        assert scan.other_certificates == []
        assert result.status == "error" and "needs a certificate of key type RSA, but none was retrieved" in result.summary
    else:
        assert result.status == "failed" and result.summary.endswith("RSA key of 1024 bits"), result.summary
