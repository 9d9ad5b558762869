"""The TLS observation: one sslyze scan per target, completed by raw probes for encrypt-then-MAC and the
server's suite order."""
from __future__ import annotations

import re
import socket
import ssl
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nassl.ephemeral_key_info import DhEphemeralKeyInfo, EcDhEphemeralKeyInfo
from sslyze import (
    Scanner,
    ServerNetworkConfiguration,
    ServerNetworkLocation,
    ServerScanRequest,
    ServerScanStatusEnum,
)
from sslyze.__version__ import __version__ as SSLYZE_VERSION
from sslyze.errors import ServerHostnameCouldNotBeResolved
from sslyze.plugins.certificate_info.implementation import CertificateInfoExtraArgument
from sslyze.plugins.scan_commands import ScanCommand
from sslyze.scanner.models import ScanCommandsExtraArguments
from sslyze.scanner.scan_command_attempt import ScanCommandAttemptStatusEnum

from ..errors import ObservationError
from . import hello, mozilla
from .certificate import describe

PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")
_SUITE_COMMANDS = dict(zip(PROTOCOLS, (
    ScanCommand.SSL_2_0_CIPHER_SUITES, ScanCommand.SSL_3_0_CIPHER_SUITES, ScanCommand.TLS_1_0_CIPHER_SUITES,
    ScanCommand.TLS_1_1_CIPHER_SUITES, ScanCommand.TLS_1_2_CIPHER_SUITES, ScanCommand.TLS_1_3_CIPHER_SUITES)))
# The parts of a scan, by the name `TlsScan.incomplete` gives them when they did not complete: sslyze's
# command names, and vigie's own probes.
SUITE_PARTS = {protocol: command.value for protocol, command in _SUITE_COMMANDS.items()}
ENCRYPT_THEN_MAC_PART = "encrypt_then_mac {protocol}"   # the raw probe, per protocol with CBC suites
SERVER_ORDER_PART = "server_cipher_order"               # the raw probe of the suite order
# HTTP headers and session resumption are left out: the HTTP checks observe headers themselves (HSTS is
# http.hsts), and no requirement asks about resumption yet (SESSION_RESUMPTION adds about ten connections).
_COMMANDS = {*_SUITE_COMMANDS.values(), *mozilla.COMMANDS, ScanCommand.CERTIFICATE_INFO,
             ScanCommand.ELLIPTIC_CURVES, ScanCommand.TLS_COMPRESSION, ScanCommand.SESSION_RENEGOTIATION,
             ScanCommand.TLS_FALLBACK_SCSV, ScanCommand.HEARTBLEED, ScanCommand.ROBOT,
             ScanCommand.OPENSSL_CCS_INJECTION, ScanCommand.TLS_1_3_EARLY_DATA,
             ScanCommand.TLS_EXTENDED_MASTER_SECRET}
# On loopback a full scan takes ~0.6 s whatever the limit (3 to 20 measured): sslyze's own pacing dominates.
# Over a real network the ~530 cipher-suite handshakes dominate, so allow a few more than sslyze's
# default of 5.
_CONNECTIONS = 10


@dataclass
class TlsScan:
    """What one scan saw. None in a field means "not determined": its scan command failed. Every part of the
    scan that did not complete is in `incomplete` (part -> why), and a rule that reads it cannot pass."""

    host: str
    port: int
    server_name: str
    accepted_protocols: list[str] = field(default_factory=list)
    cipher_suites: dict[str, list[str]] = field(default_factory=dict)   # protocol -> IANA names accepted
    # protocol -> suite -> the ephemeral key the server sent with it: {"type": "DH", "bits": 1024} or
    # {"type": "ECDH", "curve": "X25519", "bits": 253}
    key_exchange: dict[str, dict[str, dict]] = field(default_factory=dict)
    curves: list[str] = field(default_factory=list)                      # groups accepted one by one
    certificate: dict = field(default_factory=dict)           # what a TLS 1.3 (or the default) client gets
    other_certificates: list[dict] = field(default_factory=list)  # other deployments (RSA beside ECDSA...)
    # protocol -> whether the server agreed to encrypt-then-MAC on its CBC suites; only protocols where a
    # CBC suite was accepted appear (empty: no CBC suite at all)
    encrypt_then_mac: dict[str, bool] = field(default_factory=dict)
    # whether the server picks the suite by its own order rather than the client's, tested on the highest
    # protocol before TLS 1.3 with two suites or more (None: not tested, see `server_order_protocol`)
    server_cipher_order: bool | None = None
    server_order_protocol: str | None = None
    compression: bool | None = None
    secure_renegotiation: bool | None = None
    client_renegotiation: bool | None = None    # True: client-initiated renegotiation accepted (DoS)
    fallback_scsv: bool | None = None
    heartbleed: bool | None = None
    robot: str | None = None                    # sslyze's RobotScanResultEnum value
    ccs_injection: bool | None = None
    early_data: bool | None = None
    extended_master_secret: bool | None = None
    # Mozilla configuration -> {"issues": {key: message}} or {"error": reason}
    mozilla: dict[str, dict] = field(default_factory=dict)
    mozilla_guidelines: str = ""
    # part of the scan (a SUITE_PARTS value, "certificate_info", "elliptic_curves", the probes...) -> why it
    # did not complete
    incomplete: dict[str, str] = field(default_factory=dict)
    scanner: str = f"sslyze {SSLYZE_VERSION}"
    duration_s: float = 0.0

    @property
    def untested_protocols(self) -> list[str]:
        """Protocols whose cipher-suite command did not complete: whether they are accepted is unknown."""
        return [p for p in PROTOCOLS if SUITE_PARTS[p] in self.incomplete]

    def to_json(self) -> dict:
        return {**asdict(self), "untested_protocols": self.untested_protocols}


