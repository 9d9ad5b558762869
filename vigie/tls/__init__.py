"""TLS: one observation per target (an sslyze scan, and raw probes for encrypt-then-MAC and suite order) and
the pure evaluation of it against a requirement's params.

Modules: `scan` (the observation, `TlsScan`), `certificate` (the server certificate as data), `hello` (a raw
ClientHello and ServerHello), `mozilla` (sslyze's Mozilla configuration checker), `evaluate` (problems).
"""
from ..observations import observation
from .certificate import hostname_matches
from .evaluate import (
    FEATURES,
    Problem,
    cbc_suites,
    certificate_problems,
    certificate_unobserved,
    certificate_warnings,
    curves_used,
    encrypt_then_mac_problems,
    encrypt_then_mac_unobserved,
    feature_problems,
    features_unobserved,
    is_aead,
    is_forward_secret,
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
    unobserved,
)
from .scan import PROTOCOLS, TlsScan, scan_tls

__all__ = ["FEATURES", "PROTOCOLS", "Problem", "TlsScan", "cbc_suites", "certificate_problems",
           "certificate_unobserved", "certificate_warnings", "curves_used", "encrypt_then_mac_problems",
           "encrypt_then_mac_unobserved", "feature_problems", "features_unobserved", "hostname_matches",
           "is_aead", "is_forward_secret", "key_exchange_problems", "key_exchange_unobserved",
           "mozilla_problems", "mozilla_unobserved", "ocsp_stapling_applies", "ocsp_stapling_problems",
           "protocol_problems", "protocols_unobserved", "scan_tls", "server_order_problems",
           "server_order_unobserved", "suite_problems", "suites_unobserved", "unobserved"]


@observation("tls", kinds=("fhir",))
def observe_tls(target, store):
    return scan_tls(target.host, target.port, ca_file=target.ca_file)
