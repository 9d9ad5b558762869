"""Patient data masked in what a bundle keeps: a report travels to regulators, CI logs and step summaries, and
must not carry the identities of the patients a target served.

Values are masked, structure is kept: a NIR keeps its first digit (sex) and its key, a name its first letter,
a birth date its year, so that a reviewer can still see what kind of value stood there and where.
"""
from __future__ import annotations

import json
import re

MASK = "*"
# a NIR/INS written in one piece, or grouped as it is printed (1 85 05 78 006 084 36) with one separator
# (space, dot or dash) between every group; masked whatever its key: a mistyped NIR is still a patient's. A
# number written otherwise (a float's 14 decimals, a timestamp) is not taken for one. After a letter or digit
# it is part of a longer token, unless that is a %-escape of a URL (%7C1850...).
_NIR = re.compile(r"(?:(?<![0-9A-Za-z.])|(?<=%[0-9A-Fa-f]{2}))([1-478])([ .-]?)([0-9]{2})\2([0-9]{2})\2"
                  r"([0-9]{2}|2[ABab])\2([0-9]{3})\2([0-9]{3})\2([0-9]{2})(?![0-9A-Za-z]|[.,][0-9])")
# the resources that describe a person whose data is personal
PERSONS = {"Patient", "RelatedPerson", "Person"}
# identifiers of persons: masked wherever they appear (an Encounter's subject identifier, for example)
PERSON_IDENTIFIER_SYSTEMS = ("urn:oid:1.2.250.1.213.1.4.",)   # INS-NIR, INS-NIA, NIR, NIA and their test OIDs
STATEMENT = "patient data masked (NIR/INS, names, birth dates, contacts, addresses of patients)"


def mask_text(text: str) -> str:
    """Every NIR-shaped number of a text masked (its first digit and its key stay), and the values of the
    person search parameters of every FHIR search it writes (a request line, a self link)."""
    if any(c.isdigit() for c in text):
        text = _NIR.sub(_masked_nir, text)
    if "=" in text:
        text = _PERSON_SEARCH.sub(_masked_search, _CHAINED_PARAM.sub(_masked_param, text))
    return text


# a FHIR search of persons in a URL or a request line: Patient?family=Mar&birthdate=ge1985-05-12 (also
# Patient/_search?...); the parameters that name, date, reach, locate or identify the person are masked as in
# the resource. Chained parameters (subject:Patient.family=, patient.birthdate=) are masked in any search.
# (a URL a sentence puts in parentheses keeps its closing one: "(GET Patient?family=X)")
_PERSON_SEARCH = re.compile(
    r"(?<![A-Za-z])((?:Patient|RelatedPerson|Person)(?:/_search)?\?)([^\s\"'<>#]+?)(?=\)?(?:[\s\"'<>#]|$))")
_CHAINED_PARAM = re.compile(r"(?<=[?&])([\w:-]+(?:\.[\w:-]+)*\.([\w-]+))=([^&\s\"'<>#]*?)(?=\)?(?:[&\s\"'<>#]|$))")
_NAMES = {"name", "family", "given", "phonetic"}
_DATES = {"birthdate", "death-date"}
_CONTACTS = {"email", "phone", "telecom"}
_PLACES = {"address", "address-city", "address-state", "address-country"}
PERSON_SEARCH_PARAMS = _NAMES | _DATES | _CONTACTS | _PLACES | {"address-postalcode", "identifier"}


def shown_value(rtype: str, param: str, value: str) -> str:
    """A value of a person's searched element as a summary may quote it: masked as the resource masks it."""
    return _masked_value(param, str(value)) if rtype in PERSONS else str(value)


def _masked_search(m: re.Match) -> str:
    pairs = m.group(2).split("&")
    for i, pair in enumerate(pairs):
        name, sep, value = pair.partition("=")
        if sep:
            pairs[i] = f"{name}={_masked_value(name.split(':')[0], value)}"
    return m.group(1) + "&".join(pairs)


def _masked_param(m: re.Match) -> str:
    return f"{m.group(1)}={_masked_value(m.group(2), m.group(3))}"


def _masked_value(param: str, value: str) -> str:
    """A search value (or a comma list of them) masked as the person's resource masks that element."""
    if param not in PERSON_SEARCH_PARAMS:
        return value
    return ",".join(_masked_one(param, v) for v in value.split(","))


def _masked_one(param: str, value: str) -> str:
    if param in _DATES:   # the comparison prefix and the year stay
        prefix = re.match(r"[a-z]{0,2}[0-9]{0,4}", value).group()
        return prefix + re.sub(r"[0-9]", MASK, value[len(prefix):])
    if param == "identifier":   # system|value: the system stays
        system, bar, rest = value.rpartition("|") if "|" in value else value.rpartition("%7C")
        return system + bar + (_keep(rest, 1, 2) if rest else "")
    if param in _CONTACTS:
        return _keep(value, 0, 2)
    if param == "address-postalcode":
        return _keep(value, 2)
    return _keep(value, 0 if param in _PLACES else 1)


