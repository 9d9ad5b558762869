"""A CDA document read without trusting it: lxml with no network, no DTD, no entity expansion, a size cap;
a document type declaration is refused outright (CDA needs none, and it is where entity bombs live)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

HL7 = "urn:hl7-org:v3"
NS = {"cda": HL7}
MAX_BYTES = 64 << 20


def parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_blank_text=False)


@dataclass
class CdaDocument:
    name: str                 # the file name, as reports show it
    raw: bytes = field(repr=False)
    problem: str | None = None              # why it is not a well-formed CDA document (or was not fetched)
    fetched: bool = True                    # False: a server's document that could not be fetched (problem says why)
    root: object = field(default=None, repr=False)        # the document's root element
    clinical: object = field(default=None, repr=False)    # its ClinicalDocument (inside an auto-presentable XSLT)

    @property
    def ok(self) -> bool:
        return self.problem is None


def read_document(path: Path, name: str | None = None) -> CdaDocument:
    name = name or path.name
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            return CdaDocument(name, b"", f"{size} bytes: larger than the {MAX_BYTES >> 20} MB vigie reads")
        raw = path.read_bytes()
    except OSError as exc:
        return CdaDocument(name, b"", f"cannot read: {exc.strerror or exc}")
    return parse_document(raw, name)


def parse_document(raw: bytes, name: str) -> CdaDocument:
    doc = CdaDocument(name, raw)
    try:
        tree = etree.fromstring(raw, parser()).getroottree()
    except etree.XMLSyntaxError as exc:
        doc.problem = f"not well-formed XML: {exc}"
        return doc
    except (ValueError, MemoryError, RecursionError) as exc:
        doc.problem = f"not readable as XML: {type(exc).__name__}: {exc}"
        return doc
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        doc.problem = "holds a document type declaration (DOCTYPE): refused, a CDA document needs none"
        return doc
    doc.root = tree.getroot()
    if doc.root.tag == f"{{{HL7}}}ClinicalDocument":
        doc.clinical = doc.root
    else:   # an auto-presentable document: an XSLT stylesheet that carries the ClinicalDocument
        doc.clinical = next(iter(doc.root.iter(f"{{{HL7}}}ClinicalDocument")), None)
    if doc.clinical is None:
        doc.problem = f"no ClinicalDocument element in the HL7 v3 namespace (root element {doc.root.tag})"
    return doc


def clinical_text(doc: CdaDocument) -> str:
    """The ClinicalDocument alone, as the ANS's tooling selects it (selectCDA.xsl), as text for Saxon: whatever
    the file's encoding or byte order mark, what lxml read."""
    return etree.tostring(doc.clinical, encoding="unicode")
