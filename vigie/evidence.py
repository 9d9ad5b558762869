"""The evidence store of a run: files under <bundle>/evidence/, secrets redacted before writing."""
from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from pathlib import Path
from urllib.parse import unquote, unquote_plus, urlsplit

from .masking import mask_data, mask_text

REDACTED = "[redacted]"
SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
# names of query or form fields and JSON keys whose values are secrets: a database URL may carry its password
# as ?password= (libpq's sslpassword, a DSN's pwd), an API URL its token or signature (?sig=, X-Amz-...)
_SECRET_NAME = (r"(?:[\w.-]*token|[\w.-]*password|passwd|pwd|secret|client_secret|"
                r"api_key|apikey|api-key|sig|x-amz-credential|x-amz-signature|x-amz-security-token|"
                r"authorization|proxy-authorization|cookie|set-cookie|x-api-key)")
SECRET_FIELDS = re.compile(rf"(?i)^{_SECRET_NAME}$")
# name=value in a URL's query, a form or a command line (the name whole: 'monkey=' is not 'key=')
_FIELD_IN_TEXT = re.compile(rf"(?i)(?<![\w.-])({_SECRET_NAME}=)([^&\s\"'#]+)")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{16,}")
# the password of a URL's userinfo (postgresql://user:pass@host/db); '@' and '/' in it must be %-encoded
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/?#@:]*:)[^\s/?#@]+(@)")
# a secret given on a command line, whatever its length: --token VALUE, --password=VALUE
_SECRET_FLAG = re.compile(r"(?i)(--(?:token|password|passwd|secret)(?:=|\s+))('[^']*'|\"[^\"]*\"|\S+)")
MAX_DEPTH = 64   # deeper data (a hostile JSON answer) is cut: writers recurse, and readers need no more


# secrets met during the run (forged variants of a token, sent to the target): a target that echoes one must
# not put it, or enough to rebuild the genuine token, into the bundle
_DERIVED: set[str] = set()


def secret_forms(value: str) -> set[str]:
    """A secret and what gives it away: a JWT's header.payload, payload and signature (a forgery keeps one or
    the other of the genuine token's), and the base64 encodings of each."""
    forms = {value}
    if value.count(".") == 2:
        head, payload, signature = value.split(".")
        forms |= {f"{head}.{payload}", payload, signature}
    for form in list(forms):
        forms.add(base64.b64encode(form.encode()).decode())
        forms.add(base64.urlsafe_b64encode(form.encode()).decode().rstrip("="))
    return {f for f in forms if len(f) >= 8}


def register_secret(value: str) -> None:
    """Registers a secret sent during the run (and its forms) with every redactor."""
    if value and len(value) >= 4 and value not in _DERIVED:
        _DERIVED.update(secret_forms(value) | {value})


def strip_password(url: str) -> str:
    """The URL without its userinfo password (the user name stays: it says which role was used)."""
    return _URL_PASSWORD.sub(r"\1" + REDACTED + r"\2", url)


def strip_credentials(url: str) -> str:
    """The URL without the secrets it carries: its userinfo password and its credential query fields."""
    return _FIELD_IN_TEXT.sub(r"\1" + REDACTED, strip_password(url))


def url_credentials(url: str) -> list[str]:
    """The secrets a URL carries (userinfo password, credential query fields), as written and %-decoded."""
    found = [m.group(2) for m in _FIELD_IN_TEXT.finditer(url)]
    userinfo = urlsplit(url).netloc.rpartition("@")[0]
    if ":" in userinfo:
        found.append(userinfo.partition(":")[2])
    return [form for value in found for form in dict.fromkeys((value, unquote(value), unquote_plus(value)))]


