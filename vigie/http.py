"""The recording HTTP client: a requests session per target, every exchange kept as evidence."""
from __future__ import annotations

import json
import math
import re
import time
import traceback
import warnings
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from .errors import ObservationError
from .evidence import register_secret
from .limits import Deadline, budget_for
from .messages import quote

BODY_CAP = 10 * 1024 * 1024       # never hold more of a response than this
EVIDENCE_BODY_CAP = 64 * 1024      # nor keep more of it in the evidence
READ_CHUNK = 256 * 1024
DEFAULT_TIMEOUT = (5, 15)          # connect, and each read: a slow drip is bounded by the budget's deadline


class Response(requests.Response):
    """A response whose body was read within the caps, and whose json() says why a body cannot be read:
    JSON too deep or numbers too large for vigie raise ObservationError (nothing can be concluded), a body
    that is not JSON or not UTF-8 raises ValueError as with requests (the target answered wrongly)."""

    truncated = False

    def json(self, **kwargs):
        where = f"{self.request.method} {self.url}" if self.request else self.url
        if self.truncated:
            raise ObservationError(f"{where}: body larger than {BODY_CAP} bytes (or the per-target byte "
                                   f"limit): not parsed")
        encoding = self.encoding or "utf-8"   # FHIR JSON is UTF-8 unless the answer says otherwise
        try:
            text = self.content.decode("utf-8-sig" if encoding.lower() in ("utf-8", "utf8") else encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise requests.JSONDecodeError(f"body is not valid {encoding}: {exc}", "", 0) from None
        try:
            body = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant, **kwargs)
            if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(body):
                # JSON's grammar lets \uD800 stand alone, but the string is then not Unicode text, which
                # every FHIR string must be: the answer is wrong, and its strings cannot be written as UTF-8
                raise requests.JSONDecodeError("a string holds an unpaired surrogate (\\uD800-\\uDFFF): "
                                               "not Unicode text", "", 0)
            return body
        except RecursionError:
            raise ObservationError(f"{where}: JSON nested too deeply to be read") from None
        except json.JSONDecodeError as exc:
            raise requests.JSONDecodeError(exc.msg, exc.doc, exc.pos) from None
        except ValueError as exc:   # a number out of range: 1e999999, an integer of thousands of digits
            raise ObservationError(f"{where}: JSON number out of the range vigie reads ({quote(str(exc)[:80])})") \
                from None


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(value) -> bool:
    """Whether a parsed JSON value holds a surrogate code point (paired escapes were joined by the parser)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if any("\ud800" <= c <= "\udfff" for c in item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is not a finite number")
    return value


def _no_constant(name: str):
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


class TokenRefused(ObservationError):
    """A request that carried one of vigie's configured tokens (or was meant to: none configured) was
    answered 401: the fault is in vigie's configuration, and nothing can be concluded from the answer."""


class LeftTarget(ObservationError):
    """A URL the target sent (a next link, a reference) leads outside its declared base URL: not followed."""


