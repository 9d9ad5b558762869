"""TLS: protocol versions, cipher suites, encrypt-then-MAC, key exchange, certificate, protocol features and
known flaws, OCSP stapling, Mozilla's configurations. The logic lives in vigie.tls (pure functions over the
target's one TLS scan); these checks record what was seen and state the verdict. HSTS is http.hsts.

Each check passes only when every part of the scan it reads completed (its `*_unobserved` function names
them): a problem already seen fails it, anything else unseen leaves it undetermined."""
from vigie.checks import check, failed, not_applicable, passed, undetermined
from vigie.tls import (
    FEATURES,
    cbc_suites,
    certificate_problems,
    certificate_unobserved,
    certificate_warnings,
    curves_used,
    encrypt_then_mac_problems,
    encrypt_then_mac_unobserved,
    feature_problems,
    features_unobserved,
    key_exchange_problems,
    key_exchange_unobserved,
    mozilla_problems,
    mozilla_unobserved,
    ocsp_stapling_applies,
    ocsp_stapling_problems,
    protocol_problems,
    protocols_unobserved,
    server_order_problems,
    server_order_unobserved,
    suite_problems,
    suites_unobserved,
)


def _conclude(problems, missing) -> None:
    """Fail on what was seen (the summary names every problem, "TLSv1.0 accepted"; their details become the
    outcome's messages); else, if a part the rule reads did not complete, the rule is undetermined."""
    if problems:
        failed("; ".join(p.summary for p in problems), *(p.detail for p in problems))
    if missing:
        undetermined("the TLS scan did not complete what this requirement reads: " + "; ".join(missing))


@check("tls.protocols")
def test_tls_protocols(requirement, tls_scan, outcome):
    outcome.measure(accepted_protocols=tls_scan.accepted_protocols,
                    untested_protocols=tls_scan.untested_protocols)
    _conclude(protocol_problems(tls_scan, requirement.params), protocols_unobserved(tls_scan, requirement.params))
    passed(f"accepted: {', '.join(tls_scan.accepted_protocols)}")


@check("tls.cipher-suites")
def test_tls_cipher_suites(requirement, tls_scan, outcome):
    outcome.measure(cipher_suites=tls_scan.cipher_suites)
    _conclude(suite_problems(tls_scan, requirement.params), suites_unobserved(tls_scan, requirement.params))
    count = sum(len(s) for s in tls_scan.cipher_suites.values())
    kept = [label for key, label in (("forward_secrecy", "forward-secret"), ("aead_only", "AEAD"),
                                     ("forbidden", "free of obsolete algorithms"))
            if requirement.params.get(key)]
    passed(f"all {count} suites accepted ({', '.join(tls_scan.accepted_protocols)}) are "
           f"{' and '.join(kept) or 'accepted'}")


@check("tls.encrypt-then-mac")
def test_tls_encrypt_then_mac(requirement, tls_scan, outcome):
    cbc = cbc_suites(tls_scan)
    outcome.measure(cbc_suites=cbc, encrypt_then_mac=tls_scan.encrypt_then_mac)
    _conclude(encrypt_then_mac_problems(tls_scan), encrypt_then_mac_unobserved(tls_scan))
    passed(f"encrypt-then-MAC agreed on the CBC suites of {', '.join(tls_scan.encrypt_then_mac)}"
           if cbc else "no CBC suite accepted")


@check("tls.key-exchange")
def test_tls_key_exchange(requirement, tls_scan, outcome):
    curves = curves_used(tls_scan)
    dh = sorted({k["bits"] for keys in tls_scan.key_exchange.values() for k in keys.values()
                 if k["type"] == "DH"})
    outcome.measure(curves=curves, dh_group_bits=dh)
    _conclude(key_exchange_problems(tls_scan, requirement.params),
              key_exchange_unobserved(tls_scan, requirement.params))
    parts = []
    if "allowed_curves" in requirement.params:
        parts.append(f"curves: {', '.join(curves) or 'none'}")
    if "min_dh_bits" in requirement.params:
        parts.append(f"DH groups: {', '.join(f'{b} bits' for b in dh)}" if dh else "no finite-field DH")
    passed("; ".join(parts))


@check("tls.features")
def test_tls_features(requirement, tls_scan, outcome):
    names = requirement.params["features"]
    outcome.measure(**{name: FEATURES[name][0](tls_scan) for name in names})
    _conclude(feature_problems(tls_scan, requirement.params), features_unobserved(tls_scan, requirement.params))
    passed("as required: " + ", ".join(names))


@check("tls.server-cipher-order")
def test_tls_server_cipher_order(requirement, tls_scan, outcome):
    outcome.measure(server_cipher_order=tls_scan.server_cipher_order, protocol=tls_scan.server_order_protocol)
    _conclude(server_order_problems(tls_scan), server_order_unobserved(tls_scan))
    passed(f"{tls_scan.server_order_protocol}: the server imposes its suite order"
           if tls_scan.server_cipher_order else
           "fewer than two suites before TLS 1.3: nothing for a client to reorder")


@check("tls.certificate")
def test_tls_certificate(requirement, tls_scan, outcome):
    _conclude([], certificate_unobserved(tls_scan))
    cert = tls_scan.certificate
    outcome.measure(**{k: cert[k] for k in ("subject", "issuer", "key_type", "key_bits", "signature_hash",
                                            "not_before", "not_after", "san", "hostname_match", "trusted")})
    if requirement.params.get("trusted"):
        for warning in certificate_warnings(tls_scan):
            outcome.message(f"warning: {warning}")
    _conclude(certificate_problems(tls_scan, requirement.params), [])
    passed(f"{cert['key_type']} {cert['key_bits']}-bit key, {cert['signature_hash']} signature, "
           f"valid until {cert['not_after'][:10]}")


@check("tls.ocsp-stapling")
def test_tls_ocsp_stapling(requirement, tls_scan, outcome):
    _conclude([], certificate_unobserved(tls_scan))
    certs = [tls_scan.certificate, *tls_scan.other_certificates]
    outcome.measure(ocsp_responders=sorted({r for c in certs for r in c.get("ocsp_responders", [])}),
                    ocsp_stapled=[c.get("ocsp_stapled") for c in certs])
    if not ocsp_stapling_applies(tls_scan):
        not_applicable("the certificate names no OCSP responder, so there is no OCSP response to staple")
    _conclude(ocsp_stapling_problems(tls_scan), [])
    passed("an OCSP response is stapled")


@check("tls.mozilla")
def test_tls_mozilla(requirement, tls_scan, outcome):
    configuration = requirement.params["configuration"]
    outcome.measure(mozilla_guidelines=tls_scan.mozilla_guidelines, configuration=configuration)
    if "certificate_path_validation" in requirement.params["rules"]:
        for warning in certificate_warnings(tls_scan):
            outcome.message(f"warning: {warning}")
    _conclude(mozilla_problems(tls_scan, requirement.params), mozilla_unobserved(tls_scan, requirement.params))
    passed(f"as Mozilla {configuration} {tls_scan.mozilla_guidelines} asks: "
           + ", ".join(requirement.params["rules"]))