class Redactor:
    """Removes the run's known secrets (tokens, passwords) and anything shaped like one, and masks patient
    data (vigie.masking) unless `mask_patients` is off."""

    def __init__(self, secrets=(), mask_patients: bool = True):
        self.given = {form for s in secrets if s and len(s) >= 4 for form in secret_forms(s) | {s}}
        self.mask_patients = mask_patients
        self._known = (-1, [])

    @property
    def secrets(self) -> list[str]:
        """The run's secrets and those registered since, longest first (a part inside a whole goes after it)."""
        if self._known[0] != len(_DERIVED):
            self._known = (len(_DERIVED), sorted(self.given | _DERIVED, key=len, reverse=True))
        return self._known[1]

    def text(self, value: str) -> str:
        for secret in self.secrets:
            value = value.replace(secret, REDACTED)
        if self.mask_patients:
            value = mask_text(value)
        value = _BEARER.sub(r"\1" + REDACTED, value)
        value = strip_password(value)
        value = _SECRET_FLAG.sub(r"\1" + REDACTED, value)
        return writable(strip_credentials(value))

    def headers(self, headers) -> dict:
        return {k: (REDACTED if k.lower() in SECRET_HEADERS else self.text(str(v))) for k, v in headers.items()}

    def data(self, value, depth: int = 0):
        """A copy fit to be written: secrets removed, patient data masked, and what JSON cannot hold
        (Infinity, NaN, nesting deeper than MAX_DEPTH) replaced by text."""
        if depth == 0 and self.mask_patients:
            value = mask_data(value)
        if depth >= MAX_DEPTH and isinstance(value, (dict, list, tuple)):
            return f"[nested deeper than {MAX_DEPTH} levels: cut]"
        if isinstance(value, dict):
            return {k: (REDACTED if isinstance(k, str) and SECRET_FIELDS.match(k) else self.data(v, depth + 1))
                    for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v, depth + 1) for v in value]
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def writable(text: str) -> str:
    """Text that UTF-8 can hold: an unpaired surrogate (which JSON's \\uD800 escapes can produce) is
    written as its escape, visible to the reader, instead of failing the write."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) if _SURROGATE.search(text) else text


# an id that names files of a bundle (a target's, a requirement's, a profile's): no separator, no '..', no
# control character, nothing a shell or a terminal reads differently
ID_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._@-]")
_UNSAFE_PART = re.compile(r"[^A-Za-z0-9._@%-]")   # a part of a path may hold names safe_name encoded
MAX_NAME = 120


def check_id(value, what: str) -> str:
    """`value` if it is a valid id, else a VigieError naming it (shown escaped: it may hold control characters)."""
    if not (isinstance(value, str) and ID_RULE.fullmatch(value)):
        from .errors import VigieError
        shown = value[:80] if isinstance(value, str) else value
        raise VigieError(f"{what} {shown!r} is not a valid id (letters, digits, '.', '_', '-'; starting with a "
                         "letter or a digit; at most 128 characters)")
    return value


def safe_name(name: str) -> str:
    """A file name for any name: what is not [A-Za-z0-9._@-] %-encoded, a leading dot too (no '..', no hidden
    file), so that two names never share a file; a long one cut, its digest appended."""
    return _encode(str(name), _UNSAFE)


def safe_relpath(relpath: str) -> str:
    """A path that stays under the folder it is joined to, whatever it was made of ('tls/../../x.json')."""
    return "/".join(_encode(part, _UNSAFE_PART) for part in relpath.split("/"))


def _encode(name: str, unsafe: re.Pattern) -> str:
    encoded = unsafe.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode("utf-8", "surrogatepass")), name)
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    if len(encoded) > MAX_NAME:   # '~' is never left by the encoding: a cut name cannot meet a whole one
        encoded = encoded[:MAX_NAME - 17] + "~" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return encoded or "%"


class EvidenceStore:
    def __init__(self, root: Path, redactor: Redactor):
        self.root = Path(root)
        self.redact = redactor

    def write_json(self, relpath: str, data) -> str:
        """Writes evidence/<relpath> (redacted) and returns its path relative to the bundle."""
        path = self.root / "evidence" / safe_relpath(relpath)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.redact.data(data), indent=2, ensure_ascii=False, default=str),
                        encoding="utf-8")
        return path.relative_to(self.root).as_posix()

    def path_for(self, relpath: str) -> Path:
        """A path under evidence/ for a tool that writes its own files (for example load statistics)."""
        path = self.root / "evidence" / safe_relpath(relpath)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path
