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
    curves_used,
    encrypt_then_mac_problems,
    encrypt_then_mac_undetermined,
    feature_problems,
    features_undetermined,
    is_aead,
    is_forward_secret,
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
from .scan import PROTOCOLS, TlsScan, scan_tls

__all__ = ["FEATURES", "PROTOCOLS", "Problem", "TlsScan", "cbc_suites", "certificate_problems", "curves_used",
           "encrypt_then_mac_problems", "encrypt_then_mac_undetermined", "feature_problems",
           "features_undetermined", "hostname_matches", "is_aead", "is_forward_secret",
           "key_exchange_problems", "mozilla_problems", "mozilla_undetermined", "ocsp_stapling_applies",
           "ocsp_stapling_problems", "protocol_problems", "protocols_undetermined", "scan_tls",
           "server_order_problems", "server_order_undetermined", "suite_problems"]


@observation("tls", kinds=("fhir",))
def observe_tls(target, store):
    return scan_tls(target.host, target.port, ca_file=target.ca_file)
