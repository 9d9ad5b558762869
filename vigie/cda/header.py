"""The header rules a reviewer reads first, checked by vigie itself: each function returns what is wrong with
the document (empty: compliant). OIDs: FACTS.md section 2 (INS-NIR 1.2.250.1.213.1.4.8, INS-NIR-TEST .10,
INS-NIR-DEMO .11; idNatPs 1.2.250.1.71.4.2.1, "8" + RPPS); confidentiality: HL7 Confidentiality
2.16.840.1.113883.5.25."""
from __future__ import annotations

import re

from ..identifiers import nir_is_valid, rpps_is_valid
from .document import NS

INS_ROOTS = {"1.2.250.1.213.1.4.8": "INS-NIR", "1.2.250.1.213.1.4.10": "INS-NIR-TEST",
             "1.2.250.1.213.1.4.11": "INS-NIR-DEMO"}
IDNATPS = "1.2.250.1.71.4.2.1"
CONFIDENTIALITY = "2.16.840.1.113883.5.25"
CONFIDENTIALITY_CODES = ("N", "R", "V")
OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")


def ins_problems(clinical) -> list[str]:
    ids = clinical.findall("cda:recordTarget/cda:patientRole/cda:id", NS)
    if not clinical.findall("cda:recordTarget", NS):
        return ["no recordTarget: the document names no patient"]
    ins = [i for i in ids if i.get("root") in INS_ROOTS]
    if not ins:
        roots = ", ".join(sorted({i.get("root") or "(none)" for i in ids})) or "none"
        return [(f"no INS in recordTarget/patientRole/id (roots seen: {roots}; expected 1.2.250.1.213.1.4.8, "
                 ".10 or .11)")]
    return [f"INS {i.get('extension')!r} ({INS_ROOTS[i.get('root')]}) has no valid NIR key"
            for i in ins if not nir_is_valid(i.get("extension") or "")]


def rpps_problems(clinical) -> list[str]:
    authors = clinical.findall("cda:author/cda:assignedAuthor", NS)
    if not authors:
        return ["no author"]
    problems = []
    for n, author in enumerate(authors, 1):
        if author.find("cda:assignedPerson", NS) is None:
            continue     # a device or an organisation authors it: no professional to identify
        national = [i.get("extension") or "" for i in author.findall("cda:id", NS) if i.get("root") == IDNATPS]
        if not national:
            problems.append(f"author {n} has no national professional identifier (id root {IDNATPS})")
        for value in national:
            if value.startswith("8") and not rpps_is_valid(value[1:]):
                problems.append(f"author {n}: idNatPs {value!r} starts with 8 (RPPS) but is not 8 + 11 digits")
    return problems


def confidentiality_problems(clinical) -> list[str]:
    code = clinical.find("cda:confidentialityCode", NS)
    if code is None:
        return ["no confidentialityCode"]
    if code.get("codeSystem") != CONFIDENTIALITY or code.get("code") not in CONFIDENTIALITY_CODES:
        return [(f"confidentialityCode {code.get('code')!r} of code system {code.get('codeSystem')!r} is not N, R "
                 f"or V of {CONFIDENTIALITY}")]
    return []


def custodian_problems(clinical) -> list[str]:
    org = clinical.find("cda:custodian/cda:assignedCustodian/cda:representedCustodianOrganization", NS)
    if org is None:
        return ["no custodian organisation (custodian/assignedCustodian/representedCustodianOrganization)"]
    if not any(i.get("root") for i in org.findall("cda:id", NS)):
        return ["the custodian organisation has no identifier"]
    return []


def document_id(clinical) -> tuple[str | None, list[str]]:
    """The document's unique id (root, root^extension) and what is wrong with it."""
    element = clinical.find("cda:id", NS)
    if element is None or not element.get("root"):
        return None, ["no document id (ClinicalDocument/id with a root)"]
    root, extension = element.get("root"), element.get("extension")
    key = root + (f"^{extension}" if extension else "")
    if not OID.match(root):
        return key, [f"document id root {root!r} is not an OID"]
    return key, []
