"""The ANS schematrons on Saxon-HE (saxonche): compiled once per run through the ISO skeleton stylesheets the
test content ships (schematrons/moteur/iso_*.xsl), the compiled XSLT kept on disk by content digest across runs,
one Saxon processor for the process.

The includes are assembled by vigie rather than by iso_dsdl_include.xsl: the content was written on Windows and
some of its include paths differ from the files' names in letter case only, which a case-sensitive file system
would refuse. The compiled stylesheet carries the .sch file's location as its base URI, so that the relative
paths to jeuxDeValeurs/ in its document() calls resolve as in the ANS's own tooling."""
from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lxml import etree

from ..errors import ObservationError
from ..extras import missing

SCH = "http://purl.oclc.org/dsdl/schematron"
SVRL = "http://purl.oclc.org/dsdl/svrl"
STEPS = ("iso_abstract_expand.xsl", "iso_svrl_for_xslt2.xsl")
ENGINE = "vigie-schematron/1"     # changes when the way vigie compiles changes: older compiled files are ignored
MAX_INCLUDE_DEPTH = 20
_LOCK = threading.Lock()
_PROCESSOR = None


def processor():
    """The process's one Saxon processor (saxonche allows one per process in practice: each starts a VM)."""
    global _PROCESSOR
    with _LOCK:
        if _PROCESSOR is None:
            try:
                from saxonche import PySaxonProcessor
            except ImportError:
                raise ObservationError(missing("saxonche", "cda")) from None
            _PROCESSOR = PySaxonProcessor(license=False)
        return _PROCESSOR


@dataclass(frozen=True)
class Finding:
    """A failed assertion or a successful report of a schematron, as the SVRL says it."""
    schematron: str
    rule: str           # the assertion's id, else its pattern's
    location: str       # XPath of the node in the document
    level: str          # error, warning or info (from role, else flag; none: error)
    message: str        # the ANS's text, verbatim but for whitespace

    def to_json(self) -> dict:
        return asdict(self)


def _find(folder: Path, relative: str) -> Path | None:
    """`relative` under `folder`, matching each part's letter case loosely when the exact name is absent."""
    path = folder
    for part in Path(relative).parts:
        if part == "..":
            path = path.parent
            continue
        if part == ".":
            continue
        exact = path / part
        if exact.exists():
            path = exact
            continue
        if not path.is_dir():
            return None
        match = [p for p in path.iterdir() if p.name.lower() == part.lower()]
        if not match:
            return None
        path = match[0]
    return path if path.is_file() and path.stat().st_size else None


def _parse(path: Path):
    try:
        return etree.parse(str(path), etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False))
    except etree.XMLSyntaxError as exc:
        raise ObservationError(f"the schematron file {path.name} is not well-formed: {exc}") from None


def assemble(sch: Path, root: Path, depth: int = 0):
    """The schematron with every <include> replaced by what it names (ISO Schematron includes)."""
    if depth > MAX_INCLUDE_DEPTH:
        raise ObservationError(f"{sch.name}: includes nested more than {MAX_INCLUDE_DEPTH} deep")
    tree = _parse(sch)
    for include in list(tree.getroot().iter(f"{{{SCH}}}include")):
        href = include.get("href") or ""
        target, _, fragment = href.partition("#")
        found = _find(sch.parent, target)
        if found is None:
            raise ObservationError(f"{sch.relative_to(root).as_posix()} includes {href}, which is not in the "
                                   "CI-SIS content (missing or empty)")
        element = assemble(found, root, depth + 1).getroot()
        if fragment:
            element = next((e for e in element.iter() if e.get("id") == fragment), None)
            if element is None:
                raise ObservationError(f"{found.name} has no element with id {fragment}")
        include.getparent().replace(include, element)
    return tree


