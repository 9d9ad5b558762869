"""FHIR R4 primitive types: the JSON type each must have and the regular expression of its lexical form
(from the R4 specification's datatypes page), plus calendar checks the regexes cannot express."""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import re

from .xhtml import narrative_problem

_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_TZ = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"

REGEX = {
    "boolean": None,
    "integer": r"-?([0]|([1-9][0-9]*))",
    "unsignedInt": r"[0]|([1-9][0-9]*)",
    "positiveInt": r"\+?[1-9][0-9]*",
    "decimal": r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?",
    "string": r"[ \r\n\t\S]+",
    "markdown": r"\s*(\S|\s)*",
    "code": r"[^\s]+( [^\s]+)*",
    "id": r"[A-Za-z0-9\-\.]{1,64}",
    "uri": r"\S*",
    "url": r"\S*",
    "canonical": r"\S*",
    "oid": r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+",
    "uuid": r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    "base64Binary": r"(\s*([0-9a-zA-Z\+/=]){4}\s*)+",
    "instant": _YEAR + r"-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T" + _TIME + _TZ,
    "date": _YEAR + r"(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?",
    "dateTime": _YEAR + r"(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T" + _TIME + _TZ + r")?)?)?",
    "time": _TIME,
    "xhtml": None,
}


def _xml_schema(regex: str) -> str:
    """The Python form of a regex written with XML Schema's classes \\s and \\S."""
    out, in_class, i = [], False, 0
    while i < len(regex):
        two = regex[i:i + 2]
        if two in (r"\s", r"\S"):
            if in_class:     # the spec's classes: [ \r\n\t\S] (anything), [^\s] (no whitespace)
                out.append(r" \t\n\r" if two == r"\s" else r"\s\S")
            else:
                out.append(r"[ \t\n\r]" if two == r"\s" else r"[^ \t\n\r]")
            i += 2
            continue
        if two[:1] == "\\":
            out.append(two)
            i += 2
            continue
        in_class = (in_class or regex[i] == "[") and regex[i] != "]"
        out.append(regex[i])
        i += 1
    return "".join(out)


# the specification's regexes are XML Schema ones, whose \s is [ \t\n\r] only (XML Schema 2, F.1.1): a
# non-breaking space (French typography puts one before ':') is content, as it is for the HL7 validator
COMPILED = {k: re.compile(_xml_schema(v), re.DOTALL) if v else None for k, v in REGEX.items()}
PRIMITIVES = frozenset(REGEX)
INTEGERS = frozenset({"integer", "unsignedInt", "positiveInt"})
NUMBERS = INTEGERS | {"decimal"}
DATES = frozenset({"date", "dateTime", "instant"})
# the FHIRPath system type of each primitive, for the type names found in SDs of primitive `value` elements
STRING_LIMIT = 1024 * 1024
# how the reasons below begin when the JSON value has the wrong kind (a string for a number...)
WRONG_JSON_KIND = ("the primitive value must be", "the value must be a JSON")
# R4 datatypes.html#string: strings hold no character below U+0020 but tab, carriage return and line feed; the
# XML format (R4 xml.html: XML 1.0) cannot carry them at all (XML 1.0 section 2.2, Char), so a value with one
# could not be exchanged in both formats. Every string-based primitive inherits the rule (code, id, markdown,
# uri...); xhtml is checked as XML by xhtml.py.
_C0 = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_EXAMPLE_HOST = re.compile(r"(?i)[a-z][a-z0-9+.-]*://([^/?#@]*@)?([^/?#:]*\.)?example\.org([:/?#]|$)")


def check_primitive(type_code: str, value, example_urls: bool = False) -> str | None:
    """None if `value` (as parsed from JSON) is a valid `type_code`, else the reason."""
    if type_code == "boolean":
        return None if isinstance(value, bool) else f"the value must be a JSON boolean, not {_json_kind(value)}"
    if type_code in NUMBERS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"the primitive value must be a number, not {_json_kind(value)}"
        if type_code in INTEGERS:
            if isinstance(value, float) and not value.is_integer():
                return f"the value '{value}' is not a valid integer"
            value = int(value)
            if not -2**31 <= value < 2**31:
                return f"the value '{value}' is outside the range of a 32-bit integer"
            if type_code == "unsignedInt" and value < 0:
                return f"the value '{value}' must be non-negative"
            if type_code == "positiveInt" and value < 1:
                return f"the value '{value}' must be positive"
        return None
    if not isinstance(value, str):
        return f"the primitive value must be a string, not {_json_kind(value)}"
    if type_code == "xhtml":
        return narrative_problem(value)
    if not value:
        return "an empty string is not a valid value (leave the element out)"
    if len(value) > STRING_LIMIT:
        return f"the value is longer than {STRING_LIMIT} characters"
    control = _C0.search(value)
    if control is not None:
        char = f"U+{ord(control.group()):04X}"
        return (f"the value contains the control character {char} (at position {control.start() + 1}): strings "
                f"must not hold characters below U+0020 other than tab, carriage return and line feed")
    regex = COMPILED.get(type_code)
    if regex is not None and not regex.fullmatch(value):
        return f"not a valid {type_code}: '{_short(value)}'"
    if type_code in DATES:
        return _check_calendar(value, type_code)
    if type_code in ("uri", "url", "canonical"):
        if value.startswith("urn:uuid:") and not COMPILED["uuid"].fullmatch(value):
            return f"UUIDs must be valid and lowercase ({value[9:]})"
        if value.startswith("urn:oid:") and not COMPILED["oid"].fullmatch(value):
            return f"not a valid OID: '{_short(value)}'"
    if type_code == "url" and not example_urls and _EXAMPLE_HOST.match(value):
        # an address to fetch (an attachment, an endpoint) that points at the domain reserved for
        # documentation (RFC 2606): the reference validator refuses it outside examples, and so does vigie
        return f"example URLs are not allowed here: '{_short(value)}' is on example.org, reserved for documentation"
    if type_code == "base64Binary":
        try:
            base64.b64decode("".join(value.split()), validate=True)
        except (binascii.Error, ValueError):
            return "not valid base64 content"
    return None


def _check_calendar(value: str, type_code: str) -> str | None:
    day = value[:10]
    if len(day) == 10:
        try:
            dt.date.fromisoformat(day)
        except ValueError:
            return f"not a valid {type_code}: '{value}' is not a calendar date"
    return None


def _json_kind(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _short(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[:limit] + "..."