def _masked_nir(m: re.Match) -> str:
    sep = m.group(2)
    return sep.join([m.group(1), *(MASK * len(m.group(i)) for i in range(3, 8)), m.group(8)])


def _keep(value, first: int = 1, last: int = 0) -> str:
    text = str(value)
    if len(text) <= first + last:
        return MASK * len(text)
    return text[:first] + MASK * (len(text) - first - last) + (text[-last:] if last else "")


def _human_name(name: dict) -> dict:
    out = dict(name)
    if isinstance(out.get("family"), str):
        out["family"] = _keep(out["family"])
    if isinstance(out.get("given"), list):
        out["given"] = [_keep(g) if isinstance(g, str) else g for g in out["given"]]
    if isinstance(out.get("text"), str):
        out["text"] = _keep(out["text"])
    return out


def _address(address: dict) -> dict:
    out = dict(address)
    if isinstance(out.get("line"), list):
        out["line"] = [_keep(x, 0) if isinstance(x, str) else x for x in out["line"]]
    if isinstance(out.get("text"), str):
        out["text"] = _keep(out["text"], 0)
    if isinstance(out.get("postalCode"), str):   # the department stays: it is what statistics keep
        out["postalCode"] = _keep(out["postalCode"], 2)
    return out


def _person(resource: dict) -> dict:
    out = dict(resource)
    for key, fix in (("name", _human_name), ("address", _address)):
        if isinstance(out.get(key), list):
            out[key] = [fix(x) if isinstance(x, dict) else x for x in out[key]]
    if isinstance(out.get("birthDate"), str):
        out["birthDate"] = out["birthDate"][:4] + re.sub(r"[0-9]", MASK, out["birthDate"][4:])
    if isinstance(out.get("telecom"), list):
        out["telecom"] = [{**t, "value": _keep(t["value"], 0, 2)} if isinstance(t, dict) and
                          isinstance(t.get("value"), str) else t for t in out["telecom"]]
    if isinstance(out.get("identifier"), list):
        out["identifier"] = [{**i, "value": _keep(i["value"], 1, 2)} if isinstance(i, dict) and
                             isinstance(i.get("value"), str) else i for i in out["identifier"]]
    if isinstance(out.get("contact"), list):
        out["contact"] = [_person(c) if isinstance(c, dict) else c for c in out["contact"]]
    if isinstance(out.get("name"), dict):   # Patient.contact.name is a single HumanName
        out["name"] = _human_name(out["name"])
    if isinstance(out.get("address"), dict):
        out["address"] = _address(out["address"])
    return out


MAX_DEPTH = 64   # what a hostile target nests deeper is cut (as the evidence store cuts it)


def mask_data(value, depth: int = 0):
    """A copy of JSON-like data with the persons' resources masked (see the module's docstring), and NIRs
    masked in every string; a string that holds a JSON resource or Bundle (an HTTP body) is masked inside."""
    if depth >= MAX_DEPTH and isinstance(value, dict | list | tuple):
        return f"[nested deeper than {MAX_DEPTH} levels: cut]"
    if isinstance(value, dict):
        if value.get("resourceType") in PERSONS:
            value = _person(value)
        elif isinstance(value.get("system"), str) and value["system"].startswith(PERSON_IDENTIFIER_SYSTEMS) \
                and isinstance(value.get("value"), str):
            value = {**value, "value": _keep(value["value"], 1, 2)}
        return {(mask_text(k) if isinstance(k, str) else k): mask_data(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_data(v, depth + 1) for v in value]
    if isinstance(value, str):
        return _mask_string(value)
    return value


# in JSON text that cannot be parsed (a body cut at the evidence cap), the members that hold a person's name,
# birth date or address, whoever the person: masking a practitioner's name too is the safe side
_JSON_STRING = r'"((?:[^"\\]|\\.)*)"'
_PERSON_MEMBER = re.compile(r'("(?:family|birthDate|postalCode)"\s*:\s*)' + _JSON_STRING)
_PERSON_LIST = re.compile(r'("(?:given|line)"\s*:\s*\[)([^\]]*)(\])')


def _mask_member(m: re.Match) -> str:
    key, value = m.group(1), m.group(2)
    if '"birthDate"' in key:
        return f'{key}"{value[:4]}{re.sub(r"[0-9]", MASK, value[4:])}"'
    return f'{key}"{_keep(value, 2 if "postalCode" in key else 1)}"'


def _mask_list(m: re.Match) -> str:
    items = re.sub(_JSON_STRING, lambda s: f'"{_keep(s.group(1), 0 if "line" in m.group(1) else 1)}"', m.group(2))
    return m.group(1) + items + m.group(3)


def _mask_string(text: str) -> str:
    stripped = text.lstrip()
    if stripped.startswith("{") and '"resourceType"' in text:
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):
            return mask_text(_PERSON_LIST.sub(_mask_list, _PERSON_MEMBER.sub(_mask_member, text)))
        return json.dumps(mask_data(parsed), ensure_ascii=False)
    return mask_text(text)