class Schematrons:
    """The compiled schematrons of one CI-SIS content, for a run."""

    def __init__(self, content, cache_dir: Path):
        self.content = content
        self.cache_dir = Path(cache_dir)
        self._compiled: dict[str, object] = {}
        self._errors: dict[str, str] = {}
        self.timings: dict[str, float] = {}     # seconds to compile each (from the disk cache: to load)
        self.from_disk: set[str] = set()
        self._steps = None

    def _skeleton(self):
        if self._steps is None:
            moteur = self.content.schematrons / "moteur"
            xslt = processor().new_xslt30_processor()
            steps = []
            for name in STEPS:
                if not (moteur / name).is_file():
                    raise ObservationError(f"the ISO skeleton stylesheet moteur/{name} is not in the CI-SIS content")
                steps.append(xslt.compile_stylesheet(stylesheet_file=str(moteur / name)))
            self._steps = steps
        return self._steps

    def _key(self, relative: str) -> str:
        return hashlib.sha256(f"{ENGINE}\0{self.content.digest}\0{relative}".encode()).hexdigest()

    def xslt_text(self, relative: str) -> str:
        """The schematron compiled to XSLT: from the disk cache, else compiled and stored there."""
        cached = self.cache_dir / f"{self._key(relative)}.xsl"
        if cached.is_file():
            self.from_disk.add(relative)
            return cached.read_text(encoding="utf-8")
        sch = self.content.schematrons / relative
        if not sch.is_file():
            raise ObservationError(f"the schematron {relative} is not in the CI-SIS content")
        node = processor().parse_xml(xml_text=etree.tostring(assemble(sch, self.content.schematrons),
                                                             encoding="unicode"))
        for step in self._skeleton():
            node = step.transform_to_value(xdm_node=node).head
        text = str(node)
        # document('../jeuxDeValeurs/...') resolves against the stylesheet's base URI: the .sch's own place
        text = re.sub(r"<xsl:stylesheet\b", f'<xsl:stylesheet xml:base="{sch.resolve().as_uri()}"', text, count=1)
        try:   # a cache that cannot be written (a read-only package cache) only costs the next run the compile
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            partial = cached.with_suffix(f".{time.monotonic_ns()}.part")
            partial.write_text(text, encoding="utf-8")
            partial.replace(cached)
        except OSError:
            pass
        return text

    def executable(self, relative: str):
        if relative in self._errors:
            raise ObservationError(self._errors[relative])
        if relative not in self._compiled:
            started = time.monotonic()
            try:
                text = self.xslt_text(relative)
                self._compiled[relative] = processor().new_xslt30_processor().compile_stylesheet(
                    stylesheet_text=text)
            except ObservationError as exc:
                self._errors[relative] = str(exc)
                raise
            except Exception as exc:   # noqa: BLE001 - Saxon's own error (PySaxonApiError): the rules are unusable
                self._errors[relative] = f"the schematron {relative} cannot be compiled: {_first_line(exc)}"
                raise ObservationError(self._errors[relative]) from None
            self.timings[relative] = round(time.monotonic() - started, 3)
        return self._compiled[relative]

    def validate(self, relative: str, xml: str) -> list[Finding]:
        """The failed assertions and successful reports of one schematron on one document (its text)."""
        executable = self.executable(relative)
        try:
            node = processor().parse_xml(xml_text=xml)
            svrl = executable.transform_to_string(xdm_node=node)
        except Exception as exc:   # noqa: BLE001 - a dynamic error of the rules on this document
            raise ObservationError(f"the schematron {relative} stopped on this document: {_first_line(exc)}") \
                from None
        return parse_svrl(svrl, relative)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


LEVELS = {"fatal": "error", "error": "error", "erreur": "error", "warning": "warning", "warn": "warning",
          "avertissement": "warning", "info": "info", "information": "info"}


def level_of(element) -> str:
    for attribute in ("role", "flag"):
        value = (element.get(attribute) or "").strip().lower()
        if value:
            return LEVELS.get(value, "error")
    return "error"


def parse_svrl(svrl: str, schematron: str) -> list[Finding]:
    root = etree.fromstring(svrl.encode("utf-8"), etree.XMLParser(resolve_entities=False, no_network=True,
                                                                   huge_tree=True))
    findings, pattern = [], ""
    for element in root:
        tag = etree.QName(element).localname
        if tag == "active-pattern":
            pattern = element.get("id") or element.get("name") or ""
        elif tag in ("failed-assert", "successful-report"):
            text = " ".join("".join(element.find(f"{{{SVRL}}}text").itertext()).split()) \
                if element.find(f"{{{SVRL}}}text") is not None else ""
            findings.append(Finding(schematron, element.get("id") or pattern, element.get("location") or "",
                                    level_of(element), text))
    return findings
