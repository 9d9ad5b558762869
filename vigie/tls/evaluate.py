"""Evaluation: a TLS scan and a requirement's params in, the problems found out.

Pure functions over a `TlsScan`, so that the checks in `security/test_tls.py` stay thin and the logic is
testable without a network. Each function documents the params it reads; `*_undetermined` functions name
what the scan could not see, which the checks turn into an `error` outcome rather than a pass.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import NamedTuple

from .scan import PROTOCOLS, TlsScan


class Problem(NamedTuple):
    summary: str   # short, for the outcome's one-line summary: "TLSv1.0 accepted"
    detail: str    # what a reviewer needs to act: the suites, the values seen

    def __str__(self) -> str:
        return self.detail


_AEAD = re.compile(r"_(GCM|CCM|POLY1305)(_|$)")
_EPHEMERAL = re.compile(r"^TLS_(ECDHE|DHE)_")


def is_forward_secret(suite: str) -> bool:
    """TLS 1.3 suites always use an ephemeral key exchange; before it, only (EC)DHE suites do. Anonymous
    (EC)DH is ephemeral but authenticates nobody, so it never counts."""
    if suite.startswith(("TLS_AES_", "TLS_CHACHA20_", "TLS_SM4_")):
        return True
    return bool(_EPHEMERAL.match(suite)) and "_anon_" not in suite


def is_aead(suite: str) -> bool:
    return bool(_AEAD.search(suite))


def _suites(names: list[str]) -> str:
    return ", ".join(names) if names else "no suite listed"


def protocol_problems(scan: TlsScan, params: dict) -> list[Problem]:
    """`allowed`: no other protocol may be accepted; `required`: each of them must be accepted."""
    problems = []
    allowed = params.get("allowed")
    if allowed is not None:
        for p in scan.accepted_protocols:
            if p not in allowed:
                problems.append(Problem(f"{p} accepted",
                                        f"{p} accepted, with {_suites(scan.cipher_suites.get(p, []))}"))
    for p in params.get("required", []):
        if p not in scan.accepted_protocols and p not in scan.untested_protocols:
            problems.append(Problem(f"{p} not offered", f"{p} not offered (accepted: "
                                    f"{', '.join(scan.accepted_protocols) or 'none'})"))
    return problems


def protocols_undetermined(scan: TlsScan, params: dict) -> list[str]:
    """Protocols whose acceptance matters to these params but could not be scanned."""
    allowed = params.get("allowed")
    forbidden = set(PROTOCOLS) - set(allowed) if allowed is not None else set()
    relevant = set(params.get("required", [])) | forbidden
    return [p for p in scan.untested_protocols if p in relevant]


def suite_problems(scan: TlsScan, params: dict) -> list[Problem]:
    """`forward_secrecy: true`: every suite uses an ephemeral key exchange; `aead_only: true`: every suite
    is an AEAD cipher; `forbidden: [RC4, 3DES, ...]`: no suite has one of these words in its IANA name.
    One problem per protocol and test, listing the offending suites."""
    tests = []
    if params.get("forward_secrecy"):
        tests.append(("without forward secrecy", is_forward_secret))
    if params.get("aead_only"):
        tests.append(("not AEAD", is_aead))
    if forbidden := set(params.get("forbidden", [])):
        tests.append(("with an obsolete algorithm", lambda s: not forbidden & set(s.split("_"))))
    problems = []
    for label, ok in tests:
        for protocol in scan.accepted_protocols:
            bad = [s for s in scan.cipher_suites.get(protocol, []) if not ok(s)]
            if bad:
                problems.append(Problem(f"{protocol}: {len(bad)} suite(s) {label}",
                                        f"{protocol}: suites {label}: {', '.join(bad)}"))
    return problems


def certificate_problems(scan: TlsScan, params: dict, now: dt.datetime | None = None) -> list[Problem]:
    """`min_rsa_bits` (RSA, DSA), `min_ec_bits` (EC, EdDSA), `signature_hashes` (leaf and intermediates),
    `hostname: true`, `valid_now: true`, `trusted: true` (chain trusted by the CA file, or a public store).
    Every certificate the server deploys is held to them, not only the one a TLS 1.3 client gets."""
    if not scan.certificate:
        return [Problem("no certificate observed", "the scan retrieved no certificate")]
    now = now or dt.datetime.now(dt.UTC)
    problems = _one_certificate(scan.certificate, params, now)
    for other in scan.other_certificates:
        label = f"{other['key_type']} certificate"
        problems += [Problem(f"{label}: {p.summary}", f"{label} ({other['subject']}): {p.detail}")
                     for p in _one_certificate(other, params, now)]
    return problems


def _one_certificate(cert: dict, params: dict, now: dt.datetime) -> list[Problem]:
    problems = []
    kind, bits = cert["key_type"], cert["key_bits"]
    floor = params.get("min_rsa_bits") if kind in ("RSA", "DSA") else params.get("min_ec_bits")
    if floor is not None and bits < floor:
        problems.append(Problem(f"{kind} key of {bits} bits", f"{kind} key of {bits} bits, below {floor}"))
    hashes = params.get("signature_hashes")
    if hashes is not None:
        signed = [("the certificate", cert["signature_hash"])]
        signed += [(c["subject"], c["signature_hash"]) for c in cert.get("chain", [])]
        for who, h in signed:
            if h not in hashes:
                problems.append(Problem(f"signature with {h or 'unknown hash'}",
                                        f"{who} is signed with {h or 'an unknown hash'}; "
                                        f"allowed: {', '.join(hashes)}"))
    if params.get("hostname") and not cert["hostname_match"]:
        problems.append(_name_problem(cert))
    if params.get("valid_now"):
        problems += _validity_problems(cert, now)
    if params.get("trusted") and not cert["trusted"]:
        # said once when valid_now or hostname says it too
        problems += [p for p in _trust_problems(cert, now) if p.summary not in {q.summary for q in problems}]
    return problems


def _trust_problems(cert: dict, now: dt.datetime) -> list[Problem]:
    """What made the chain untrusted (certificate.py tells): an expired leaf under a trusted issuer is
    "certificate expired", not "chain not trusted"."""
    problems = []
    for cause in cert.get("untrusted_because") or ["chain"]:
        if cause == "name":
            problems.append(_name_problem(cert))
        elif cause == "chain":
            problems.append(Problem("certificate chain not trusted",
                                    f"chain not trusted ({cert['trust_store']}): {cert['trust_error']}"))
        else:
            problems += _validity_problems(cert, now)
    return problems


def _name_problem(cert: dict) -> Problem:
    return Problem(f"certificate not valid for {cert['hostname']}",
                   f"certificate names {', '.join(cert['san']) or 'no subject alternative name'}, "
                   f"not {cert['hostname']}")


def _validity_problems(cert: dict, now: dt.datetime) -> list[Problem]:
    if now < dt.datetime.fromisoformat(cert["not_before"]):
        return [Problem("certificate not yet valid", f"certificate valid only from {cert['not_before']}")]
    if now > dt.datetime.fromisoformat(cert["not_after"]):
        return [Problem("certificate expired", f"certificate expired on {cert['not_after']}")]
    return []


def encrypt_then_mac_problems(scan: TlsScan) -> list[Problem]:
    """CBC suites are tolerated only with encrypt-then-MAC (RFC 7366): one problem per protocol where the
    server accepted CBC suites and did not agree to it."""
    cbc = cbc_suites(scan)
    return [Problem(f"{protocol}: CBC suites without encrypt-then-MAC",
                    f"{protocol}: the server accepts {', '.join(cbc.get(protocol, []))} and did not answer "
                    "the encrypt_then_mac extension (RFC 7366) when offered only those suites")
            for protocol, etm in scan.encrypt_then_mac.items() if not etm]


def encrypt_then_mac_undetermined(scan: TlsScan) -> list[str]:
    """Protocols with accepted CBC suites whose encrypt-then-MAC probe failed."""
    return [p for p in ("TLSv1.0", "TLSv1.1", "TLSv1.2")
            if any("_CBC_" in s for s in scan.cipher_suites.get(p, [])) and p not in scan.encrypt_then_mac]


def cbc_suites(scan: TlsScan) -> dict[str, list[str]]:
    """protocol -> the CBC suites accepted with it."""
    found = {p: [s for s in scan.cipher_suites.get(p, []) if "_CBC_" in s]
             for p in ("SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2")}
    return {p: suites for p, suites in found.items() if suites}


def curves_used(scan: TlsScan) -> list[str]:
    """The groups the server accepts: those accepted one by one, and those it chose during the suite scan."""
    seen = list(scan.curves)
    for keys in scan.key_exchange.values():
        seen += [k["curve"] for k in keys.values() if k["type"] == "ECDH"]
    return sorted(set(seen), key=str.lower)


def key_exchange_problems(scan: TlsScan, params: dict) -> list[Problem]:
    """`allowed_curves`: every elliptic-curve group accepted is one of them (case-insensitive names, as
    OpenSSL gives them: secp256r1, X25519...); `min_dh_bits`: every finite-field DH group the server sends
    with a DHE suite has at least that many bits."""
    problems = []
    if (allowed := params.get("allowed_curves")) is not None:
        allowed_lower = {c.lower() for c in allowed}
        bad = [c for c in curves_used(scan) if c.lower() not in allowed_lower]
        if bad:
            problems.append(Problem(f"curve(s) accepted beyond the allowed list: {', '.join(bad)}",
                                    f"groups accepted: {', '.join(curves_used(scan))}; allowed: "
                                    f"{', '.join(allowed)}"))
    if (floor := params.get("min_dh_bits")) is not None:
        weak = {f"{suite} ({key['bits']} bits)" for keys in scan.key_exchange.values()
                for suite, key in keys.items() if key["type"] == "DH" and key["bits"] < floor}
        if weak:
            smallest = min(key["bits"] for keys in scan.key_exchange.values() for key in keys.values()
                           if key["type"] == "DH")
            problems.append(Problem(f"DH group of {smallest} bits", f"finite-field DH groups below {floor} "
                                    f"bits with: {', '.join(sorted(weak))}"))
    return problems


_ROBOT_VULNERABLE = ("VULNERABLE_WEAK_ORACLE", "VULNERABLE_STRONG_ORACLE")
_ROBOT_SAFE = ("NOT_VULNERABLE_NO_ORACLE", "NOT_VULNERABLE_RSA_NOT_SUPPORTED")


def _robot(scan: TlsScan) -> bool | None:
    if scan.robot in _ROBOT_VULNERABLE:
        return True
    return False if scan.robot in _ROBOT_SAFE else None   # UNKNOWN_INCONSISTENT_RESULTS: not determined


# feature -> (what the scan says, the value a sound server has, the problem when it has the other)
FEATURES = {
    "no-compression": (lambda s: s.compression, False, "TLS compression accepted (CRIME)"),
    "secure-renegotiation": (lambda s: s.secure_renegotiation, True,
                             "secure renegotiation (RFC 5746) not supported"),
    "no-client-renegotiation": (lambda s: s.client_renegotiation, False,
                                "client-initiated renegotiation accepted (denial of service)"),
    "extended-master-secret": (lambda s: s.extended_master_secret, True,
                               "extended master secret (RFC 7627) not supported"),
    "no-early-data": (lambda s: s.early_data, False, "TLS 1.3 early data (0-RTT) accepted: replayable"),
    "fallback-scsv": (lambda s: s.fallback_scsv, True,
                      "TLS_FALLBACK_SCSV (RFC 7507) not honoured: protocol downgrade possible"),
    "no-heartbleed": (lambda s: s.heartbleed, False, "vulnerable to Heartbleed (CVE-2014-0160)"),
    "no-ccs-injection": (lambda s: s.ccs_injection, False,
                         "vulnerable to OpenSSL CCS injection (CVE-2014-0224)"),
    "no-robot": (_robot, False, "vulnerable to ROBOT (RSA decryption oracle)"),
}


def feature_problems(scan: TlsScan, params: dict) -> list[Problem]:
    """`features`: names from FEATURES; one problem per feature the server gets wrong."""
    problems = []
    for name in params["features"]:
        observe, good, text = FEATURES[name]
        value = observe(scan)
        if value is not None and value != good:
            seen = f" ({scan.robot})" if name == "no-robot" else ""
            problems.append(Problem(text, f"{name}: {text}{seen}"))
    return problems


def features_undetermined(scan: TlsScan, params: dict) -> list[str]:
    return [name for name in params["features"] if FEATURES[name][0](scan) is None]


def ocsp_stapling_applies(scan: TlsScan) -> bool:
    """Stapling can be asked only of certificates that name an OCSP responder."""
    return any(c.get("ocsp_responders") for c in [scan.certificate, *scan.other_certificates] if c)


def ocsp_stapling_problems(scan: TlsScan) -> list[Problem]:
    return [Problem(f"no OCSP response stapled ({c['key_type']} certificate)",
                    f"the {c['key_type']} certificate {c['subject']} names the OCSP responder "
                    f"{', '.join(c['ocsp_responders'])} but the server staples no OCSP response")
            for c in [scan.certificate, *scan.other_certificates]
            if c and c.get("ocsp_responders") and not c.get("ocsp_stapled")]


def mozilla_problems(scan: TlsScan, params: dict, now: dt.datetime | None = None) -> list[Problem]:
    """`configuration` (intermediate, modern), `rules`: the issue keys of sslyze's Mozilla checker that this
    requirement covers. An incomplete check is reported by `mozilla_undetermined`."""
    configuration = params["configuration"]
    issues = scan.mozilla.get(configuration, {}).get("issues", {})
    problems = []
    for key, message in issues.items():
        if key not in params["rules"]:
            continue
        # the checker says only that path validation failed; the certificate's analysis says why
        why = _trust_problems(scan.certificate, now or dt.datetime.now(dt.UTC)) \
            if key == "certificate_path_validation" and scan.certificate and not scan.certificate["trusted"] else []
        problems += [Problem(p.summary, f"Mozilla {configuration} ({key}): {p.detail}") for p in why] or \
            [Problem(f"{key}: {message}", f"Mozilla {configuration} ({key}): {message}")]
    return problems


def mozilla_undetermined(scan: TlsScan, params: dict) -> str | None:
    found = scan.mozilla.get(params["configuration"])
    if found is None:
        return f"the scan did not check the Mozilla {params['configuration']} configuration"
    return found.get("error")


def server_order_problems(scan: TlsScan) -> list[Problem]:
    if scan.server_cipher_order is False:
        return [Problem(f"{scan.server_order_protocol}: the client's suite order wins",
                        f"{scan.server_order_protocol}: offered the same two accepted suites in both "
                        "orders, the server took the client's first choice each time: it does not impose "
                        "its own order")]
    return []


def server_order_undetermined(scan: TlsScan) -> bool:
    """True when two suites of a protocol before TLS 1.3 were accepted but the order could not be tested."""
    tested = scan.server_cipher_order is not None
    return not tested and any(len(scan.cipher_suites.get(p, [])) >= 2
                              for p in ("TLSv1.0", "TLSv1.1", "TLSv1.2"))