def scan_tls(host: str, port: int, server_name: str | None = None, ca_file: str | None = None,
             timeout: float = 10) -> TlsScan:
    """Scan host:port with sslyze. `timeout` bounds every connection (not the whole scan); a target that
    cannot be reached, or that completes no handshake at all, raises ObservationError."""
    where = f"{host}:{port}"
    started = time.monotonic()
    try:
        location = ServerNetworkLocation(hostname=host, port=port)
    except ServerHostnameCouldNotBeResolved:
        raise ObservationError(f"TLS scan of {where} failed: cannot resolve {host}") from None
    sni = server_name or host
    _probe(location.ip_address, port, sni, timeout, where)
    # One attempt per connection: sslyze's default of three, with back-off, multiplies every wait on a
    # silent or flaky port.
    network = ServerNetworkConfiguration(tls_server_name_indication=sni, network_timeout=timeout,
                                         network_max_retries=1)
    if ca_file and not Path(ca_file).is_file():
        raise ObservationError(f"TLS scan of {where} failed: CA file {ca_file} not found")
    extra = ScanCommandsExtraArguments(
        certificate_info=CertificateInfoExtraArgument(custom_ca_file=Path(ca_file)) if ca_file else None)
    request = ServerScanRequest(server_location=location, network_configuration=network,
                                scan_commands=_COMMANDS, scan_commands_extra_arguments=extra)
    scanner = Scanner(per_server_concurrent_connections_limit=_CONNECTIONS, concurrent_server_scans_limit=1)
    scanner.queue_scans([request])
    # Drain the generator: sslyze joins its threads only after the last result (next() would leak them).
    (result,) = list(scanner.get_results())
    if result.scan_status == ServerScanStatusEnum.ERROR_NO_CONNECTIVITY:
        raise ObservationError(f"TLS scan of {where} failed: {_reason(result.connectivity_error_trace)}")

    scan = TlsScan(host=host, port=port, server_name=sni)
    attempts = result.scan_result

    def done(command: ScanCommand):
        """The command's result, or None after noting in `incomplete` why it did not complete."""
        attempt = getattr(attempts, command.value)
        if attempt.status == ScanCommandAttemptStatusEnum.COMPLETED:
            return attempt.result
        if attempt.status == ScanCommandAttemptStatusEnum.ERROR:
            scan.incomplete[command.value] = f"{attempt.error_reason.value}: {_reason(attempt.error_trace)}"
        else:
            scan.incomplete[command.value] = f"not run ({attempt.status.value})"
        return None

    openssl_names: dict[str, dict[str, str]] = {}   # protocol -> IANA name -> OpenSSL name, for the probe
    for protocol, command in _SUITE_COMMANDS.items():
        suites = done(command)
        if suites is not None and (why := _unanswered(suites)):
            scan.incomplete[command.value] = why
        if suites is not None and suites.accepted_cipher_suites:
            scan.accepted_protocols.append(protocol)
            accepted = suites.accepted_cipher_suites
            scan.cipher_suites[protocol] = [s.cipher_suite.name for s in accepted]
            openssl_names[protocol] = {s.cipher_suite.name: s.cipher_suite.openssl_name for s in accepted}
            scan.key_exchange[protocol] = {s.cipher_suite.name: key for s in accepted
                                           if (key := _ephemeral(s.ephemeral_key))}
    if not scan.accepted_protocols and not scan.untested_protocols:
        raise ObservationError(f"TLS scan of {where} failed: no protocol version completed a handshake")

    if r := done(ScanCommand.CERTIFICATE_INFO):
        if not r.certificate_deployments:
            scan.incomplete[ScanCommand.CERTIFICATE_INFO.value] = "the server sent no certificate"
        else:
            scan.certificate, *scan.other_certificates = [describe(d, sni, ca_file)
                                                          for d in r.certificate_deployments]
            if why := _missed_deployment(scan):
                scan.incomplete[ScanCommand.CERTIFICATE_INFO.value] = why
    if (r := done(ScanCommand.ELLIPTIC_CURVES)) and r.supported_curves:
        scan.curves = [c.name for c in r.supported_curves]
    if r := done(ScanCommand.TLS_COMPRESSION):
        scan.compression = r.supports_compression
    if r := done(ScanCommand.SESSION_RENEGOTIATION):
        scan.secure_renegotiation = r.supports_secure_renegotiation
        scan.client_renegotiation = r.is_vulnerable_to_client_renegotiation_dos
    if r := done(ScanCommand.TLS_FALLBACK_SCSV):
        scan.fallback_scsv = r.supports_fallback_scsv
    if r := done(ScanCommand.HEARTBLEED):
        scan.heartbleed = r.is_vulnerable_to_heartbleed
    if r := done(ScanCommand.ROBOT):
        scan.robot = r.robot_result.value
    if r := done(ScanCommand.OPENSSL_CCS_INJECTION):
        scan.ccs_injection = r.is_vulnerable_to_ccs_injection
    if r := done(ScanCommand.TLS_1_3_EARLY_DATA):
        scan.early_data = r.supports_early_data
    if r := done(ScanCommand.TLS_EXTENDED_MASTER_SECRET):
        scan.extended_master_secret = r.supports_ems_extension
    scan.mozilla = mozilla.check_configurations(result)
    scan.mozilla_guidelines = mozilla.guidelines_version()
    _probe_encrypt_then_mac(scan, location.ip_address, openssl_names, timeout)
    _probe_server_order(scan, location.ip_address, openssl_names, timeout)
    scan.duration_s = round(time.monotonic() - started, 3)
    return scan