class CertificateRejected(ObservationError):
    """The target's certificate failed verification; `reason` is OpenSSL's (key too weak, expired...)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class RecordingClient:
    def __init__(self, target, timeout=DEFAULT_TIMEOUT):
        self.target = target
        self.timeout = timeout
        # shared with every other client of this target in the run: the caps are per target
        self.budget = budget_for(target)
        self.session = requests.Session()
        self.session.trust_env = False   # no proxy or CA bundle from the environment: only the target's CA
        self.session.verify = target.ca_file or True
        self.session.headers["User-Agent"] = "vigie"
        self.exchanges: list[dict] = []   # of the current outcome; the plugin empties it

    def within(self, url: str) -> bool:
        """Whether a URL lies under the target's base URL: same scheme, host and port, and a path under the
        base path. A link a target sends elsewhere (another port, http instead of https) is not followed."""
        base, there = urlsplit(self.target.url), urlsplit(url)
        try:
            ports = (base.port, there.port)
        except ValueError:   # a port out of range in what the target sent
            return False
        default = {"https": 443, "http": 80}
        prefix = base.path.rstrip("/")
        return (there.scheme.lower() == base.scheme.lower() and (there.hostname or "") == (base.hostname or "")
                and (ports[1] or default.get(there.scheme.lower())) == (ports[0] or default.get(base.scheme.lower()))
                and (there.path == prefix or there.path.startswith(prefix + "/") or not prefix))

    def url(self, path_or_url: str) -> str:
        if urlsplit(path_or_url).scheme:
            return path_or_url
        return urljoin(self.target.url + "/", path_or_url.lstrip("/"))

    def request(self, method: str, path_or_url: str, auth: bool | str = True, may_refuse: bool = False,
                **kwargs) -> requests.Response:
        """auth=True sends the target's token, auth="role" the token of that role, auth=False none.

        A 401 to a request that carries vigie's token says that the token is wrong, not that the target is:
        it raises TokenRefused, so that no check judges the target on it. A check whose request may be
        refused for what it asks (another patient's record, a write with a read-only token) passes
        may_refuse=True and gets the 401 as an answer."""
        url = self.url(path_or_url)
        if not self.within(url):
            raise LeftTarget(f"not followed: {url[:200]} is outside the target's declared base URL "
                             f"{self.target.url} (vigie sends requests, and tokens, only there)")
        shown = request_url(url, kwargs.get("params"))   # the request as sent: path and query
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("Accept", "application/fhir+json")
        token = self.target.tokens.get(auth) if isinstance(auth, str) else (self.target.token if auth else None)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        sent = str(headers.get("Authorization", ""))
        if sent.lower().startswith("bearer "):   # a forged or malformed variant too: what a target echoes of it
            register_secret(sent[7:].strip())     # is redacted from the bundle
        kwargs.setdefault("timeout", self.timeout)
        # per request: requests lets REQUESTS_CA_BUNDLE override a session's verify
        kwargs.setdefault("verify", self.session.verify)
        # never followed, whatever a check asks: a redirect may point to a host nobody allowed us to test
        kwargs["allow_redirects"] = False
        self.budget.take_request(f"{method} {shown}")
        limit = self.budget.limits.request_timeout_s
        started = time.monotonic()
        response = None
        try:
            with Deadline(limit, ObservationError(f"{method} {shown} failed: no complete answer within {limit:g} s")):
                response = self.session.request(method, url, headers=headers, stream=True, **kwargs)
                response.__class__ = Response
                self._read_body(response)
        # urllib3's own errors come from reading the body (a broken gzip, a reset, a timeout mid-body)
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            # a TLS handshake that times out comes as a ConnectionError, not a Timeout: go by the reason
            self.budget.answered(in_time=_reason(exc) != "timed out")
            self._record(method, shown, headers, kwargs, None, time.monotonic() - started, error=str(exc))
            verification = _verification_failure(str(exc))
            if verification:
                raise CertificateRejected(f"{method} {shown} failed: certificate verification failed "
                                          f"({quote(verification)})", verification) from None
            raise ObservationError(f"{method} {shown} failed: {_reason(exc)}") from None
        except BaseException as exc:  # a deadline (this request's, the check's): keep what was seen
            self.budget.answered(in_time=False)
            # the HTTP stack tripped on what the target sent (one of its own assertions, a decoder's
            # error...): the target could not be observed, which is no verdict on the requirement
            crashed = isinstance(exc, Exception) and not isinstance(exc, ObservationError)
            self._record(method, shown, headers, kwargs, None, time.monotonic() - started,
                         error=_crash(exc) if crashed else str(exc))
            if response is not None:
                response.close()
            if crashed:
                raise ObservationError(f"{method} {shown} failed: {_crash(exc)}") from None
            raise
        self.budget.answered(in_time=True)
        self._record(method, shown, headers, kwargs, response, time.monotonic() - started,
                     error="body truncated" if response.truncated else None)
        if response.status_code == 401 and auth is not False and not may_refuse:
            raise TokenRefused(_token_refused(method, shown, auth, token))
        return response

    def request_unverified(self, method: str, path_or_url: str, **kwargs) -> requests.Response:
        """A request over TLS without certificate verification and without any token or credential: only
        for what is public (the headers of the metadata answer) on a target whose certificate failed
        verification, so that its headers are still observed while no secret crosses that channel."""
        headers = {k: v for k, v in (kwargs.pop("headers", None) or {}).items()
                   if k.lower() not in ("authorization", "cookie")}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            return self.request(method, path_or_url, auth=False, headers=headers, verify=False, **kwargs)

    def _read_body(self, response: Response) -> None:
        """At most BODY_CAP bytes (decoded: a gzip bomb is decompressed only that far), within what the
        target's byte budget has left; a longer body is marked truncated and its connection dropped."""
        cap = min(BODY_CAP, self.budget.bytes_left())
        chunks, size = [], 0
        try:
            while size <= cap:
                chunk = response.raw.read(min(READ_CHUNK, cap + 1 - size), decode_content=True)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            self.budget.spend_bytes(size)
        body = b"".join(chunks)
        response._content = body[:cap]
        response._content_consumed = True
        if size > cap:
            response.truncated = True
            response.close()   # the rest is never read: the connection cannot be reused

    def get(self, path_or_url: str, **kwargs) -> requests.Response:
        return self.request("GET", path_or_url, **kwargs)

    def post(self, path_or_url: str, **kwargs) -> requests.Response:
        return self.request("POST", path_or_url, **kwargs)

    def _record(self, method, url, headers, kwargs, response, elapsed, error=None):
        exchange = {"request": {"method": method, "url": url, "headers": headers,
                                "body": _text(kwargs.get("data") or kwargs.get("json"))},
                    "elapsed_s": round(elapsed, 4)}
        if response is not None:
            exchange["response"] = {"status": response.status_code, "reason": response.reason,
                                    "headers": dict(response.headers),
                                    "body": response.content[:EVIDENCE_BODY_CAP].decode("utf-8", "replace")}
        if error:
            exchange["error"] = error
        if kwargs.get("verify") is False:
            exchange["certificate"] = "not verified (the target's certificate failed verification)"
        self.exchanges.append(exchange)

    def take_exchanges(self) -> list[dict]:
        taken, self.exchanges = self.exchanges, []
        return taken

    def close(self):
        self.session.close()


def request_url(url: str, params) -> str:
    """The URL a request goes to, its query included, as requests sends it: what evidence and messages show
    of a request (secrets and patient data in it are left to the evidence store's Redactor)."""
    try:
        return requests.Request("GET", url, params=params).prepare().url
    except (requests.RequestException, ValueError, TypeError, UnicodeError):
        return url   # requests refuses it too, and says why when it is sent


def _text(value):
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value[:EVIDENCE_BODY_CAP].decode("utf-8", "replace")
    return value


def _crash(exc: Exception) -> str:
    """An unexpected exception of the HTTP stack, located: the reader can tell it from the target's fault."""
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return (f"the HTTP client failed on the answer ({type(exc).__name__} in {Path(frame.filename).name}:"
            f"{frame.lineno}{': ' + _reason(exc) if str(exc) else ''})")


def _token_refused(method: str, url: str, auth: bool | str, token: str | None) -> str:
    where = f"401 on {method} {url[:200]}"
    # never "--token" then a space: the report's redactor takes the next word for a token
    setting = f"[targets.tokens] {auth}" if isinstance(auth, str) else "--token, or token in vigie.toml"
    if not token:
        return f"the target asks for a token ({where}) and vigie has none configured: set {setting}"
    which = f"'{auth}' token" if isinstance(auth, str) else "token"
    return f"the target refused vigie's {which} ({where}): check it ({setting})"


# OpenSSL's reason, up to where the ssl module names its own source line
_VERIFY_FAILED = re.compile(r"certificate verify failed: (.+?)\s*(?:\(_ssl\.c:\d+\)|'\)|$)")


def _verification_failure(text: str) -> str | None:
    """OpenSSL's reason when a certificate failed verification ("EE certificate key too weak"), else None."""
    if "CERTIFICATE_VERIFY_FAILED" not in text:
        return None
    found = _VERIFY_FAILED.search(text)
    reason = found.group(1).replace("\\'", "'").strip(" .") if found else ""
    return "".join(c if c.isprintable() else "?" for c in reason[:200]) or "reason not given"


def _reason(exc: Exception) -> str:
    """The innermost cause, which is what a reader needs (refused, timed out, certificate...)."""
    text = str(exc)
    verification = _verification_failure(text)
    if verification:
        return f"certificate verification failed ({quote(verification)})"
    for marker, reason in _REASONS.items():
        if marker in text:
            return reason
    # what a hostile target sent may be anything: keep the reason one printable line
    return quote("".join(c if c.isprintable() else "?" for c in (text.splitlines() or [""])[0][:300]))


_REASONS = {"Connection refused": "connection refused", "timed out": "timed out",
            "Name or service not known": "name or service not known", "Connection reset": "connection reset",
            "WRONG_VERSION_NUMBER": "wrong version number (not TLS?)", "BadStatusLine": "the answer is not HTTP",
            "RemoteDisconnected": "connection closed without an answer",
            "SSLV3_ALERT_HANDSHAKE_FAILURE": "TLS handshake refused by the server",
            "failed to decode it": "the body could not be decoded (Content-Encoding)",
            "got more than 100 headers": "the answer has more than 100 headers",
            "LineTooLong": "the answer has a line longer than 64 KiB (status or header)",
            "IncompleteRead": "the answer ended before its announced length (incomplete read)"}
