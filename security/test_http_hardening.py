"""HTTP hardening: security headers, banners, CORS, framing, TRACE, plain HTTP, error bodies.

A check judges only answers that show what it looks at: a sample that could not be observed (vigie's token
refused, a refusal where personal data was asked for, a token that cannot be sent) leaves the check `error`,
unless a violation was seen on the other samples. When the target's certificate fails verification (the TLS
profiles report it), the public samples are still observed over that connection, unverified and without any
token, and the outcome says so; the samples that need the token are not sent.
"""
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from vigie.checks import check, failed, not_applicable, passed, undetermined
from vigie.disclosure import disclosed
from vigie.errors import ObservationError
from vigie.fhirrest import answered_resources
from vigie.http import CertificateRejected, TokenRefused

VERSION = re.compile(r"\d+\.\d+")
PROBE_ORIGIN = "https://vigie-cors-probe.invalid"
PLAIN_READ_CAP = 8192
PLAIN_WAIT_S = 3
REFUSED = (401, 403)
# what a TLS port answers to plain HTTP when it refuses it: 400 (nginx: "The plain HTTP request was sent to
# HTTPS port"; Apache and Go alike) or 426 Upgrade Required (RFC 9110 §15.5.22)
PLAIN_REFUSALS = (400, 426)


def _any_answer(response) -> str | None:
    return None


def _personal_data(response) -> str | None:
    """Personal data was served: a 200 carrying at least one resource (a refusal or an empty search shows
    nothing of the headers that go with personal data)."""
    if response.status_code != 200 or not answered_resources(response):
        return f"answered {response.status_code} without a resource: no personal data was served"
    return None


def _error_answer(response) -> str | None:
    if response.status_code < 400:
        return f"answered {response.status_code}, not an error"
    return None


def _reached(response) -> str | None:
    """Past access control: a refusal is the authorisation layer's answer, not the resource's."""
    if response.status_code in REFUSED:
        return f"was refused ({response.status_code}) before reaching the resource"
    return None


@dataclass(frozen=True)
class Sample:
    path: str
    token: bool                                 # sent with vigie's token
    shows: Callable = _any_answer               # why an answer does not show what the sample stands for


# the responses every header requirement looks at: public metadata, personal data, an error
SAMPLES = {"metadata": Sample("metadata", False),
           "personal-data": Sample("Patient?_count=1", True, _personal_data),
           "error": Sample("Patient/vigie-does-not-exist-0", True, _error_answer)}


class Observed:
    """The answers a check got, the samples it could not observe (and why), and the channel they came on."""

    def __init__(self, http):
        self.http, self.seen, self.missing, self.unverified = http, {}, {}, None

    def send(self, name: str, method: str, path: str, token, shows=_any_answer, **kwargs):
        """The answer to one sample, or None when it could not be observed (the reason is kept)."""
        try:
            response = self.http.request(method, path, auth=token, **kwargs)
        except TokenRefused as exc:
            self.missing[name] = str(exc)
            return None
        except CertificateRejected as exc:
            if token:
                self.missing[name] = (f"not sent: the certificate failed verification ({exc.reason}), and vigie "
                                      "sends no token over an unverified connection")
                return None
            self.unverified = exc.reason
            response = self.http.request_unverified(method, path, **kwargs)
        why = shows(response)
        if why:
            self.missing[name] = f"{method} {path} {why}"
            return None
        self.seen[name] = response
        return response

    def channel(self) -> str:
        if not self.unverified:
            return ""
        return (f" (observed over a connection whose certificate failed verification: {self.unverified}; "
                "sent without a token)")

    def failed(self, summary: str, *details: str):
        failed(summary + self.channel(), *details)

    def passed(self, summary: str, **measurements):
        """Passed only when every sample was observed; otherwise undetermined, naming what was missing."""
        if self.missing:
            observed = f"no violation on {', '.join(self.seen)}" if self.seen else "nothing else observed"
            undetermined("not observed: " + "; ".join(f"{name}: {why}" for name, why in self.missing.items())
                         + f" ({observed}{self.channel()})", not_observed=self.missing)
        passed(summary + self.channel(), **measurements)


def _samples(http, requirement) -> Observed:
    observed = Observed(http)
    for name in requirement.params.get("on", list(SAMPLES)):
        sample = SAMPLES[name]
        observed.send(name, "GET", sample.path, sample.token, sample.shows)
    return observed


