"""Patient data is masked in everything a bundle keeps: a report goes to regulators, CI logs and step
summaries, and must not carry the identities of the patients the target served."""
import json

from reportbundle import signed_bundle
from vigie.fixtures.practice.data import build

from vigie.evidence import Redactor
from vigie.masking import mask_data, mask_text


def test_nirs_are_masked_in_text_whatever_their_grouping_or_key():
    assert mask_text("NIR 185057800608436.") == "NIR 1************36."
    assert mask_text("1 85 05 78 006 084 36") == "1 ** ** ** *** *** 36"
    assert mask_text("2.85.05.2A.006.084.99") == "2.**.**.**.***.***.99"   # Corsica, any key
    # what is not NIR-shaped stays: a 13-digit timestamp, a SIRET (14 digits), a longer number
    for text in ("1733212345678", "36252187900034", "12345678901234567", "Patient/pat-0001"):
        assert mask_text(text) == text


def test_person_resources_keep_their_structure_not_their_values():
    patient = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1985-05-12",
               "name": [{"use": "official", "family": "Durand", "given": ["Marie", "Claire"]}],
               "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "285057800608436"}],
               "telecom": [{"system": "phone", "value": "0612345678"}],
               "address": [{"line": ["12 rue des Lilas"], "city": "Paris", "postalCode": "75011"}],
               "contact": [{"name": {"family": "Durand", "given": ["Paul"]}, "telecom": [{"value": "0698765432"}]}]}
    masked = mask_data({"resourceType": "Bundle", "entry": [{"resource": patient}]})["entry"][0]["resource"]
    assert masked["name"] == [{"use": "official", "family": "D*****", "given": ["M****", "C*****"]}]
    assert masked["birthDate"] == "1985-**-**" and masked["gender"] == "female" and masked["id"] == "p1"
    assert masked["identifier"][0] == {"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "2************36"}
    assert masked["telecom"][0]["value"] == "********78"
    assert masked["address"][0] == {"line": ["****************"], "city": "Paris", "postalCode": "75***"}
    assert masked["contact"][0]["name"]["family"] == "D*****" and masked["contact"][0]["telecom"][0]["value"] \
        == "********32"
    # an INS-NIR identifier elsewhere (an Encounter's subject identifier) is masked too
    ref = {"subject": {"identifier": {"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "ABCDEFGHIJ"}}}
    assert mask_data(ref)["subject"]["identifier"]["value"] == "A*******IJ"


def test_an_http_body_is_masked_inside():
    body = json.dumps({"resourceType": "Patient", "name": [{"family": "Martin"}]})
    redacted = Redactor().data({"response": {"body": body}})
    assert json.loads(redacted["response"]["body"])["name"][0]["family"] == "M*****"
    assert Redactor(mask_patients=False).data({"b": body})["b"] == body


def test_a_bundle_holds_no_patient_identity_of_the_reference_system():
    """The signed run against the reference practice system: none of its patients' NIRs, family names or
    birth dates appears in any file of the bundle (HTML, PDF text aside, JUnit, summary, evidence)."""
    bundle = signed_bundle().path
    data = build()
    patients = data["Patient"].values()
    # professionals' names are public (RPPS) and stay: a patient who shares one is not looked for
    professionals = {n.get("family") for p in data["Practitioner"].values() for n in p.get("name", [])}
    nirs = {i["value"] for p in patients for i in p.get("identifier", []) if len(i.get("value", "")) == 15}
    families = {n["family"] for p in patients for n in p.get("name", []) if len(n.get("family", "")) > 3} \
        - professionals
    births = {p["birthDate"] for p in patients if "birthDate" in p}
    assert nirs and families and births
    text = "\n".join(p.read_text(errors="replace") for p in bundle.rglob("*")
                     if p.is_file() and p.suffix in (".json", ".html", ".xml", ".md", ".sarif", ".ndjson"))
    assert "Patient/" in text, "the bundle must hold patient evidence for this test to mean anything"
    assert not [n for n in nirs if n in text]
    # as resources carry them (evidence files hold HTTP bodies as JSON strings: quotes escaped there)
    unescaped = text.replace('\\"', '"')
    assert not [b for b in births if f'"birthDate": "{b}"' in unescaped]
    assert not [f for f in families if f'"family": "{f}"' in unescaped]
    assert '"birthDate": "' in unescaped and '"family": "' in unescaped
    report = json.loads((bundle / "report.json").read_text())
    assert report["run"]["patient_data"] == "masked"


def test_a_search_a_sentence_puts_in_parentheses_keeps_its_closing_one():
    masked = mask_text("3 errors; first: answered 500 (GET https://h/fhir/Patient?family=Martin&_count=1)")
    assert masked.endswith("_count=1)") and "Martin" not in masked
    masked = mask_text("first: answered 500 (GET https://h/fhir/Patient?family=Martin)")
    assert masked.endswith(")") and "Martin" not in masked, masked
    assert mask_text("Patient?family=O)Brien&_count=1").startswith("Patient?family=O") and "Brien" not in mask_text(
        "Patient?family=O)Brien&_count=1")
    masked = mask_text("(GET Observation?subject:Patient.family=Martin)")
    assert masked.endswith(")") and "Martin" not in masked, masked
