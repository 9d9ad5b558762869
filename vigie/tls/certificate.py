"""The server certificate as the TLS checks need it: key, signature hash, validity, names, trust, OCSP."""
from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID
from cryptography.x509.verification import DNSName, IPAddress, PolicyBuilder, Store, VerificationError


def describe(deployment, server_name: str, custom_ca: bool) -> dict:
    """The leaf as the checks need it. Trust comes from sslyze (cryptography's web-PKI verifier, which checks
    the name too); the name match is also computed here on its own so that a report can tell a wrong name
    from an untrusted chain."""
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
               if (p.trust_store.name == "Supplied CA file") == custom_ca]
    trusted_by = [p.trust_store.name for p in results if p.was_validation_successful]
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
        "trust_store": "ca_file" if custom_ca else "public",
        "trusted": bool(trusted_by),
        "trust_error": None if trusted_by else "; ".join(
            sorted({f"{p.trust_store.name}: {p.validation_error}" for p in results})) or "no trust store",
        "untrusted_because": None if trusted_by else _why_untrusted(chain, results, dns, ips, hostname_match),
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


def _why_untrusted(chain, results, dns: list[str], ips: list[str], hostname_match: bool) -> list[str]:
    """Why path validation failed, in a reader's words: "expired", "not yet valid", "name", or "chain" (the
    issuers themselves). The verifier answers one failure for all; a chain that verifies against the same
    store at the middle of the leaf's validity, for a name the leaf carries, is trusted, and what failed is
    then the leaf's time or name."""
    leaf, now = chain[0], dt.datetime.now(dt.UTC)
    causes = (["expired"] if now > leaf.not_valid_after_utc else
              ["not yet valid"] if now < leaf.not_valid_before_utc else []) + ([] if hostname_match else ["name"])
    paths = [getattr(p.trust_store, "path", None) for p in results]
    if not causes or not (dns or ips) or not all(paths):
        return ["chain"]
    middle = leaf.not_valid_before_utc + (leaf.not_valid_after_utc - leaf.not_valid_before_utc) / 2
    for path in paths:
        try:
            # a name the leaf carries ("*.example.fr" stands for one of its hosts; a malformed one: ValueError)
            name = IPAddress(ipaddress.ip_address(ips[0])) if ips else DNSName(dns[0].replace("*", "vigie", 1))
            store = Store(x509.load_pem_x509_certificates(Path(path).read_bytes()))
            PolicyBuilder().store(store).time(middle).build_server_verifier(name).verify(leaf, list(chain[1:]))
            return causes
        except (VerificationError, ValueError, OSError):
            continue
    return ["chain"]


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