@check("http.hsts")
def test_hsts(requirement, http, target, outcome):
    scheme = urlsplit(target.url).scheme
    if scheme != "https":
        not_applicable(f"the API is served over plain {scheme} ({target.url}): RFC 6797 §7.2 forbids "
                       "Strict-Transport-Security on plain-HTTP answers; serving plain HTTP is the finding, "
                       "reported by the plain-HTTP requirement (HTTP-09)")
    minimum = int(requirement.params.get("min_max_age", 31536000))
    observed = _samples(http, requirement)
    seen = {}
    for name, response in observed.seen.items():
        value = response.headers.get("Strict-Transport-Security")
        seen[name] = value
        if not value:
            observed.failed(f"no Strict-Transport-Security header on the {name} response")
        match = re.search(r"(?i)max-age\s*=\s*\"?(\d+)", value)
        if not (match and int(match.group(1)) >= minimum):
            observed.failed(f"Strict-Transport-Security max-age below {minimum} s on the {name} response: {value}")
    observed.passed(f"Strict-Transport-Security with max-age >= {minimum} s on {len(seen)} responses",
                    strict_transport_security=seen)


@check("http.header")
def test_header(requirement, http, outcome):
    header, contains = requirement.params["header"], requirement.params["contains"].lower()
    observed = _samples(http, requirement)
    seen = {}
    for name, response in observed.seen.items():
        value = response.headers.get(header)
        seen[name] = value
        if value is None:
            observed.failed(f"no {header} header on the {name} response")
        tokens = [t.strip().lower() for t in value.split(",")]
        if contains not in tokens:
            observed.failed(f"{header} is '{value}' on the {name} response, expected {contains}")
    observed.passed(f"{header} {contains} on {len(seen)} responses ({', '.join(seen)})", **{header: seen})


@check("http.banner")
def test_no_version_banner(requirement, http, outcome):
    headers = requirement.params.get("headers", ["Server", "X-Powered-By"])
    observed = _samples(http, requirement)
    seen = {}
    for response in observed.seen.values():
        for header in headers:
            if response.headers.get(header):
                seen[header] = response.headers[header]
    outcome.measure(banners=seen)
    leaking = {h: v for h, v in seen.items() if VERSION.search(v)}
    if leaking:
        observed.failed("software version disclosed: " + ", ".join(f"{h}: {v}" for h, v in leaking.items()))
    observed.passed(f"no version in {', '.join(headers)} on {len(observed.seen)} responses "
                    + (f"({seen})" if seen else "(absent)"))


@check("http.error-disclosure")
def test_errors_disclose_nothing(requirement, http, outcome):
    probes = {"not found": ("Patient/vigie-does-not-exist-0", {}),
              "bad parameter": ("Patient", {"birthdate": "not-a-date'\"<>"}),
              "unknown type": ("VigieUnknownType", {})}
    observed = Observed(http)
    statuses = {}
    for name, (path, params) in probes.items():
        response = observed.send(name, "GET", path, True, params=params)
        if response is None:
            continue
        statuses[name] = response.status_code
        found = disclosed(response.text[:65536])
        if found:   # whatever answered it, a refusal included
            observed.failed(f"the {name} error response discloses internals: '{found}'")
        why = _reached(response)
        if why:   # its body was judged all the same, but it is no error of the resource
            observed.seen.pop(name)
            observed.missing[name] = f"GET {path} {why}"
    errors = [name for name, status in statuses.items() if status >= 400 and name not in observed.missing]
    if not errors and not observed.missing:
        undetermined(f"no probe was answered with an error ({statuses}): no error body to judge")
    observed.passed(f"{len(errors)} error responses disclose no internals", statuses=statuses)


@check("http.cors")
def test_cors_never_any_origin_with_credentials(requirement, http, outcome):
    """A browser page from any site must not get credentialed access: no `*` or echoed origin with credentials."""
    probes = {
        "metadata": ("GET", "metadata", False, {"Origin": PROBE_ORIGIN}),
        "personal-data": ("GET", "Patient?_count=1", True, {"Origin": PROBE_ORIGIN}),
        "preflight": ("OPTIONS", "Patient", False, {"Origin": PROBE_ORIGIN, "Access-Control-Request-Method": "GET",
                                                     "Access-Control-Request-Headers": "authorization"}),
        "null origin": ("GET", "Patient?_count=1", True, {"Origin": "null"}),
    }
    observed = Observed(http)
    seen = {}
    for name, (method, path, token, headers) in probes.items():
        # where personal data is asked for, its answer must carry some: a server may add CORS headers to
        # its data answers only
        response = observed.send(name, method, path, token, _personal_data if token else _any_answer,
                                 headers=headers)
        if response is None:
            continue
        allow = response.headers.get("Access-Control-Allow-Origin")
        credentials = (response.headers.get("Access-Control-Allow-Credentials") or "").strip().lower() == "true"
        seen[name] = {"allow_origin": allow, "allow_credentials": credentials}
        if allow is None or not credentials:
            continue
        if allow.strip() == "*":
            observed.failed(f"{name}: Access-Control-Allow-Origin: * with credentials allowed")
        if allow.strip() == headers["Origin"]:
            observed.failed(f"{name}: the origin {headers['Origin']} is echoed back with credentials allowed "
                            "(any site may read)")
    observed.passed(f"no credentialed access for any origin on {len(seen)} probes", cors=seen)


