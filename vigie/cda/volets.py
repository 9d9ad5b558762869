"""The CI-SIS volet (content model) of a document, from its templateIds and its code, and the schematron of
that volet in the test content (CI-SIS_<volet>_<version>.sch; the version from the templateId's extension).

A family groups the versions of one volet: one requirement of the ci-sis profile per family. The volet
templateIds are those the CI-SIS assigns under 1.2.250.1.213.1.1.1 (the ANS's examples carry them); a
non-structured document (IHE XDS-SD, 1.3.6.1.4.1.19376.1.2.20) is a téléconsultation report (TLM-CR) by its
code 85208-7, otherwise a generic non-structured document (family CDA-R2-N1) checked by the shared profiles only.

A templateId without a version (no extension), or with one the content has no schematron for, does not say which
version of the volet the document follows: each version the content holds is a candidate, the newest first, and
the document meets its volet when it meets one of them."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .document import NS

CISIS = "1.2.250.1.213.1.1.1."
XDS_SD = "1.3.6.1.4.1.19376.1.2.20"
# the shared profiles the ANS applies to every document (schematrons/moteur/compilverif.bat) that the published
# content can run: structurationMinimale needs voc-*.xml files and terminologie.sch terminology files that the
# published content does not hold
SHARED = ("profils/IHE.sch", "profils/CI-SIS_ModelesDeContenusCDA.sch", "profils/CI-SIS_Modeles_ANS.sch")
# family -> the suffix of its templateId under 1.2.250.1.213.1.1.1.
FAMILIES = {
    "ANEST-CR-ANEST": "40", "ANEST-CR-CPA": "41", "AVC-AUNV": "15", "AVC-EUNV": "16", "AVC-PAVC": "25",
    "AVC-SUNV": "17", "BIO-CR-BIO": "55", "BIO-TROD": "59", "CANCER-CR-GM": "32", "CANCER-D2LM-FIDD": "28",
    "CANCER-D2LM-FIN": "27", "CANCER-FRCP": "8", "CANCER-PPS": "26", "CARD-F-PRC-AVK": "2.1.1",
    "CARD-F-PRC-DCI": "2.1.3", "CARD-F-PRC-PPV": "2.1.5", "CARD-F-PRC-TAP": "2.1.2", "CNAM-HR": "36",
    "CSE-CS24": "5.3", "CSE-CS8": "5.1", "CSE-CS9": "5.2", "CSE-MDE": "5.4", "DLU-EHPAD-DLU": "22",
    "DLU-EHPAD-FLUDR": "24", "DLU-EHPAD-FLUDT": "23", "EP-MED-DM": "39", "IMG-DA-IMG": "47", "IPS-FR": "51",
    "LDL-EES": "21", "LDL-SES": "29", "OBP-SAP": "12.1", "OBP-SCM": "12.4", "OBP-SEM": "12.5", "OBP-SNE": "12.3",
    "OBP-SNM": "12.2", "OPH-BRE": "42", "OPH-CR-RTN": "18", "SDM-MR": "30", "TLM-DA": "38", "VAC": "37",
    "VSM": "13",
}
BY_TEMPLATE = {CISIS + suffix: family for family, suffix in FAMILIES.items()}
NON_STRUCTURED = {"85208-7": "TLM-CR"}
GENERIC = "CDA-R2-N1"     # a non-structured document of no volet: the shared profiles only
_SCH = re.compile(r"^CI-SIS_(.+?)_((?:[\d.]+_)?\d{4}\.\d{2})\.sch$")


@dataclass(frozen=True)
class Volet:
    family: str
    candidates: tuple = ()     # schematrons (relative to schematrons/) it may follow; empty: shared profiles only
    templates: tuple = ()

    @property
    def schematron(self) -> str | None:
        """The schematron named by the document's version, else the newest candidate."""
        return self.candidates[0] if self.candidates else None

    def to_json(self) -> dict:
        return {"family": self.family, "candidates": list(self.candidates)}


def versions(schematrons: Path) -> dict[str, list[tuple[str, str]]]:
    """family -> [(version, file name)] of the volet schematrons in the content, oldest first."""
    found: dict[str, list] = {}
    for sch in sorted(schematrons.glob("CI-SIS_*.sch")):
        if m := _SCH.match(sch.name):
            found.setdefault(m.group(1).upper(), []).append((m.group(2), sch.name))
    return {k: sorted(v) for k, v in found.items()}


def detect(clinical, schematrons: Path) -> Volet | None:
    """The volet of a ClinicalDocument, None when its templateIds name none the content knows."""
    templates = [(t.get("root") or "", t.get("extension")) for t in clinical.findall("cda:templateId", NS)]
    roots = [r for r, _ in templates]
    family, extension = None, None
    for root, ext in templates:
        if root in BY_TEMPLATE:
            family, extension = BY_TEMPLATE[root], ext
    if family is None and XDS_SD in roots:
        code = clinical.find("cda:code", NS)
        family = NON_STRUCTURED.get(code.get("code") if code is not None else None, GENERIC)
        if family == GENERIC:
            return Volet(GENERIC, (), tuple(roots))
    if family is None:
        return None
    known = versions(schematrons).get(family.upper(), [])
    if not known:
        return Volet(family, (), tuple(roots))
    chosen = next((name for version, name in known if extension and version.endswith(extension)), None)
    return Volet(family, (chosen,) if chosen else tuple(name for _, name in reversed(known)), tuple(roots))
