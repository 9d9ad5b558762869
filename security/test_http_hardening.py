"""HTTP hardening: security headers, banners, CORS, framing, TRACE, plain HTTP, error bodies."""
import re
import socket
import ssl
import time
from urllib.parse import urlsplit

from vigie.checks import check, failed, passed
from vigie.disclosure import disclosed
from vigie.errors import ObservationError

# the responses every header requirement looks at: public metadata, personal data, an error
SAMPLES = {"metadata": ("metadata", False), "personal-data": ("Patient?_count=1", True),
           "error": ("Patient/vigie-does-not-exist-0", True)}
VERSION = re.compile(r"\d+\.\d+")
PROBE_ORIGIN = "https://vigie-cors-probe.invalid"
PLAIN_READ_CAP = 8192
PLAIN_WAIT_S = 3


def _responses(http, requirement):
    which = requirement.params.get("on", list(SAMPLES))
    return {name: http.get(SAMPLES[name][0], auth=SAMPLES[name][1]) for name in which}


@check("http.hsts")
def test_hsts(requirement, http, outcome):
    minimum = int(requirement.params.get("min_max_age", 31536000))
    seen = {}
    for name, response in _responses(http, requirement).items():
        value = response.headers.get("Strict-Transport-Security")
        seen[name] = value
        if not value:
            failed(f"no Strict-Transport-Security header on the {name} response")
        match = re.search(r"(?i)max-age\s*=\s*\"?(\d+)", value)
        if not (match and int(match.group(1)) >= minimum):
            failed(f"Strict-Transport-Security max-age below {minimum} s on the {name} response: {value}")
    passed(f"Strict-Transport-Security with max-age >= {minimum} s on {len(seen)} responses",
           strict_transport_security=seen)


@check("http.header")
def test_header(requirement, http, outcome):
    header, contains = requirement.params["header"], requirement.params["contains"].lower()
    seen = {}
    for name, response in _responses(http, requirement).items():
        value = response.headers.get(header)
        seen[name] = value
        if value is None:
            failed(f"no {header} header on the {name} response")
        tokens = [t.strip().lower() for t in value.split(",")]
        if contains not in tokens:
            failed(f"{header} is '{value}' on the {name} response, expected {contains}")
    passed(f"{header} {contains} on {len(seen)} responses", **{header: seen})


@check("http.banner")
def test_no_version_banner(requirement, http, outcome):
    headers = requirement.params.get("headers", ["Server", "X-Powered-By"])
    seen = {}
    for response in _responses(http, requirement).values():
        for header in headers:
            if response.headers.get(header):
                seen[header] = response.headers[header]
    outcome.measure(banners=seen)
    leaking = {h: v for h, v in seen.items() if VERSION.search(v)}
    if leaking:
        failed("software version disclosed: " + ", ".join(f"{h}: {v}" for h, v in leaking.items()))
    passed(f"no version in {', '.join(headers)} " + (f"({seen})" if seen else "(absent)"))


@check("http.error-disclosure")
def test_errors_disclose_nothing(requirement, http, outcome):
    probes = {"not found": ("Patient/vigie-does-not-exist-0", {}),
              "bad parameter": ("Patient", {"birthdate": "not-a-date'\"<>"}),
              "unknown type": ("VigieUnknownType", {})}
    statuses = {}
    for name, (path, params) in probes.items():
        response = http.get(path, params=params)
        statuses[name] = response.status_code
        found = disclosed(response.text[:65536])
        if found:
            failed(f"the {name} error response discloses internals: '{found}'")
    passed(f"{len(statuses)} error responses disclose no internals", statuses=statuses)


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
    seen = {}
    for name, (method, path, auth, headers) in probes.items():
        response = http.request(method, path, auth=auth, headers=headers)
        allow = response.headers.get("Access-Control-Allow-Origin")
        credentials = (response.headers.get("Access-Control-Allow-Credentials") or "").strip().lower() == "true"
        seen[name] = {"allow_origin": allow, "allow_credentials": credentials}
        if allow is None or not credentials:
            continue
        if allow.strip() == "*":
            failed(f"{name}: Access-Control-Allow-Origin: * with credentials allowed")
        if allow.strip() == headers["Origin"]:
            failed(f"{name}: the origin {headers['Origin']} is echoed back with credentials allowed "
                   "(any site may read)")
    passed(f"no credentialed access for any origin on {len(seen)} probes", cors=seen)


