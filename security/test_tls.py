"""TLS: protocol versions, cipher suites, encrypt-then-MAC, key exchange, certificate, protocol features and
known flaws, OCSP stapling, Mozilla's configurations. The logic lives in vigie.tls (pure functions over the
target's one TLS scan); these checks record what was seen and state the verdict. HSTS is http.hsts."""
from vigie.checks import check, failed, not_applicable, passed
from vigie.errors import ObservationError
from vigie.tls import (
    FEATURES,
    cbc_suites,
    certificate_problems,
    curves_used,
    encrypt_then_mac_problems,
    encrypt_then_mac_undetermined,
    feature_problems,
    features_undetermined,
    key_exchange_problems,
    mozilla_problems,
    mozilla_undetermined,
    ocsp_stapling_applies,
    ocsp_stapling_problems,
    protocol_problems,
    protocols_undetermined,
    server_order_problems,
    server_order_undetermined,
    suite_problems,
)


def _conclude(problems) -> None:
    # the summary names every problem ("TLSv1.0 accepted"); their details become the outcome's messages
    if problems:
        failed("; ".join(p.summary for p in problems), *(p.detail for p in problems))


def _scan_errors(scan, *words) -> str:
    return "; ".join(e for e in scan.errors if any(w in e for w in words)) or "no reason given"


def _no_certificate(scan):
    raise ObservationError(f"the TLS scan retrieved no certificate: {_scan_errors(scan, 'certificate')}")


@check("tls.protocols")
def test_tls_protocols(requirement, tls_scan, outcome):
    outcome.measure(accepted_protocols=tls_scan.accepted_protocols,
                    untested_protocols=tls_scan.untested_protocols)
    problems = protocol_problems(tls_scan, requirement.params)
    unknown = protocols_undetermined(tls_scan, requirement.params)
    if unknown and not problems:
        # Without them the scan proves nothing either way: an error, not a pass.
        raise ObservationError(f"could not determine whether {', '.join(unknown)} is accepted: "
                               + "; ".join(e for e in tls_scan.errors if "cipher_suites" in e))
    _conclude(problems)
    passed(f"accepted: {', '.join(tls_scan.accepted_protocols)}")


@check("tls.cipher-suites")
def test_tls_cipher_suites(requirement, tls_scan, outcome):
    outcome.measure(cipher_suites=tls_scan.cipher_suites)
    _conclude(suite_problems(tls_scan, requirement.params))
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
    if "SSLv3" in cbc:
        failed("SSLv3: CBC suites accepted, and SSLv3 has no encrypt-then-MAC")
    problems = encrypt_then_mac_problems(tls_scan)
    unknown = encrypt_then_mac_undetermined(tls_scan)
    if unknown and not problems:
        raise ObservationError(f"could not determine encrypt-then-MAC for {', '.join(unknown)}: "
                               + _scan_errors(tls_scan, "encrypt_then_mac"))
    _conclude(problems)
    passed(f"encrypt-then-MAC agreed on the CBC suites of {', '.join(tls_scan.encrypt_then_mac)}"
           if cbc else "no CBC suite accepted")


@check("tls.key-exchange")
def test_tls_key_exchange(requirement, tls_scan, outcome):
    curves = curves_used(tls_scan)
    dh = sorted({k["bits"] for keys in tls_scan.key_exchange.values() for k in keys.values()
                 if k["type"] == "DH"})
    outcome.measure(curves=curves, dh_group_bits=dh)
    problems = key_exchange_problems(tls_scan, requirement.params)
    if "allowed_curves" in requirement.params and not tls_scan.curves and not problems \
            and any("elliptic_curves" in e for e in tls_scan.errors):
        raise ObservationError("could not list the elliptic curves: "
                               + _scan_errors(tls_scan, "elliptic_curves"))
    _conclude(problems)
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
    problems = feature_problems(tls_scan, requirement.params)
    unknown = features_undetermined(tls_scan, requirement.params)
    if unknown and not problems:
        why = "; ".join(tls_scan.errors) or "no reason given"
        raise ObservationError(f"could not determine {', '.join(unknown)}: {why}")
    _conclude(problems)
    passed("as required: " + ", ".join(names))


@check("tls.server-cipher-order")
def test_tls_server_cipher_order(requirement, tls_scan, outcome):
    outcome.measure(server_cipher_order=tls_scan.server_cipher_order, protocol=tls_scan.server_order_protocol)
    if server_order_undetermined(tls_scan):
        raise ObservationError("could not test the server's suite order: "
                               + _scan_errors(tls_scan, "server cipher order"))
    _conclude(server_order_problems(tls_scan))
    passed(f"{tls_scan.server_order_protocol}: the server imposes its suite order"
           if tls_scan.server_cipher_order else
           "fewer than two suites before TLS 1.3: nothing for a client to reorder")


@check("tls.certificate")
def test_tls_certificate(requirement, tls_scan, outcome):
    cert = tls_scan.certificate
    if not cert:
        _no_certificate(tls_scan)
    outcome.measure(**{k: cert[k] for k in ("subject", "issuer", "key_type", "key_bits", "signature_hash",
                                            "not_before", "not_after", "san", "hostname_match", "trusted")})
    _conclude(certificate_problems(tls_scan, requirement.params))
    passed(f"{cert['key_type']} {cert['key_bits']}-bit key, {cert['signature_hash']} signature, "
           f"valid until {cert['not_after'][:10]}")


@check("tls.ocsp-stapling")
def test_tls_ocsp_stapling(requirement, tls_scan, outcome):
    if not tls_scan.certificate:
        _no_certificate(tls_scan)
    certs = [tls_scan.certificate, *tls_scan.other_certificates]
    outcome.measure(ocsp_responders=sorted({r for c in certs for r in c.get("ocsp_responders", [])}),
                    ocsp_stapled=[c.get("ocsp_stapled") for c in certs])
    if not ocsp_stapling_applies(tls_scan):
        not_applicable("the certificate names no OCSP responder, so there is no OCSP response to staple")
    _conclude(ocsp_stapling_problems(tls_scan))
    passed("an OCSP response is stapled")


@check("tls.mozilla")
def test_tls_mozilla(requirement, tls_scan, outcome):
    configuration = requirement.params["configuration"]
    outcome.measure(mozilla_guidelines=tls_scan.mozilla_guidelines, configuration=configuration)
    if why := mozilla_undetermined(tls_scan, requirement.params):
        raise ObservationError(f"Mozilla {configuration} check incomplete: {why}")
    _conclude(mozilla_problems(tls_scan, requirement.params))
    passed(f"as Mozilla {configuration} {tls_scan.mozilla_guidelines} asks: "
           + ", ".join(requirement.params["rules"]))
