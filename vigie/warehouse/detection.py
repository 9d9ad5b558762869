"""What a direct identifier looks like in free text: regular expressions that every engine runs alike (RE2 in
DuckDB, PostgreSQL's ARE, Python's re for SQLite): no look-around, no back-reference, no \\b, one capturing
group (the identifier itself), case-insensitivity only for a whole pattern.

An identifier never touches a letter or a digit: a fragment of a UUID, of a hash or of a longer number is
not one (a UUID's groups are hexadecimal, so any 10 digits inside one touch a hex digit or another digit).

SQL counts what a pattern decides alone. Two judgements SQL cannot make portably are made in Python on the
candidate values SQL selects (`confirm`): the key of every NIR-shaped number of a value beyond the first,
and disease eponyms that read as names ("Pierre Robin syndrome", "maladie de Crohn").
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..identifiers import nir_is_valid
from .cdm import DATA

# neither side of an identifier touches a letter or a digit
L, R = r"(?:^|[^0-9A-Za-z])", r"(?:$|[^0-9A-Za-z])"


def _sections(name: str, first: str, lines: bool = False) -> tuple[list, list]:
    """The two sections of a data file: `first`'s entries, then the other's (one a line, or words)."""
    one, two, current = [], [], None
    for line in (DATA / name).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = one if line == first else two
            continue
        current.extend([line] if lines and current is one else line.split())
    return one, two


GIVEN, FAMILY = _sections("names.txt", "[given]")

# NIR: written whole or grouped as on the carte Vitale (1 85 05 75 123 456 78), with spaces, dots or dashes; its
# key may be announced ("... 084 clé 91", "cle", "clef", in parentheses). KEY_WORDS are also what the key
# check strips, so the regular expression and the SQL that reads the number back agree on every form.
KEY_WORDS = ("clef", "Clef", "CLEF", "clé", "Clé", "CLÉ", "cle", "Cle", "CLE")
NIR_SEPARATORS = (" ", ".", "-", "(", ":", "=")
_KEY = r"(?:[ .-]?|[ .(-]*(?:" + "|".join(KEY_WORDS) + r")[ .:=]*)"
NIR_BODY = (r"[1-478][ .-]?[0-9]{2}[ .-]?[0-9]{2}[ .-]?(?:[0-9]{2}|2[ABab])[ .-]?[0-9]{3}[ .-]?[0-9]{3}"
            + _KEY + r"[0-9]{2}")
NIR = L + "(" + NIR_BODY + ")" + R
# a value with two NIR-shaped numbers (a superset: boundaries are judged in Python)
NIR_TWICE = "(" + NIR_BODY + r")(?:.|\n)*" + NIR_BODY

# e-mail: written plainly, or obfuscated ("jean.dupont [at] aphp [dot] fr", "(at)", " at ", "arobase"); an
# obfuscated address ends with a common top-level domain, so that English prose ("seen at home.Then") is not one
_TLD = r"(?:fr|com|org|net|eu|be|ch|lu|info|io|re|mc)"
_AT = r"(?: ?[\[\(\{<] ?(?:at|AT|At|arobase|AROBASE) ?[\]\)\}>] ?| (?:at|AT|arobase|AROBASE) )"
_DOT = r"(?:\.| ?[\[\(\{<] ?(?:dot|DOT|Dot|point|POINT) ?[\]\)\}>] ?| (?:dot|DOT|point|POINT) )"
EMAIL = r"([A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"
EMAIL_OBFUSCATED = (r"([A-Za-z0-9._%+-]+" + _AT + r"[A-Za-z0-9-]+(?:" + _DOT + r"[A-Za-z0-9-]+)*" + _DOT + _TLD
                    + r")(?:$|[^A-Za-z0-9-])")

# French phone: national (06 12 34 56 78) or international (+33 6 12 34 56 78, +33 (0)6 12..., 0033 6...)
PHONE = (L + r"((?:(?:\+|00)33[ .-]?(?:\(0\)[ .-]?)?|0)[1-9](?:[ .-]?[0-9]{2}){4})" + R)

ADDRESS = (r"(?:^|[^A-Za-z0-9])([0-9]{1,4}(?: ?(?:bis|ter))?,? (?:rue|avenue|av\.|boulevard|bd|place|allée|allee|"
           r"chemin|impasse|route|quai|cours|square) [^,;]{2,40})")

# names: a given name of the list (compound: Marie-Claire) then a family name of the list, any case; an
# upper-case family name then a capitalised given name (DUPONT Jean, LE GALL Marie-Claire); a civility then
# a capitalised or upper-case word (Mme Durand, M. Martin, Dr Lefort, Madame Sophie Lambert)
_G = "(?:" + "|".join(GIVEN) + ")"
_F = "(?:" + "|".join(FAMILY) + ")"
_GCAP = "(?:" + "|".join(sorted({g[0].upper() + g[1:] for g in GIVEN})) + ")"
_UP = r"[A-ZÀ-Þ][A-ZÀ-Þ'-]{2,}"
_CIVILITY = (r"(?:M\.|MM\.|Mme|Mmes|Mlle|Mr\.?|Mrs\.?|Ms\.?|Dr\.?|Pr\.?|Monsieur|Madame|Mademoiselle|Docteur|"
             r"Professeur)")
NAME_LISTED = r"(?:^|[^a-zà-ÿ])(" + _G + "(?:-" + _G + ")?[ -]+" + _F + r")(?:$|[^a-zà-ÿ])"
NAME_UPPER_FIRST = (r"(?:^|[^A-Za-zÀ-ÿ])(" + _UP + "(?: " + _UP + ")? " + _GCAP + "(?:-" + _GCAP + r")?)"
                    r"(?:$|[^A-Za-zÀ-ÿ])")
NAME_CIVILITY = (r"(?:^|[^A-Za-zÀ-ÿ])(" + _CIVILITY + r" (?:[A-ZÀ-Þ][a-zà-ÿ'-]+|[A-ZÀ-Þ]{2,})"
                 r"(?: [A-ZÀ-Þ][A-Za-zÀ-ÿ'-]+)?)(?:$|[^A-Za-zÀ-ÿ])")

EPONYM_NAMES, EPONYM_SURNAMES = _sections("eponyms.txt", "[names]", lines=True)
_CONTEXT_BEFORE = r"(?:maladie|syndrome|signe|sclérose|sclerose|paralysie|tétralogie|tetralogie)s? (?:de |d')"
_CONTEXT_AFTER = r"(?:'s)? (?:disease|syndrome|sign|palsy|sequence)"
_WORD = r"(?-i:[A-ZÀ-Þ][A-Za-zÀ-ÿ'-]+(?:[ -][A-ZÀ-Þ][A-Za-zÀ-ÿ'-]+)?)"   # a capitalised name, whatever the flag
_EPONYMS = re.compile("|".join([
    r"(?<![A-Za-zÀ-ÿ])(?:" + "|".join(re.escape(e) for e in EPONYM_NAMES + EPONYM_SURNAMES) + r")(?![a-zà-ÿ])",
    _CONTEXT_BEFORE + _WORD, _WORD + _CONTEXT_AFTER]), re.IGNORECASE)


@dataclass(frozen=True)
class Kind:
    name: str
    label: str                 # "a French phone number"
    patterns: tuple            # ((pattern, icase), ...): the value holds the kind when one matches
    judged: bool = False       # SQL selects candidates; `confirm` decides


KINDS = {k.name: k for k in (
    Kind("nir", "a NIR/INS number with a valid key", ((NIR, False),), judged=True),
    Kind("email", "an e-mail address", ((EMAIL, False), (EMAIL_OBFUSCATED, False))),
    Kind("phone", "a French phone number", ((PHONE, False),)),
    Kind("address", "a postal address", ((ADDRESS, True),)),
    Kind("name", "a person's name",
         ((NAME_LISTED, True), (NAME_UPPER_FIRST, False), (NAME_CIVILITY, False)), judged=True),
)}

_NIR_ALL = re.compile(r"(?<![0-9A-Za-z])(" + NIR_BODY + r")(?![0-9A-Za-z])")


def nir_digits(text: str) -> str:
    """A written NIR as its 15 characters (separators and the announced key's word dropped)."""
    for word in KEY_WORDS:
        text = text.replace(word, "")
    for sep in NIR_SEPARATORS:
        text = text.replace(sep, "")
    return text.upper()


def _compiled(kind: Kind) -> list:
    return [re.compile(p, re.IGNORECASE if icase else 0) for p, icase in kind.patterns]


_PYTHON = {name: _compiled(kind) for name, kind in KINDS.items()}


def confirm(kind: str, value) -> str | None:
    """The identifier of this kind that the value holds, judged in full (every NIR-shaped number's key;
    names once disease eponyms are set aside), or None."""
    if value is None:
        return None
    text = str(value)
    if kind == "nir":
        for found in _NIR_ALL.finditer(text):
            if nir_is_valid(nir_digits(found.group(1))):
                return found.group(1)
        return None
    if kind == "name":
        text = _EPONYMS.sub("#", text)   # a mark, not a space: removing a word must not join two others
    for pattern in _PYTHON[kind]:
        found = pattern.search(text)
        if found:
            return found.group(1)
    return None
