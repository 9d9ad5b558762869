"""The FHIR narrative (the `xhtml` type): a single XHTML <div>, well-formed, using only the basic HTML
formatting elements the specification allows (narrative.html: HTML 4.0 chapters 7 to 11, except inserted
and deleted text, and 15, plus links and images), with no script, no event handler, no active content, no
DOCTYPE and no entity other than XML's five (a narrative is read without any DTD)."""
from __future__ import annotations

import re
import xml.parsers.expat

XHTML_NS = "http://www.w3.org/1999/xhtml"

ALLOWED = frozenset(["div", "span", "h1", "h2", "h3", "h4", "h5", "h6", "address", "bdo", "em", "strong", "dfn", "code", "samp", "kbd", "var", "cite", "abbr", "acronym", "blockquote", "q", "sub", "sup", "p", "br", "pre", "ul", "ol", "li", "dl", "dt", "dd", "dir", "menu", "table", "caption", "thead", "tfoot", "tbody", "colgroup", "col", "tr", "th", "td", "tt", "i", "b", "big", "small", "strike", "s", "u", "font", "basefont", "hr", "a", "img", "map", "area"])
_ACTIVE_URL = re.compile(r"^\s*(javascript|vbscript|data:text/html)", re.IGNORECASE)


def narrative_problem(text: str) -> str | None:
    """Why the value is not an acceptable narrative, or None."""
    malformed, problems = _examine(text)
    return malformed or (problems[0] if problems else None)


def html_rules_met(text) -> bool | None:
    """FHIRPath htmlChecks() for txt-1 (R4 narrative.html#rules: "The narrative SHALL contain only the basic
    html formatting elements and attributes..."): False when well-formed XHTML breaks those rules, True when
    it keeps them, None when it is not well-formed XHTML at all (reported as such, not as txt-1)."""
    if not isinstance(text, str):
        return None
    malformed, problems = _examine(text)
    return None if malformed else not problems


def _examine(text: str) -> tuple[str | None, list[str]]:
    """(why the text is not well-formed XHTML, or None; what in it breaks the narrative's rules)."""
    if re.search(r"<!DOCTYPE|<!ENTITY", text, re.IGNORECASE):
        return "the narrative must not declare a DOCTYPE or entities", []
    problems: list[str] = []
    depth = [0]

    def start(name, attrs):
        ns, _, local = name.rpartition(" ")
        if depth[0] == 0:
            if local != "div" or ns != XHTML_NS:
                problems.append(f"the narrative must be an XHTML <div> element in the namespace {XHTML_NS}")
        elif ns == XHTML_NS and local not in ALLOWED:
            problems.append(f"Illegal element name in the XHTML ('{local}')")
        elif ns != XHTML_NS:
            problems.append(f"Illegal element in the XHTML: '{local}' is not in the XHTML namespace")
        for attr, value in attrs.items():
            attr_local = attr.rpartition(" ")[2]
            if attr_local.lower().startswith("on"):
                problems.append(f"Illegal attribute name in the XHTML ('{attr_local}')")
            elif attr_local in ("href", "src") and _ACTIVE_URL.match(value):
                problems.append(f"Illegal active content in the XHTML ('{attr_local}' of <{local}>)")
        depth[0] += 1

    def end(_name):
        depth[0] -= 1

    def instruction(target, _data):
        problems.append(f"Illegal processing instruction in the XHTML ('{target}')")

    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.ProcessingInstructionHandler = instruction
    try:
        parser.Parse(text, True)
    except xml.parsers.expat.ExpatError as exc:
        message = xml.parsers.expat.errors.messages.get(exc.code, str(exc))
        if message == xml.parsers.expat.errors.XML_ERROR_UNDEFINED_ENTITY:
            found = re.search(r"&[A-Za-z][A-Za-z0-9]*;", text[_offset(text, exc):] or text)
            return f"Invalid entity in the XHTML ('{found.group(0) if found else '&...;'}')", []
        return f"the narrative is not well-formed XHTML: {message} (line {exc.lineno}, column {exc.offset})", []
    return None, problems


def _offset(text: str, exc) -> int:
    """The character offset of an expat error (its line is 1-based, its column 0-based)."""
    lines = text.split("\n")
    return sum(len(line) + 1 for line in lines[:exc.lineno - 1]) + exc.offset


def html_has_content(text) -> bool | None:
    """txt-2 (R4 narrative.html: "The narrative SHALL have some non-whitespace content"): some text that is
    not whitespace, or an image; None when the text is not well-formed XHTML (reported as such)."""
    if not isinstance(text, str):
        return None
    found = [False]

    def start(name, _attrs):
        if name.rpartition(" ")[2] == "img":
            found[0] = True

    def data(chars):
        if chars.strip():
            found[0] = True

    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    parser.StartElementHandler = start
    parser.CharacterDataHandler = data
    try:
        parser.Parse(text, True)
    except xml.parsers.expat.ExpatError:
        return None
    return found[0]
