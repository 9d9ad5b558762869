"""French health identifiers: check keys and the systems (OIDs, URIs) that carry them.

Sources and caveats are in FACTS.md section 2; the RPPS and FINESS check digits are unverified, so RPPS is
checked for shape only.
"""

from __future__ import annotations

import re

INS_NIR_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
INS_NIA_SYSTEM = "urn:oid:1.2.250.1.213.1.4.9"
INS_NIR_TEST_SYSTEM = "urn:oid:1.2.250.1.213.1.4.10"
INS_NIR_DEMO_SYSTEM = "urn:oid:1.2.250.1.213.1.4.11"
NIR_BILLING_SYSTEM = "urn:oid:1.2.250.1.213.1.4.13"
NIA_BILLING_SYSTEM = "urn:oid:1.2.250.1.213.1.4.14"
RPPS_SYSTEM = "https://rpps.esante.gouv.fr"
FINESS_SYSTEM = "https://finess.esante.gouv.fr"
SIRENE_SYSTEM = "https://sirene.fr"  # SIREN and SIRET share it; only Identifier.type separates them
IDNATPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
IDNATST_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"
# the systems of identifiers that are NIRs (INS-NIR and its test and demo systems, the billing NIR), not NIAs
NIR_SYSTEMS = frozenset({INS_NIR_SYSTEM, INS_NIR_TEST_SYSTEM, INS_NIR_DEMO_SYSTEM, NIR_BILLING_SYSTEM})

LA_POSTE_SIREN = "356000000"

# sex, year, month, department (2 digits or Corsica 2A/2B), commune, order
_NIR13 = re.compile(r"[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{6}", re.IGNORECASE)


def nir_key(nir13: str) -> int:
    """The NIR key 97 - (number mod 97); Corsica's 2A/2B count as 19/18. ValueError if malformed."""
    if not isinstance(nir13, str) or not _NIR13.fullmatch(nir13):
        raise ValueError(f"not a 13-character NIR: {nir13!r}")
    dept = nir13[5:7].upper()
    digits = nir13[:5] + {"2A": "19", "2B": "18"}.get(dept, dept) + nir13[7:]
    return 97 - int(digits) % 97


def nir_is_valid(nir15: str) -> bool:
    if not isinstance(nir15, str) or len(nir15) != 15 or not nir15[13:].isdigit():
        return False
    try:
        expected = nir_key(nir15[:13])
    except ValueError:
        return False
    return int(nir15[13:]) == expected


def _luhn_sum(digits: str) -> int:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total


def _digits(value: object, length: int | None = None) -> bool:
    # isdigit() also accepts superscripts and other Unicode digits: ASCII only
    return (isinstance(value, str) and value.isascii() and value.isdigit()
            and (length is None or len(value) == length))


def luhn_is_valid(digits: str) -> bool:
    return _digits(digits) and _luhn_sum(digits) % 10 == 0


def luhn_complete(prefix: str) -> str:
    """prefix + the check digit that makes it Luhn-valid."""
    if not _digits(prefix):
        raise ValueError(f"not a string of digits: {prefix!r}")
    return prefix + str(-_luhn_sum(prefix + "0") % 10)


def siren_is_valid(siren: str) -> bool:
    return _digits(siren, 9) and luhn_is_valid(siren)


def siret_is_valid(siret: str) -> bool:
    if not _digits(siret, 14):
        return False
    # La Poste's establishments outnumber what the NIC's Luhn key can number: they use a digit sum mod 5
    if siret.startswith(LA_POSTE_SIREN):
        return luhn_is_valid(siret) or sum(map(int, siret)) % 5 == 0
    return luhn_is_valid(siret)


def sirene_is_valid(number: str) -> bool:
    """A SIREN (9 digits) or a SIRET (14): https://sirene.fr carries both, Identifier.type tells which."""
    return siret_is_valid(number) if isinstance(number, str) and len(number) == 14 else siren_is_valid(number)


def finess_is_valid(finess: str) -> bool:
    return _digits(finess, 9) and luhn_is_valid(finess)


def rpps_is_valid(rpps: str) -> bool:
    # shape only: most RPPS numbers in ANS artefacts fail Luhn, the real key rule is unknown
    return _digits(rpps, 11)
