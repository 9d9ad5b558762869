"""vigie's sentences in the report's language.

Checks and observations write their summaries and messages in English, with the values they observed in
them. The French catalogue (vigie/locale/fr.json, kept complete by scripts/messages.py and the tests) holds,
for each English template, its French: a sentence is recognised by its template (the message key), its values
are read back as the template's parameters, and the French template is filled with them, each value itself
translated when it is one of vigie's sentences. report.json keeps the English, which `vigie diff` and the
tools reading it compare; the renderings show the report's language.
"""
from __future__ import annotations

import copy
import json
import re
import string
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

CATALOGUES = Path(__file__).resolve().parent / "locale"
# what the checks join lists of findings with, the widest first
LIST_SEPARATORS = ("; ", ", ", ": ")
FRAGMENT_STARTS = (" ", ";", ",", ":")


@dataclass(frozen=True)
class Template:
    english: str
    translation: str
    pattern: re.Pattern   # anchored at the end: match() reads a whole text, search() the end of a longer one
    head: re.Pattern | None   # the template at the start of a longer text (one that ends with its own words)
    anchor: str   # the longest literal part: a sentence without it cannot match
    literal: int   # how many characters of the sentence are the template's own
    suffix: bool   # may end a longer text: it starts with its own words (a fragment: with a space or a mark)


def _compile(english: str) -> tuple[str, str]:
    pattern, seen, literals = "", set(), []
    for literal, field, _spec, _conversion in string.Formatter().parse(english):
        pattern += re.escape(literal)
        literals.append(literal)
        if field is None:
            continue
        pattern += f"(?P={field})" if field in seen else f"(?P<{field}>.*?)"
        seen.add(field)
    return pattern, max(literals, key=len, default="")


@cache
def catalogue(lang: str) -> tuple[Template, ...]:
    """The templates of `lang`, the most specific first (the longest literal text)."""
    path = CATALOGUES / f"{lang}.json"
    if not path.is_file():
        return ()
    entries = json.loads(path.read_text(encoding="utf-8"))
    templates = []
    for english, translation in entries.items():
        if not translation or translation == english:
            continue
        pattern, anchor = _compile(english)
        literal = len(re.sub(r"\{[^{}]*\}", "", english).replace("{{", "{").replace("}}", "}"))
        head = re.compile(pattern, re.DOTALL) if english[-1:] != "}" and len(anchor.strip()) > 3 else None
        templates.append(Template(english, translation, re.compile(pattern + r"\Z", re.DOTALL), head, anchor, literal,
                                  suffix=english[:1] != "{" and len(anchor.strip()) > 3))
    return tuple(sorted(templates, key=lambda t: (-t.literal, t.english)))


def key_of(text: str, lang: str = "fr") -> tuple[str, dict[str, str]] | None:
    """The template `text` was written from, and its parameters; None when it is none of vigie's sentences."""
    for template in catalogue(lang):
        if template.anchor in text:
            match = template.pattern.match(text)
            if match:
                return template.english, match.groupdict()
    return None


def quote(text: object) -> str:
    """What another program said (OpenSSL, sslyze, a server), quoted in one of vigie's sentences: a reader, and
    the translation, tell it from vigie's own words."""
    return '"' + str(text).replace('"', "'") + '"'


def translate(text: str, lang: str) -> str:
    """`text` in `lang`: its template's translation filled with its (translated) parameters, or `text` as it
    is when it is not one of vigie's sentences (a value quoted from the target, an unknown sentence)."""
    if lang == "en" or not text:
        return text
    return _reading(text, lang)[1]


@lru_cache(maxsize=1 << 16)
def _reading(text: str, lang: str) -> tuple[int, str]:
    """The best reading of `text`: (how many of its characters are vigie's own words, its translation).

    A text may be read several ways: as one sentence of the catalogue (its values read in turn), as a sentence
    ended by a fragment the code appended (" (from ...)"), as a list the code joined; the reading that
    recognises the most of vigie's words wins, so that a sentence nested in another is read as the code
    wrote it rather than cut where a shorter template happens to match."""
    if not text.strip():
        return 0, text
    if "\n" in text:   # a message of several lines: each line is a sentence
        lines = [_reading(line, lang) for line in text.split("\n")]
        return sum(n for n, _ in lines), "\n".join(t for _, t in lines)
    readings = []
    for template in catalogue(lang):
        if template.anchor not in text:
            continue
        match = template.pattern.match(text)
        if match:
            readings.append(_filled(template, match, lang))
        # the sentence at the end of a longer text ("Patient/1: Patient.gender: <the validator's sentence>"),
        # or a fragment the code appended (" (from ...)")
        if template.suffix and (match := template.pattern.search(text, 1)) and (
                template.english[0] in FRAGMENT_STARTS or text[match.start() - 1] == " "):
            known, head = _reading(text[:match.start()], lang)
            recognised, tail = _filled(template, match, lang)
            readings.append((known + recognised, head + tail))
        # the sentence at the start of a longer text ("<a sentence>: line 1 column 1 (char 0)")
        if template.head and (match := template.head.match(text)) and match.end() < len(text):
            recognised, head = _filled(template, match, lang)
            known, tail = _reading(text[match.end():], lang)
            readings.append((recognised + known, head + tail))
    if text[:1] != text[:1].lower():   # a sentence the validator capitalised
        recognised, lowered = _reading(text[:1].lower() + text[1:], lang)
        if recognised:
            readings.append((recognised, lowered[:1].upper() + lowered[1:]))
    for separator in LIST_SEPARATORS:   # a list the code joined
        if separator in text:
            items = [_reading(item, lang) for item in text.split(separator)]
            readings.append((sum(n for n, _ in items), separator.join(t for _, t in items)))
    return max(readings, key=lambda r: r[0], default=(0, text)) if readings else (0, text)


def _filled(template: Template, match: re.Match, lang: str) -> tuple[int, str]:
    values = {name: _reading(value, lang) for name, value in match.groupdict().items()}
    return (template.literal + sum(n for n, _ in values.values()),
            template.translation.format(**{name: t for name, (_, t) in values.items()}))


def localized(report: dict, lang: str) -> dict:
    """A copy of `report` whose outcomes' summaries and messages are in `lang`."""
    if lang == "en":
        return report
    report = copy.copy(report)
    report["outcomes"] = [{**o, "summary": translate(o.get("summary") or "", lang),
                           "messages": [translate(str(m), lang) for m in o.get("messages") or []]}
                          for o in report.get("outcomes", [])]
    return report