@check("http.framing")
def test_framing_denied(requirement, http, outcome):
    seen = {}
    for name, response in _responses(http, requirement).items():
        xfo = (response.headers.get("X-Frame-Options") or "").strip().upper()
        csp = response.headers.get("Content-Security-Policy") or ""
        ancestors = re.search(r"(?i)(?:^|;)\s*frame-ancestors\s+([^;]*)", csp)
        seen[name] = {"X-Frame-Options": xfo or None, "frame-ancestors": ancestors.group(1).strip() if ancestors
                      else None}
        by_csp = ancestors is not None and "*" not in ancestors.group(1)
        if not (xfo in ("DENY", "SAMEORIGIN") or by_csp):
            failed(f"the {name} response may be framed by any site: no X-Frame-Options DENY/SAMEORIGIN "
                   "and no CSP frame-ancestors")
    passed(f"framing denied on {len(seen)} responses", framing=seen)


@check("http.trace")
def test_trace_refused(requirement, http, outcome):
    marker = "vigie-trace-probe-7f3a"
    response = http.request("TRACE", "metadata", auth=False, headers={"X-Vigie-Trace": marker})
    echoed = marker in response.text
    outcome.measure(status=response.status_code, echoed=echoed)
    if 200 <= response.status_code < 300:
        failed(f"TRACE answered {response.status_code}" + (" and echoed the request back" if echoed else ""))
    if echoed:
        failed(f"TRACE refused with {response.status_code}, but the request is echoed in the body")
    passed(f"TRACE refused with {response.status_code}")


@check("http.plaintext")
def test_plain_http_refused(requirement, target, outcome):
    """Plain HTTP to the API's port: no HTTP answer at all, or a redirect to https, and nothing else."""
    url = urlsplit(target.url)
    if url.scheme != "https":
        failed(f"the API is served over plain {url.scheme}: {target.url}")
    request = (f"GET {url.path.rstrip('/')}/metadata HTTP/1.1\r\nHost: {url.netloc}\r\nUser-Agent: vigie\r\n"
               "Connection: close\r\n\r\n").encode()
    received, deadline = b"", time.monotonic() + PLAIN_WAIT_S
    try:
        with socket.create_connection((target.host, target.port), timeout=PLAIN_WAIT_S) as sock:
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
    except ConnectionRefusedError:
        raise ObservationError(f"{target.host}:{target.port} refused the connection") from None
    except (TimeoutError, ConnectionResetError, ssl.SSLError, OSError):
        pass  # silence or a reset is a refusal of plain HTTP
    head = received.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    outcome.evidence(f"plaintext/{target.id}.json", {"request": request.decode(), "received_head": head[:2000],
                                                      "received_bytes": len(received)})
    if not head.startswith("HTTP/"):
        passed("plain HTTP gets no HTTP answer" + (f" ({len(received)} bytes, not HTTP)"
                                                   if received else " (connection closed)"))
    status = int(head.split(" ", 2)[1]) if head.split(" ", 2)[1:2] and head.split(" ", 2)[1].isdigit() else 0
    location = next((line.split(":", 1)[1].strip() for line in head.split("\r\n")[1:]
                     if line.lower().startswith("location:")), "")
    outcome.measure(status=status, location=location)
    if not (status in (301, 302, 307, 308) and location.lower().startswith("https://")):
        failed(f"plain HTTP is answered {status}" + (f" (Location: {location})" if location else "")
               + ", not refused nor redirected to https")
    passed(f"plain HTTP is redirected to {location}")
