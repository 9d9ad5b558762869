"""The server certificate as the TLS checks need it: key, signature hash, validity, names, trust, OCSP."""
from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID
from cryptography.x509.verification import DNSName, IPAddress, PolicyBuilder, Store, VerificationError
from nassl import _nassl
from nassl._nassl import X509
from nassl.cert_chain_verifier import CertificateChainVerificationFailed, CertificateChainVerifier


def describe(deployment, server_name: str, ca_file: str | None = None) -> dict:
    """The leaf as the checks need it. Trust comes from sslyze (cryptography's web-PKI verifier, which checks
    the name too), except that a CA the user supplied is judged as OpenSSL judges it (see `_trust`); the name
    match is also computed here on its own so that a report can tell a wrong name from an untrusted chain."""
    chain = deployment.received_certificate_chain
    leaf = chain[0]
    key_type, key_bits = _key(leaf.public_key())
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = san.get_values_for_type(x509.DNSName)
        ips = [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        dns, ips = [], []
    # With a CA file, trust means "trusted by that CA"; without, "trusted by a public store sslyze ships".
    results = [p for p in deployment.path_validation_results
               if (p.trust_store.name == "Supplied CA file") == bool(ca_file)]
    hostname_match = hostname_matches(server_name, dns, ips)
    return {
        "subject": leaf.subject.rfc4514_string(),
        "issuer": leaf.issuer.rfc4514_string(),
        "key_type": key_type,
        "key_bits": key_bits,
        "signature_algorithm": _signature_algorithm(leaf),
        "signature_hash": _hash(leaf),
        "not_before": leaf.not_valid_before_utc.isoformat(),
        "not_after": leaf.not_valid_after_utc.isoformat(),
        "san": dns + ips,
        "hostname": server_name,
        "hostname_match": hostname_match,
        "trust_store": "ca_file" if ca_file else "public",
        **_trust(chain, results, ca_file, server_name, dns, ips, hostname_match),
        # Signatures of the certificates the server sends above the leaf (a self-signed root's own
        # signature protects nothing, so it is left out).
        "chain": [{"subject": c.subject.rfc4514_string(), "signature_hash": _hash(c)}
                  for c in chain[1:] if c.subject != c.issuer],
        "curve": leaf.public_key().curve.name if key_type == "EC" else None,
        "lifespan_days": (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days,
        # Stapling can only be asked of a certificate that names an OCSP responder.
        "ocsp_responders": _ocsp_responders(leaf),
        "ocsp_must_staple": deployment.leaf_certificate_has_must_staple_extension,
        "ocsp_stapled": deployment.ocsp_response is not None,
    }


def _trust(chain, results, ca_file: str | None, server_name: str, dns: list[str], ips: list[str],
           hostname_match: bool) -> dict:
    """trusted, trust_error, untrusted_because and ca_file_warning.

    The strict verifier also holds the trust anchors to the web PKI's CA profile. A CA the user supplied with
    --ca-file that lacks it (no keyUsage, most often) is the user's choice, and OpenSSL (curl, testssl.sh)
    accepts it: the server's chain is then judged as OpenSSL judges it against that CA, and still by the
    strict verifier in everything else (the CA given the profile it lacks), and the objection to the user's
    CA becomes a warning instead of the server's failure."""
    if any(p.was_validation_successful for p in results):
        return {"trusted": True, "trust_error": None, "untrusted_because": None, "ca_file_warning": None}
    error = "; ".join(sorted({f"{p.trust_store.name}: {p.validation_error}" for p in results})) or "no trust store"
    leaf, now = chain[0], dt.datetime.now(dt.UTC)
    causes = (["expired"] if now > leaf.not_valid_after_utc else
              ["not yet valid"] if now < leaf.not_valid_before_utc else []) + ([] if hostname_match else ["name"])
    # the public stores hold hundreds of roots: read them only when a cause is to be found
    anchors = [c for p in results for c in _certificates(getattr(p.trust_store, "path", None))] \
        if ca_file or causes else []
    warning = None
    gaps = {c: _ca_profile_gaps(c) for c in anchors} if ca_file else {}
    if any(gaps.values()):
        warning = (f"the CA file you supplied ({ca_file}) holds "
                   + "; ".join(f"{c.subject.rfc4514_string()}, with {', '.join(g)}" for c, g in gaps.items() if g)
                   + f": a strict verifier refuses it as an authority ({error}); OpenSSL, and so testssl.sh or "
                   "curl, accept it. This concerns the CA file, not the server")
        anchors = [_as_ca(c) if gaps[c] else c for c in anchors]
        if _openssl_verifies(chain, ca_file) and _verifies(chain, anchors, now, server_name):
            return {"trusted": True, "trust_error": None, "untrusted_because": None,
                    "ca_file_warning": warning + "; the server's chain was judged as OpenSSL judges it"}
    return {"trusted": False, "trust_error": error, "ca_file_warning": warning,
            "untrusted_because": _why_untrusted(chain, anchors, causes, dns, ips)}


def _why_untrusted(chain, anchors: list[x509.Certificate], causes: list[str], dns: list[str],
                   ips: list[str]) -> list[str]:
    """Why path validation failed, in a reader's words: "expired", "not yet valid", "name", or "chain" (the
    issuers themselves). The verifier answers one failure for all; a chain that verifies against the same
    anchors at the middle of the leaf's validity, for a name the leaf carries, is trusted, and what failed is
    then the leaf's time or name (`causes`)."""
    leaf = chain[0]
    if not causes or not (dns or ips) or not anchors:
        return ["chain"]
    middle = leaf.not_valid_before_utc + (leaf.not_valid_after_utc - leaf.not_valid_before_utc) / 2
    # a name the leaf carries ("*.example.fr" stands for one of its hosts)
    return causes if _verifies(chain, anchors, middle, ips[0] if ips else dns[0].replace("*", "vigie", 1)) \
        else ["chain"]


def _verifies(chain, anchors: list[x509.Certificate], when: dt.datetime, name: str) -> bool:
    """The strict (web PKI) verifier's verdict on the chain the server sent, for `name` at `when`."""
    try:
        try:
            subject = IPAddress(ipaddress.ip_address(name))
        except ValueError:
            subject = DNSName(name)   # a malformed name: ValueError, below
        verifier = PolicyBuilder().store(Store(anchors)).time(when).build_server_verifier(subject)
        verifier.verify(chain[0], list(chain[1:]))
    except (VerificationError, ValueError):
        return False
    return True


def _openssl_verifies(chain, ca_file: str) -> bool:
    """OpenSSL's X509_verify_cert on the chain the server sent, with the CA file as its trust store, now (no
    name: `_verifies` checks it)."""
    pem = [c.public_bytes(serialization.Encoding.PEM).decode() for c in chain]
    try:
        CertificateChainVerifier.from_file(Path(ca_file)).verify([X509(p) for p in pem])
    except (CertificateChainVerificationFailed, OSError, ValueError, _nassl.OpenSSLError):
        return False
    return True


def _certificates(path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(Path(path).read_bytes()) if path else []
    except (OSError, ValueError):
        return []


def _ca_profile_gaps(cert: x509.Certificate) -> list[str]:
    """What a web-PKI verifier asks of an authority's certificate and this one lacks."""
    gaps = []
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        if not constraints.value.ca:
            gaps.append("basicConstraints saying it is no CA")
        elif not constraints.critical:
            gaps.append("a non-critical basicConstraints")
    except x509.ExtensionNotFound:
        gaps.append("no basicConstraints extension")
    try:
        if not cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign:
            gaps.append("a keyUsage without keyCertSign")
    except x509.ExtensionNotFound:
        gaps.append("no keyUsage extension")
    return gaps


def _as_ca(cert: x509.Certificate) -> x509.Certificate:
    """The same authority (name, key, validity, other extensions) with the CA profile it lacks. As a trust
    anchor only its name and key count, so it is signed with a throwaway key."""
    builder = (x509.CertificateBuilder().subject_name(cert.subject).issuer_name(cert.issuer)
               .public_key(cert.public_key()).serial_number(cert.serial_number)
               .not_valid_before(cert.not_valid_before_utc).not_valid_after(cert.not_valid_after_utc))
    path_length = None
    for ext in cert.extensions:
        if isinstance(ext.value, x509.BasicConstraints):
            path_length = ext.value.path_length if ext.value.ca else None
        elif not isinstance(ext.value, x509.KeyUsage):
            builder = builder.add_extension(ext.value, ext.critical)
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
    builder = builder.add_extension(x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
        critical=True)
    return builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())


def _ocsp_responders(cert: x509.Certificate) -> list[str]:
    try:
        access = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    return [d.access_location.value for d in access
            if d.access_method == AuthorityInformationAccessOID.OCSP
            and isinstance(d.access_location, x509.UniformResourceIdentifier)]


def _key(key) -> tuple[str, int]:
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    return type(key).__name__, 0


def _signature_algorithm(cert: x509.Certificate) -> str:
    return getattr(cert.signature_algorithm_oid, "_name", None) or cert.signature_algorithm_oid.dotted_string


def _hash(cert: x509.Certificate) -> str | None:
    """The signature's hash; EdDSA hashes internally (SHA-512 for Ed25519, SHAKE256 for Ed448)."""
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    if algorithm is not None:
        return algorithm.name
    return {"ed25519": "sha512", "ed448": "shake256"}.get(_signature_algorithm(cert).lower())


def hostname_matches(name: str, dns_names: list[str], ip_addresses: list[str]) -> bool:
    """RFC 6125 matching on the SAN only (no common-name fallback, as browsers do): an IP address against the
    IP entries, a DNS name against the DNS entries with a wildcard allowed as the whole leftmost label."""
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        ip = None
    if ip is not None:
        return any(ipaddress.ip_address(a) == ip for a in ip_addresses)
    labels = name.lower().rstrip(".").split(".")
    for pattern in dns_names:
        want = pattern.lower().rstrip(".").split(".")
        if len(want) != len(labels):
            continue
        if want[0] == "*" and len(want) > 2 and want[1:] == labels[1:]:
            return True
        if want == labels:
            return True
    return False


