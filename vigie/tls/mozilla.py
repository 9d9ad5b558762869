"""Mozilla's server-side TLS configurations, as checked by sslyze's own checker on the raw scan result.

The checker needs sslyze's result objects, so it runs at scan time; what it finds is kept in the scan as
plain data (configuration -> issue key -> message) and each requirement picks the issue keys of its rule
family. What the checker leaves out (HSTS, OCSP stapling) is checked elsewhere (http.hsts,
tls.ocsp-stapling).
"""
from __future__ import annotations

import json

from sslyze.mozilla_tls_profile.tls_config_checker import (
    SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
    MozillaTlsConfiguration,
    ServerNotCompliantWithTlsConfiguration,
    ServerScanResultIncomplete,
    TlsConfigurationEnum,
    check_server_against_tls_configuration,
)

CONFIGURATIONS = ("intermediate", "modern")
COMMANDS = SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER
# Every issue key sslyze 6's checker can raise, so that a test can prove each one belongs to a rule family
# of the profiles (a key no requirement names would be a finding nobody reports).
ISSUE_KEYS = (
    "tls_versions", "ciphersuites", "ciphers", "tls_curves", "ecdh_param_size", "dh_param_size",
    "certificate_path_validation", "certificate_types", "certificate_curves", "certificate_signatures",
    "rsa_key_size", "maximum_certificate_lifespan",
    "tls_vulnerability_compression", "tls_vulnerability_ccs_injection", "tls_vulnerability_fallback_scsv",
    "tls_vulnerability_heartbleed", "tls_vulnerability_robot", "tls_vulnerability_renegotiation",
    "tls_vulnerability_extended_master_secret",
)


def guidelines_version() -> str:
    """The version of Mozilla's guidelines that sslyze ships (5.7 in sslyze 6)."""
    try:   # sslyze keeps the file's path private: a later sslyze may move it
        return str(json.loads(MozillaTlsConfiguration._JSON_PROFILE_PATH.read_text())["version"])
    except (AttributeError, OSError, KeyError, ValueError):
        return "unknown"


def check_configurations(server_scan_result) -> dict[str, dict]:
    """{configuration: {"issues": {key: message}}} or {configuration: {"error": reason}} when the scan
    lacks a result the checker needs."""
    found = {}
    for name in CONFIGURATIONS:
        config = MozillaTlsConfiguration.get(TlsConfigurationEnum(name))
        try:
            check_server_against_tls_configuration(server_scan_result, config)
            found[name] = {"issues": {}}
        except ServerNotCompliantWithTlsConfiguration as exc:
            found[name] = {"issues": dict(sorted(exc.issues.items()))}
        except ServerScanResultIncomplete as exc:
            found[name] = {"error": str(exc)}
    return found
