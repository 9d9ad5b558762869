"""Flawed CDA documents built from the ANS's clean examples (../shared/data/ci-sis/ExemplesCDA) by changing one
thing each: what each flaw breaks, and the requirements it must fail (and nothing else)."""
from __future__ import annotations

import base64
from pathlib import Path

from lxml import etree

from vigie.cda.document import NS, parser

CISIS_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ci-sis"
EXAMPLES = CISIS_DATA / "ExemplesCDA"
CLEAN = "VSM_1.4_2022.01.xml"          # a clean VSM: passes every requirement but nothing of other families
PDF_EXAMPLE = "DOC_NON_STRUCTURE_CDA-R2-N1.xml"


def load(name: str):
    return etree.fromstring((EXAMPLES / name).read_bytes(), parser())


def _remove(root, path):
    for element in root.xpath(path, namespaces=NS):
        element.getparent().remove(element)


def mandatory_section_removed(root):
    # VSM: the section "Pathologies, antécédents, allergies et facteurs de risque" is mandatory
    _remove(root, "cda:component/cda:structuredBody/cda:component[cda:section/cda:templateId"
                  "[@root='1.2.250.1.213.1.1.2.29']]")


def ins_with_wrong_oid(root):
    for element in root.findall("cda:recordTarget/cda:patientRole/cda:id", NS):
        if element.get("root", "").startswith("1.2.250.1.213.1.4."):
            element.set("root", "1.2.250.1.213.1.4.2")     # INS-C, not an INS-NIR


def ins_with_wrong_key(root):
    for element in root.findall("cda:recordTarget/cda:patientRole/cda:id", NS):
        if element.get("root", "").startswith("1.2.250.1.213.1.4."):
            value = element.get("extension")
            element.set("extension", value[:13] + f"{(int(value[13:]) % 97) + 1:02d}")


def code_outside_value_set(root):
    # the document's author's profession, checked against its CI-SIS value set
    root.find("cda:author/cda:assignedAuthor/cda:code", NS).set("code", "ZZ99")


def broken_xsd_structure(root):
    title = root.find("cda:title", NS)
    title.addnext(etree.Element(f"{{{NS['cda']}}}unexpectedElement"))


def author_rpps_malformed(root):
    for element in root.findall("cda:author/cda:assignedAuthor/cda:id", NS):
        element.set("extension", "8123")


def confidentiality_unknown(root):
    root.find("cda:confidentialityCode", NS).set("code", "U")


def custodian_unidentified(root):
    for element in root.findall("cda:custodian/cda:assignedCustodian/cda:representedCustodianOrganization/cda:id", NS):
        for name in list(element.attrib):
            del element.attrib[name]
        element.set("nullFlavor", "UNK")


def unknown_volet(root):
    for element in root.findall("cda:templateId", NS):
        if element.get("root") == "1.2.250.1.213.1.1.1.13":
            element.set("root", "1.2.250.1.213.1.1.1.999")


def script_link(root):
    section = root.find(".//cda:section/cda:text", NS)
    link = etree.SubElement(section, f"{{{NS['cda']}}}linkHtml", href="javascript:alert(document.cookie)")
    link.text = "voir"


def pdf_not_pdf(root):
    text = root.find("cda:component/cda:nonXMLBody/cda:text", NS)
    text.text = base64.b64encode(b"MZ\x90\x00 this is not a PDF file at all").decode()


def media_type_not_allowed(root):
    root.find("cda:component/cda:nonXMLBody/cda:text", NS).set("mediaType", "application/x-msdownload")


def same_document_id(root):
    """Nothing changed: the copy keeps the id of the example it is made from (see build)."""


# flaw -> (example it is built from, the change, the requirements it fails)
FLAWS = {
    "mandatory-section-removed": (CLEAN, mandatory_section_removed, {"CISIS-VSM"}),
    "ins-wrong-oid": (CLEAN, ins_with_wrong_oid, {"CISIS-ENT-01"}),
    "ins-wrong-key": (CLEAN, ins_with_wrong_key, {"CISIS-ENT-01"}),
    "code-outside-value-set": (CLEAN, code_outside_value_set, {"CISIS-VSM"}),
    "broken-xsd-structure": (CLEAN, broken_xsd_structure, {"CDA-R2-02"}),
    "author-rpps-malformed": (CLEAN, author_rpps_malformed, {"CISIS-ENT-02"}),
    "confidentiality-unknown": (CLEAN, confidentiality_unknown, {"CISIS-ENT-03"}),
    "custodian-unidentified": (CLEAN, custodian_unidentified, {"CISIS-ENT-04"}),
    "unknown-volet": (CLEAN, unknown_volet, {"CISIS-VOL-00"}),
    # the second document with the id of the clean example (which is checked first, example/ before flaw/)
    "duplicate-document-id": (CLEAN, same_document_id, {"CISIS-ENT-05"}),
    "script-link": (CLEAN, script_link, {"CDA-R2-03"}),
    "pdf-not-pdf": (PDF_EXAMPLE, pdf_not_pdf, {"CDA-R2-04"}),
    "media-type-not-allowed": (PDF_EXAMPLE, media_type_not_allowed, {"CDA-R2-04"}),
}


def build(flaw: str, n: int) -> bytes:
    """The flawed document, with a document id of its own (the copies of one example must not share theirs)."""
    example, change, _ = FLAWS[flaw]
    root = load(example)
    change(root)
    if change is not same_document_id:
        identifier = root.find("cda:id", NS)
        identifier.set("root", identifier.get("root") + f".{900 + n}")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def change_document_code(root):
    """The document's code, which each volet fixes: outside it, the volet's schematron fails."""
    root.find("cda:code", NS).set("code", "00000-0")


def unmark_mde_mandatory_section(root):
    # the document's only section: removing it would empty structuredBody (a schema error too), so it loses the
    # templateId that makes it the section the volet requires
    for element in root.xpath(".//cda:section/cda:templateId[@root='1.3.6.1.4.1.19376.1.5.3.1.1.5.3.2']",
                              namespaces=NS):
        element.set("root", "1.2.250.1.213.1.1.2.999")


def change_teleconsultation_act(root):
    root.find("cda:documentationOf/cda:serviceEvent/cda:code", NS).set("code", "XX")


# the change that makes a family's example fail its volet, where the document's code is not checked by it (or
# is what tells the family)
FAMILY_CHANGES = {"CSE-MDE": unmark_mde_mandatory_section, "TLM-CR": change_teleconsultation_act}


def build_family_flaw(example: Path, family: str, n: int) -> bytes:
    root = etree.fromstring(example.read_bytes(), parser())
    clinical = root if root.tag.endswith("ClinicalDocument") else next(root.iter(f"{{{NS['cda']}}}ClinicalDocument"))
    FAMILY_CHANGES.get(family, change_document_code)(clinical)
    identifier = clinical.find("cda:id", NS)
    identifier.set("root", identifier.get("root") + f".{800 + n}")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