def _unanswered(suites) -> str | None:
    """sslyze counts a suite whose handshake timed out as rejected ("there's no easy way to differentiate this
    error from a network glitch"). Silence is no refusal seen: whether those suites are accepted is unknown,
    and so the protocol's suite list is incomplete."""
    silent = [s.cipher_suite.name for s in suites.rejected_cipher_suites if "timed out" in s.error_message]
    if not silent:
        return None
    if len(silent) == len(suites.rejected_cipher_suites) and not suites.accepted_cipher_suites:
        return "no hello of this protocol was answered within the timeout (a refusal or a network failure)"
    return (f"{len(silent)} suite(s) got no answer within the timeout, so whether they are accepted is "
            f"unknown: {', '.join(silent[:5])}{', ...' if len(silent) > 5 else ''}")


# suites before TLS 1.3 that a server can accept only with a certificate of that key type (ECDSA suites
# serve EdDSA keys too, RFC 8422)
_AUTHENTICATED_BY = {("RSA",): re.compile(r"^TLS_(RSA|DHE_RSA|ECDHE_RSA)_WITH_"),
                     ("EC", "Ed25519", "Ed448"): re.compile(r"^TLS_(ECDHE_ECDSA|ECDH_ECDSA|ECDH_RSA)_WITH_"),
                     ("DSA",): re.compile(r"^TLS_DHE_DSS_WITH_")}


def _missed_deployment(scan: TlsScan) -> str | None:
    """sslyze looks for each certificate deployment (ECDSA, RSA...) on its own connection and drops one whose
    handshake failed: a suite accepted with a key type that no retrieved certificate has shows a missed one."""
    kinds = {c["key_type"] for c in [scan.certificate, *scan.other_certificates]}
    suites = [s for p, names in scan.cipher_suites.items() if p != "TLSv1.3" for s in names]
    for key_types, pattern in _AUTHENTICATED_BY.items():
        shown = [s for s in suites if pattern.match(s)]
        if shown and not kinds & set(key_types):
            return (f"the server accepts {shown[0]}, which needs a certificate of key type {key_types[0]}, but none "
                    f"was retrieved (retrieved: {', '.join(sorted(kinds))}): a certificate deployment was missed")
    return None


