"""Evaluation: a TLS scan and a requirement's params in, the problems found out.

Pure functions over a `TlsScan`, so that the checks in `security/test_tls.py` stay thin and the logic is
testable without a network. Each rule family has `*_problems` (the violations seen) and `*_unobserved`: the
parts of the scan the rule reads that did not complete ("part: why"), which the checks turn into an `error`
outcome unless a problem already seen fails the rule. A rule passes only on a whole observation.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import NamedTuple

from ..messages import quote
from .scan import ENCRYPT_THEN_MAC_PART, PROTOCOLS, SERVER_ORDER_PART, SUITE_PARTS, TlsScan

CERTIFICATE_PART = "certificate_info"
CURVES_PART = "elliptic_curves"
_BEFORE_TLS13 = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2")
# protocols without extensions: a CBC suite there can never have encrypt-then-MAC
NO_EXTENSIONS = ("SSLv2", "SSLv3")


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


def unobserved(scan: TlsScan, parts) -> list[str]:
    """"part: why" for each of these parts of the scan that did not complete."""
    return [f"{part}: {scan.incomplete[part]}" for part in dict.fromkeys(parts) if part in scan.incomplete]


def _suite_parts(protocols) -> list[str]:
    return [SUITE_PARTS[p] for p in protocols]


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


def protocols_unobserved(scan: TlsScan, params: dict) -> list[str]:
    """`allowed` reads every protocol's suite scan (the outcome states the set of protocols accepted);
    `required`, the scan of each required protocol. A protocol seen accepted is known to be, whatever part
    of its suite list is missing."""
    read = PROTOCOLS if params.get("allowed") is not None else params.get("required", [])
    return unobserved(scan, _suite_parts(p for p in read if p not in scan.accepted_protocols))


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


def suites_unobserved(scan: TlsScan, params: dict) -> list[str]:
    """Every protocol's suite list: a suite accepted with any of them is held to the rule."""
    return unobserved(scan, _suite_parts(PROTOCOLS))


def certificate_problems(scan: TlsScan, params: dict, now: dt.datetime | None = None) -> list[Problem]:
    """`min_rsa_bits` (RSA, DSA), `min_ec_bits` (EC, EdDSA), `signature_hashes` (leaf and intermediates),
    `hostname: true`, `valid_now: true`, `trusted: true` (chain trusted by the CA file, or a public store).
    Every certificate the server deploys is held to them, not only the one a TLS 1.3 client gets."""
    if not scan.certificate:
        return []   # nothing seen: certificate_unobserved says so
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


def certificate_unobserved(scan: TlsScan) -> list[str]:
    """The certificate_info command, which retrieves every certificate the server deploys."""
    missing = unobserved(scan, [CERTIFICATE_PART])
    return missing or ([] if scan.certificate else [f"{CERTIFICATE_PART}: no certificate retrieved"])


def certificate_warnings(scan: TlsScan) -> list[str]:
    """What the user should know about their own trust anchors (a CA file a strict verifier refuses)."""
    return list(dict.fromkeys(c["ca_file_warning"] for c in [scan.certificate, *scan.other_certificates]
                              if c and c.get("ca_file_warning")))


