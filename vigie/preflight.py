"""Pre-flight: before a campaign, one quick look at each FHIR target (under 2 s in all) for what would make every
check of the run an error for a reason on the user's side: nothing listening at the URL, a certificate the
given CA does not vouch for, a token the server refuses. Each finding is one line with what to do.

A certificate that fails verification for another reason (expired, for another name) stops it too: every
HTTP check would end in error over it. What the campaign itself must judge (a handshake the server refuses, a
slow or broken answer) is noted and left to the checks.
"""
from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

CONNECT_TIMEOUT_S = 1.0
TOTAL_S = 1.8
STATUS_LINE_MAX = 1024
# OpenSSL's reasons when the chain does not lead to a CA the client trusts: a missing or stale --ca-file
UNTRUSTED = ("unable to get local issuer certificate", "self-signed certificate", "self signed certificate",
             "unable to verify the first certificate", "unable to get issuer certificate")
PROBE = "Patient?_count=1"   # one authenticated read: a search every practice system serves


@dataclass
class Finding:
    target: str
    ok: bool          # False: the run stops here (unless the user asks to run anyway)
    text: str

    def line(self) -> str:
        return f"pre-flight {self.target}: {self.text}"


def check_target(target, total_s: float = TOTAL_S) -> list[Finding]:
    """The findings for one FHIR target, in order (connection, TLS, token); stops at the first blocking one."""
    deadline = time.monotonic() + total_s
    parts = urlsplit(target.url)
    host, port = parts.hostname, target.port
    found = []

    def note(ok: bool, text: str) -> list[Finding]:
        found.append(Finding(target.id, ok, text))
        return found

    try:
        sock = socket.create_connection((host, port), timeout=min(CONNECT_TIMEOUT_S, _left(deadline)))
    except OSError as exc:
        return note(False, f"cannot connect to {host}:{port} ({_why(exc)}): is the server running and the URL "
                           "right?")
    try:
        note(True, f"connected to {host}:{port}")
        if parts.scheme == "https":
            sock.settimeout(_left(deadline))
            context = ssl.create_default_context(cafile=target.ca_file) if target.ca_file \
                else ssl.create_default_context()
            try:
                sock = context.wrap_socket(sock, server_hostname=host)
            except ssl.SSLCertVerificationError as exc:
                reason = exc.verify_message or str(exc)
                if any(r in reason for r in UNTRUSTED):
                    where = f"the CA file {target.ca_file}" if target.ca_file else "the system's CAs"
                    return note(False, f"certificate not trusted ({reason}) by {where}: give the CA that signed the "
                                       "server's certificate with --ca-file (ca_file in vigie.toml)")
                # expired, for another name, too weak: every HTTP check would end in error over it
                return note(False, f"certificate verification failed ({reason}): no HTTP check can run over it; "
                                   "fix the certificate or the URL's host name (--run-anyway runs the TLS checks, "
                                   "which judge it)")
            except (OSError, ssl.SSLError) as exc:
                return note(True, f"no TLS session ({_why(exc)}): the TLS checks will judge it")
            note(True, "certificate trusted" + (f" (CA file {target.ca_file})" if target.ca_file else ""))
        return _token(sock, target, parts, deadline, note)
    finally:
        sock.close()


def _token(sock, target, parts, deadline: float, note) -> list[Finding]:
    """One authenticated search; only its status line is read."""
    path = parts.path.rstrip("/") + "/" + PROBE
    headers = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc.rsplit('@', 1)[-1]}",
               "Accept: application/fhir+json", "User-Agent: vigie", "Connection: close"]
    if target.token:
        headers.append(f"Authorization: Bearer {target.token}")
    try:
        sock.settimeout(_left(deadline))
        sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode("latin-1", "replace"))
        status = _status(sock, deadline)
    except (OSError, ValueError) as exc:
        return note(True, f"GET {PROBE} got no answer ({_why(exc)}): the checks will judge it")
    if status is None:
        return note(True, f"GET {PROBE}: the answer is not HTTP: the checks will judge it")
    if status in (401, 403) and target.token:
        return note(False, f"the server refused the token ({status} on GET {PROBE}): check --token (token in "
                           "vigie.toml)")
    if status in (401, 403):
        return note(False, f"the server asks for a token ({status} on GET {PROBE}): give one with --token "
                           "(token in vigie.toml)")
    if 200 <= status < 300:
        return note(True, f"token accepted (GET {PROBE}: {status})" if target.token
                    else f"GET {PROBE} answered {status} without a token")
    return note(True, f"GET {PROBE} answered {status}: the token is not confirmed, the checks will judge it")


def _status(sock, deadline: float) -> int | None:
    """The status code of the answer's first line, read within the deadline."""
    data = b""
    while b"\n" not in data and len(data) < STATUS_LINE_MAX:
        sock.settimeout(_left(deadline))
        chunk = sock.recv(STATUS_LINE_MAX)
        if not chunk:
            break
        data += chunk
    fields = data.split(b"\n", 1)[0].split()
    if len(fields) >= 2 and fields[0].startswith(b"HTTP/") and fields[1].isdigit():
        return int(fields[1])
    return None


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("pre-flight time is up")
    return left


def _why(exc: BaseException) -> str:
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timed out"
    text = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    return "".join(c if c.isprintable() else "?" for c in str(text))[:200]


def preflight(targets) -> list[Finding]:
    """The findings for every FHIR target of the campaign."""
    return [f for t in targets if t.kind == "fhir" for f in check_target(t)]