@check("http.framing")
def test_framing_denied(requirement, http, outcome):
    observed = _samples(http, requirement)
    seen = {}
    for name, response in observed.seen.items():
        xfo = (response.headers.get("X-Frame-Options") or "").strip().upper()
        csp = response.headers.get("Content-Security-Policy") or ""
        ancestors = re.search(r"(?i)(?:^|;)\s*frame-ancestors\s+([^;]*)", csp)
        seen[name] = {"X-Frame-Options": xfo or None, "frame-ancestors": ancestors.group(1).strip() if ancestors
                      else None}
        by_csp = ancestors is not None and "*" not in ancestors.group(1)
        if not (xfo in ("DENY", "SAMEORIGIN") or by_csp):
            observed.failed(f"the {name} response may be framed by any site: no X-Frame-Options DENY/SAMEORIGIN "
                            "and no CSP frame-ancestors")
    observed.passed(f"framing denied on {len(seen)} responses", framing=seen)


@check("http.trace")
def test_trace_refused(requirement, http, outcome):
    marker = "vigie-trace-probe-7f3a"
    headers = {"X-Vigie-Trace": marker}
    observed = Observed(http)
    response = observed.send("TRACE", "TRACE", "metadata", False, headers=headers)
    if response is not None and response.status_code in REFUSED:
        # refused for want of credentials says nothing of the method: an authenticated TRACE is the one
        # that would echo them (cross-site tracing)
        response = observed.send("TRACE with vigie's token", "TRACE", "metadata", True, headers=headers)
    if response is None:
        undetermined("TRACE not observed: " + "; ".join(observed.missing.values()) + observed.channel())
    echoed = marker in response.text
    outcome.measure(status=response.status_code, echoed=echoed)
    if 200 <= response.status_code < 300:
        observed.failed(f"TRACE answered {response.status_code}" + (" and echoed the request back" if echoed else ""))
    if echoed:
        observed.failed(f"TRACE refused with {response.status_code}, but the request is echoed in the body")
    if response.status_code < 400:   # a redirect sends TRACE elsewhere: nothing shows it refused
        undetermined(f"TRACE answered {response.status_code}: neither served nor refused{observed.channel()}")
    observed.passed(f"TRACE refused with {response.status_code}")


def _plain_exchange(target, request: bytes) -> bytes:
    """What the API's port sends back to a plain-HTTP request, read for a few seconds at most. A port that
    cannot be reached is no observation (ObservationError); once connected, silence or a reset is an answer."""
    try:
        sock = socket.create_connection((target.host, target.port), timeout=PLAIN_WAIT_S)
    except OSError as exc:
        raise ObservationError(f"{target.host}:{target.port} could not be reached for the plain-HTTP probe: "
                               f"{exc.strerror or type(exc).__name__}") from None
    received, deadline = b"", time.monotonic() + PLAIN_WAIT_S
    with sock:
        try:
            sock.sendall(request)
            # a few seconds in all, however slowly the bytes come: a status line is all that is needed
            while len(received) < PLAIN_READ_CAP and b"\r\n\r\n" not in received:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                chunk = sock.recv(PLAIN_READ_CAP - len(received))
                if not chunk:
                    break
                received += chunk
        except (TimeoutError, ssl.SSLError, OSError):
            pass  # silence or a reset after connecting is a refusal of plain HTTP
    return received


@check("http.plaintext")
def test_plain_http_refused(requirement, target, outcome):
    """Plain HTTP to the API's port: no HTTP answer at all, a refusal, or a redirect to https, nothing else."""
    url = urlsplit(target.url)
    if url.scheme != "https":
        failed(f"the API is served over plain {url.scheme}: {target.url}")
    request = (f"GET {url.path.rstrip('/')}/metadata HTTP/1.1\r\nHost: {url.netloc}\r\nUser-Agent: vigie\r\n"
               "Connection: close\r\n\r\n").encode()
    received = _plain_exchange(target, request)
    head = received.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    outcome.evidence(f"plaintext/{target.id}.json", {"request": request.decode(), "received_head": head[:2000],
                                                      "received_bytes": len(received)})
    if not head.startswith("HTTP/"):
        passed("plain HTTP gets no HTTP answer" + (f" ({len(received)} bytes, not HTTP)"
                                                   if received else " (connection closed)"))
    status_line = head.split("\r\n", 1)[0]
    code = status_line.split(" ", 2)[1:2]
    status = int(code[0]) if code and code[0].isdigit() else 0
    location = next((line.split(":", 1)[1].strip() for line in head.split("\r\n")[1:]
                     if line.lower().startswith("location:")), "")
    outcome.measure(status=status, location=location)
    if status in PLAIN_REFUSALS:
        passed(f"plain HTTP is refused: '{status_line[:120]}', nothing served")
    if not (status in (301, 302, 307, 308) and location.lower().startswith("https://")):
        failed(f"plain HTTP is answered {status}" + (f" (Location: {location})" if location else "")
               + ", not refused nor redirected to https")
    passed(f"plain HTTP is redirected to {location}")