def _trust_problems(cert: dict, now: dt.datetime) -> list[Problem]:
    """What made the chain untrusted (certificate.py tells): an expired leaf under a trusted issuer is
    "certificate expired", not "chain not trusted"."""
    problems = []
    for cause in cert.get("untrusted_because") or ["chain"]:
        if cause == "name":
            problems.append(_name_problem(cert))
        elif cause == "chain":
            problems.append(Problem("certificate chain not trusted",
                                    f"chain not trusted ({cert['trust_store']}): {quote(cert['trust_error'])}"))
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
    server accepted CBC suites and did not agree to it, or could not (SSLv2, SSLv3: no extensions)."""
    cbc = cbc_suites(scan)
    never = [Problem(f"{protocol}: CBC suites accepted, and {protocol} has no encrypt-then-MAC",
                     f"{protocol}: the server accepts {', '.join(suites)}; {protocol} has no extensions, so "
                     "no encrypt-then-MAC") for protocol, suites in cbc.items() if protocol in NO_EXTENSIONS]
    return never + [Problem(f"{protocol}: CBC suites without encrypt-then-MAC",
                            f"{protocol}: the server accepts {', '.join(cbc.get(protocol, []))} and did not "
                            "answer the encrypt_then_mac extension (RFC 7366) when offered only those suites")
                    for protocol, etm in scan.encrypt_then_mac.items() if not etm]


def encrypt_then_mac_unobserved(scan: TlsScan) -> list[str]:
    """The suite lists of every protocol before TLS 1.3 (TLS 1.3 has no CBC suite), and the encrypt-then-MAC
    probe of each one where CBC suites were accepted."""
    probed = [p for p in cbc_suites(scan) if p not in NO_EXTENSIONS]
    parts = _suite_parts(_BEFORE_TLS13) + [ENCRYPT_THEN_MAC_PART.format(protocol=p) for p in probed]
    never = [f"{ENCRYPT_THEN_MAC_PART.format(protocol=p)}: not probed" for p in probed
             if p not in scan.encrypt_then_mac and ENCRYPT_THEN_MAC_PART.format(protocol=p) not in scan.incomplete]
    return unobserved(scan, parts) + never


def cbc_suites(scan: TlsScan) -> dict[str, list[str]]:
    """protocol -> the CBC suites accepted with it."""
    found = {p: [s for s in scan.cipher_suites.get(p, []) if "_CBC_" in s] for p in _BEFORE_TLS13}
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


def key_exchange_unobserved(scan: TlsScan, params: dict) -> list[str]:
    """`allowed_curves` reads the elliptic_curves command (every group tried one by one); `min_dh_bits`, the
    key the server sent with each suite of every protocol."""
    parts = [CURVES_PART] if "allowed_curves" in params else []
    if "min_dh_bits" in params:
        parts += _suite_parts(PROTOCOLS)
    return unobserved(scan, parts)


_ROBOT_VULNERABLE = ("VULNERABLE_WEAK_ORACLE", "VULNERABLE_STRONG_ORACLE")
_ROBOT_SAFE = ("NOT_VULNERABLE_NO_ORACLE", "NOT_VULNERABLE_RSA_NOT_SUPPORTED")


def _robot(scan: TlsScan) -> bool | None:
    if scan.robot in _ROBOT_VULNERABLE:
        return True
    return False if scan.robot in _ROBOT_SAFE else None   # UNKNOWN_INCONSISTENT_RESULTS: not determined


# feature -> (what the scan says, the value a sound server has, the problem when it has the other, the scan
# command it comes from)
FEATURES = {
    "no-compression": (lambda s: s.compression, False, "TLS compression accepted (CRIME)", "tls_compression"),
    "secure-renegotiation": (lambda s: s.secure_renegotiation, True,
                             "secure renegotiation (RFC 5746) not supported", "session_renegotiation"),
    "no-client-renegotiation": (lambda s: s.client_renegotiation, False,
                                "client-initiated renegotiation accepted (denial of service)",
                                "session_renegotiation"),
    "extended-master-secret": (lambda s: s.extended_master_secret, True,
                               "extended master secret (RFC 7627) not supported", "tls_extended_master_secret"),
    "no-early-data": (lambda s: s.early_data, False, "TLS 1.3 early data (0-RTT) accepted: replayable",
                      "tls_1_3_early_data"),
    "fallback-scsv": (lambda s: s.fallback_scsv, True,
                      "TLS_FALLBACK_SCSV (RFC 7507) not honoured: protocol downgrade possible",
                      "tls_fallback_scsv"),
    "no-heartbleed": (lambda s: s.heartbleed, False, "vulnerable to Heartbleed (CVE-2014-0160)", "heartbleed"),
    "no-ccs-injection": (lambda s: s.ccs_injection, False,
                         "vulnerable to OpenSSL CCS injection (CVE-2014-0224)", "openssl_ccs_injection"),
    "no-robot": (_robot, False, "vulnerable to ROBOT (RSA decryption oracle)", "robot"),
}


def feature_problems(scan: TlsScan, params: dict) -> list[Problem]:
    """`features`: names from FEATURES; one problem per feature the server gets wrong."""
    problems = []
    for name in params["features"]:
        observe, good, text, _ = FEATURES[name]
        value = observe(scan)
        if value is not None and value != good:
            seen = f" ({scan.robot})" if name == "no-robot" else ""
            problems.append(Problem(text, f"{name}: {text}{seen}"))
    return problems


def features_unobserved(scan: TlsScan, params: dict) -> list[str]:
    """Each feature's scan command; a command that completed without a conclusive answer (ROBOT's
    inconsistent results) leaves its feature undetermined too."""
    missing = []
    for name in params["features"]:
        observe, _, _, part = FEATURES[name]
        if observe(scan) is None:
            why = scan.incomplete.get(part) or (f"inconclusive ({scan.robot})" if name == "no-robot" and scan.robot
                                                else "no result")
            missing.append(f"{part} ({name}): {why}")
    return missing


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
    requirement covers. An incomplete check is reported by `mozilla_unobserved`."""
    configuration = params["configuration"]
    issues = scan.mozilla.get(configuration, {}).get("issues", {})
    problems = []
    for key, message in issues.items():
        if key not in params["rules"]:
            continue
        if key == "certificate_path_validation":
            why = _path_validation_problems(scan, now or dt.datetime.now(dt.UTC))
            if why is not None:
                problems += [Problem(p.summary, f"Mozilla {configuration} ({key}): {p.detail}") for p in why]
                continue
        problems.append(Problem(f"{key}: {quote(message)}", f"Mozilla {configuration} ({key}): {quote(message)}"))
    return problems