def _ephemeral(key) -> dict | None:
    if isinstance(key, EcDhEphemeralKeyInfo):
        return {"type": "ECDH", "curve": key.curve_name, "bits": key.size}
    if isinstance(key, DhEphemeralKeyInfo):
        return {"type": "DH", "bits": key.size}
    return None


def _probe_encrypt_then_mac(scan: TlsScan, ip: str, openssl_names: dict[str, dict[str, str]],
                            timeout: float) -> None:
    """For each protocol before TLS 1.3 where CBC suites were accepted, offer exactly those suites with the
    encrypt_then_mac extension and see whether the ServerHello echoes it (RFC 7366 §2: only for CBC)."""
    codes = hello.suite_codes()
    for protocol in hello.VERSIONS:
        cbc = [name for name in scan.cipher_suites.get(protocol, []) if "_CBC_" in name]
        if not cbc:
            continue
        part = ENCRYPT_THEN_MAC_PART.format(protocol=protocol)
        offered = [codes[n] for name in cbc if (n := openssl_names[protocol].get(name)) in codes]
        if not offered:
            scan.incomplete[part] = (f"none of the CBC suites {', '.join(cbc)} is known to this OpenSSL, so "
                                     "none could be offered")
            continue
        try:
            answer = hello.exchange(ip, scan.port, protocol, offered, scan.server_name, timeout)
        except hello.HelloError as exc:
            scan.incomplete[part] = str(exc)
            continue
        if answer is None:
            scan.incomplete[part] = (f"the server refused a hello offering the CBC suites it accepted during "
                                     f"the scan ({', '.join(cbc)})")
            continue
        scan.encrypt_then_mac[protocol] = hello.EXT_ENCRYPT_THEN_MAC in answer.extensions


def _probe_server_order(scan: TlsScan, ip: str, openssl_names: dict[str, dict[str, str]],
                        timeout: float) -> None:
    """Offer two accepted suites in one order, then in the other: a server that imposes its order picks the
    same suite both times."""
    codes = hello.suite_codes()
    for protocol in reversed(hello.VERSIONS):
        accepted = scan.cipher_suites.get(protocol, [])
        known = [codes[n] for name in accepted if (n := openssl_names[protocol].get(name)) in codes]
        if len(known) < 2:
            if len(accepted) >= 2:
                scan.incomplete[SERVER_ORDER_PART] = (f"{protocol}: fewer than two of the accepted suites are "
                                                      "known to this OpenSSL, so none could be offered")
                return
            continue
        try:
            first = hello.exchange(ip, scan.port, protocol, known[:2], scan.server_name, timeout)
            second = hello.exchange(ip, scan.port, protocol, known[1::-1], scan.server_name, timeout)
        except hello.HelloError as exc:
            scan.incomplete[SERVER_ORDER_PART] = f"{protocol}: {exc}"
            return
        if first is None or second is None:
            scan.incomplete[SERVER_ORDER_PART] = (f"{protocol}: the server refused two suites it accepted "
                                                  "during the scan")
            return
        scan.server_order_protocol = protocol
        scan.server_cipher_order = first.cipher_suite == second.cipher_suite
        return


def _probe(ip: str, port: int, sni: str, timeout: float, where: str) -> None:
    """Fail within `timeout` where sslyze would wait much longer: its connectivity test tries about eleven
    handshakes, each allowed the full timeout, before concluding that a silent port does not speak TLS."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection((ip, port), timeout=timeout) as raw, \
                ctx.wrap_socket(raw, server_hostname=sni):
            pass
    except ssl.SSLError as exc:
        # the first bytes back are no TLS record at all (garbage, plain HTTP): sslyze would try every
        # version and suite against it for minutes
        if exc.reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNKNOWN_PROTOCOL"):
            raise ObservationError(f"TLS scan of {where} failed: the server does not answer in TLS "
                                   f"({exc.reason.lower().replace('_', ' ')})") from None
        # else it answered, maybe only in versions this Python refuses: sslyze's legacy client tries them
    except TimeoutError:
        raise ObservationError(f"TLS scan of {where} failed: no TLS handshake within {timeout:g} s") from None
    except OSError as exc:
        raise ObservationError(f"TLS scan of {where} failed: {exc.strerror or exc}") from None


def _reason(trace) -> str:
    if trace is None:
        return "unknown reason"
    exc = trace.exc_type.__name__ if trace.exc_type else "Error"
    return f"{exc}: {str(trace).strip() or 'no detail'}"