def _path_validation_problems(scan: TlsScan, now: dt.datetime) -> list[Problem] | None:
    """The checker says only that path validation failed; the certificates' analysis says why. It finds
    nothing wrong with the server when the strict verifier objected only to the CA the user supplied (see
    certificate.py); None when it cannot explain the checker's finding."""
    certs = [c for c in [scan.certificate, *scan.other_certificates] if c]
    untrusted = [c for c in certs if not c["trusted"]]
    if untrusted:
        return [p for c in untrusted for p in _trust_problems(c, now)]
    return [] if certs and certificate_warnings(scan) else None


# sslyze's Mozilla checker: issue key -> the parts of the scan it judges (tls_versions: see mozilla_unobserved)
MOZILLA_READS = {
    "tls_versions": (),
    **dict.fromkeys(("ciphers", "ciphersuites", "ecdh_param_size", "dh_param_size"), tuple(SUITE_PARTS.values())),
    "tls_curves": (CURVES_PART,),
    **dict.fromkeys(("certificate_path_validation", "certificate_types", "certificate_curves",
                     "certificate_signatures", "rsa_key_size", "maximum_certificate_lifespan"),
                    (CERTIFICATE_PART,)),
}
# its vulnerability issue keys, as the FEATURES they judge
MOZILLA_FEATURES = {
    "tls_vulnerability_compression": "no-compression", "tls_vulnerability_ccs_injection": "no-ccs-injection",
    "tls_vulnerability_fallback_scsv": "fallback-scsv", "tls_vulnerability_heartbleed": "no-heartbleed",
    "tls_vulnerability_robot": "no-robot", "tls_vulnerability_renegotiation": "secure-renegotiation",
    "tls_vulnerability_extended_master_secret": "extended-master-secret",
}


def mozilla_unobserved(scan: TlsScan, params: dict) -> list[str]:
    """The parts of the scan the checker judges for these rules, and the checker's own run (it refuses a scan
    that lacks any command). Its ROBOT rule counts only a strong oracle as a flaw: an inconclusive ROBOT
    result leaves that rule undetermined (as features_unobserved does), not passed."""
    configuration, rules = params["configuration"], params["rules"]
    parts = [part for key in rules if key not in MOZILLA_FEATURES for part in MOZILLA_READS[key]]
    if "tls_versions" in rules:   # as protocols_unobserved: a protocol seen accepted is known
        parts += _suite_parts(p for p in PROTOCOLS if p not in scan.accepted_protocols)
    features = [MOZILLA_FEATURES[key] for key in rules if key in MOZILLA_FEATURES]
    missing = unobserved(scan, parts) + features_unobserved(scan, {"features": features})
    found = scan.mozilla.get(configuration)
    if found is None:
        missing.append(f"Mozilla {configuration} checker: not run")
    elif "error" in found:
        missing.append(f"Mozilla {configuration} checker: {found['error']}")
    return missing


def server_order_problems(scan: TlsScan) -> list[Problem]:
    if scan.server_cipher_order is False:
        return [Problem(f"{scan.server_order_protocol}: the client's suite order wins",
                        f"{scan.server_order_protocol}: offered the same two accepted suites in both "
                        "orders, the server took the client's first choice each time: it does not impose "
                        "its own order")]
    return []


def server_order_unobserved(scan: TlsScan) -> list[str]:
    """The suite lists of TLS 1.0 to 1.2 (the protocols the rule concerns) and the order probe, needed
    wherever two suites of one of them were accepted."""
    missing = unobserved(scan, _suite_parts(("TLSv1.0", "TLSv1.1", "TLSv1.2")) + [SERVER_ORDER_PART])
    reorderable = any(len(scan.cipher_suites.get(p, [])) >= 2 for p in ("TLSv1.0", "TLSv1.1", "TLSv1.2"))
    if reorderable and scan.server_cipher_order is None and SERVER_ORDER_PART not in scan.incomplete:
        missing.append(f"{SERVER_ORDER_PART}: not probed")
    return missing
