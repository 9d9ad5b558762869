"""Rules of the FHIR R4 specification that the HL7 Java validator enforces, each shown both ways: the flawed
resource is reported at its location, the clean one is not (control characters in strings, extensions on
elements that cannot have them, Bundle identity and versioned references, QuestionnaireResponse against its
Questionnaire, extensions unknown in a loaded package's URL space)."""
import copy

import pytest
from test_fhir_data import CORE_TGZ, FRCORE_TGZ, needs_packages

from vigie.fhir import Validator, load_packages

pytestmark = needs_packages


@pytest.fixture(scope="module")
def core():
    return Validator(load_packages(CORE_TGZ))


@pytest.fixture(scope="module")
def frcore():
    return Validator(load_packages(FRCORE_TGZ))


def errors(outcome):
    return [(i["expression"][0], i["details"]["text"]) for i in outcome["issue"] if i["severity"] in ("error", "fatal")]


def issues(outcome, severity):
    return [(i["expression"][0], i["details"]["text"]) for i in outcome["issue"] if i["severity"] == severity]


# --- strings -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["Smith\x01", "A\x08B", "esc\x1b[0m", "nul\x00", "vt\x0b", "us\x1f"])
def test_control_characters_in_strings_are_errors(core, text):
    out = core.validate({"resourceType": "Patient", "name": [{"family": text}]})
    assert [p for p, m in errors(out) if "control character" in m] == ["Patient.name[0].family"]


def test_tab_carriage_return_and_line_feed_are_allowed(core):
    out = core.validate({"resourceType": "Patient", "name": [{"text": "a\tb\r\nc"}], "gender": "male",
                         "id": "p1"})
    assert errors(out) == []


def test_control_characters_in_other_string_types(core):
    out = core.validate({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                         "note": [{"text": "bad\x07markdown"}], "identifier": [{"system": "urn:x\x02"}]})
    paths = sorted(p for p, m in errors(out) if "control character" in m)
    assert paths == ["Observation.identifier[0].system", "Observation.note[0].text"]


# --- elements that cannot carry extensions ------------------------------------------------------------------
EXT = {"extension": [{"url": "http://example.org/fhir/StructureDefinition/x", "valueString": "v"}]}


def test_extensions_on_resource_id_are_errors(core):
    out = core.validate({"resourceType": "Patient", "id": "p1", "_id": EXT})
    assert [p for p, m in errors(out) if "cannot have extensions" in m] == ["Patient.id"]


def test_extensions_on_element_id_and_extension_url_are_errors(core):
    out = core.validate({"resourceType": "Patient", "name": [{"id": "n1", "_id": EXT, "family": "A"}],
                         "extension": [{"url": "http://example.org/fhir/StructureDefinition/y", "_url": EXT,
                                        "valueString": "v"}]})
    assert sorted(p for p, m in errors(out) if "cannot have extensions" in m) == [
        "Patient.extension[0].url", "Patient.name[0].id"]


def test_extensions_on_primitive_data_types_stay_allowed(core):
    out = core.validate({"resourceType": "Patient", "id": "p1", "gender": "male", "_gender": EXT,
                         "_birthDate": {"id": "b1", **EXT}})
    assert [m for _, m in errors(out) if "cannot have extensions" in m] == []


# --- Bundles ------------------------------------------------------------------------------------------------
def _patient(pid, version=None):
    res = {"resourceType": "Patient", "id": pid}
    if version:
        res["meta"] = {"versionId": version}
    return res


def _bundle_errors(core, entries, kind="collection"):
    return errors(core.validate({"resourceType": "Bundle", "type": kind, "entry": entries}))


def test_the_same_resource_twice_in_a_bundle_is_an_error(core):
    found = _bundle_errors(core, [{"resource": _patient("a")}, {"fullUrl": "Patient/a", "resource": _patient("a")}])
    assert ("Bundle.entry[1]", ("Entry 1 is the same resource as entry 0 (Patient/a): a resource can appear only "
            "once in a Bundle, unless it is a history")) in found
    assert ("Bundle.entry[1].fullUrl", ("The fullUrl 'Patient/a' is not an absolute URL: an entry's fullUrl "
            "identifies its resource absolutely (a RESTful URL, or a urn:uuid: or urn:oid:)")) in found


def test_distinct_resources_and_versions_are_accepted(core):
    base = "https://h.example.fr/fhir/Patient/"
    assert _bundle_errors(core, [{"fullUrl": base + "a", "resource": _patient("a")},
                                 {"fullUrl": base + "b", "resource": _patient("b")},
                                 {"resource": _patient("c", "1")}, {"resource": _patient("c", "2")}]) == []
    history = [{"resource": _patient("a", "1"), "request": {"method": "PUT", "url": "Patient/a"},
                "response": {"status": "200"}}] * 2
    assert [m for _, m in _bundle_errors(core, history, "history") if "same resource" in m] == []


def test_a_fullurl_that_disagrees_with_its_resource_is_an_error(core):
    found = _bundle_errors(core, [{"fullUrl": "https://h.example.fr/fhir/Patient/b", "resource": _patient("a")}])
    assert [p for p, m in found if "does not agree" in m] == ["Bundle.entry[0].fullUrl"]
    found = _bundle_errors(core, [{"fullUrl": "urn:uuid:6f1b3c2e-8a4d-4e0b-9c51-2b7f0f3d9a10",
                                   "resource": _patient("a")}])
    assert found == []


def _document(subject_ref, patient_version):
    return {"resourceType": "Bundle", "type": "document", "timestamp": "2024-01-01T00:00:00Z",
            "identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"},
            "entry": [{"fullUrl": "https://h.example.fr/fhir/Composition/c",
                       "resource": {"resourceType": "Composition", "id": "c", "status": "final", "type": {"text": "x"},
                                    "date": "2024-01-01", "title": "t", "author": [{"display": "Dr A"}],
                                    "subject": {"reference": subject_ref}}},
                      {"fullUrl": "https://h.example.fr/fhir/Patient/p", "resource": _patient("p", patient_version)}]}


def test_versioned_references_in_a_document_find_their_version(core):
    out = core.validate(_document("Patient/p/_history/2", "1"))
    assert errors(out) == [("Bundle.entry[0].resource/*Composition/c*/.subject",
                            ("The reference 'Patient/p/_history/2' names version 2, but entry 1 of the Bundle holds "
                            "version 1 of that resource"))]
    assert errors(core.validate(_document("Patient/p/_history/1", "1"))) == []
    assert errors(core.validate(_document("https://h.example.fr/fhir/Patient/p/_history/1", "1"))) == []
    assert [m for _, m in errors(core.validate(_document("Patient/p/_history/1", None))) if "names version" in m]


# --- QuestionnaireResponse against its Questionnaire ---------------------------------------------------------
Q_URL = "https://h.example.fr/fhir/Questionnaire/intake"
QUESTIONNAIRE = {
    "resourceType": "Questionnaire", "id": "intake", "url": Q_URL, "status": "active",
    "item": [
        {"linkId": "weight", "type": "decimal", "required": True,
         "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/maxDecimalPlaces", "valueInteger": 1}]},
        {"linkId": "smoker", "type": "boolean"},
        {"linkId": "packs", "type": "integer", "required": True,
         "enableWhen": [{"question": "smoker", "operator": "=", "answerBoolean": True}]},
        {"linkId": "colour", "type": "choice", "answerOption": [
            {"valueCoding": {"system": "https://h.example.fr/colours", "code": "red"}},
            {"valueCoding": {"system": "https://h.example.fr/colours", "code": "blue"}}]},
        {"linkId": "initials", "type": "string", "maxLength": 3, "repeats": True},
        {"linkId": "history", "type": "group", "item": [{"linkId": "history.note", "type": "text"}]},
    ]}
CLEAN_QR = {
    "resourceType": "QuestionnaireResponse", "questionnaire": Q_URL, "status": "completed",
    "item": [
        {"linkId": "weight", "answer": [{"valueDecimal": 72.5}]},
        {"linkId": "smoker", "answer": [{"valueBoolean": False}]},
        {"linkId": "colour", "answer": [{"valueCoding": {"system": "https://h.example.fr/colours", "code": "red"}}]},
        {"linkId": "initials", "answer": [{"valueString": "AB"}, {"valueString": "CD"}]},
        {"linkId": "history", "item": [{"linkId": "history.note", "answer": [{"valueString": "none"}]}]},
    ]}


@pytest.fixture(scope="module")
def with_questionnaire():
    from vigie.fhir.packages import PackageSet
    packages = load_packages(CORE_TGZ)
    return Validator(PackageSet(packages.packages, packages.missing), resources=[QUESTIONNAIRE])


def _qr(change):
    qr = copy.deepcopy(CLEAN_QR)
    change(qr)
    return qr


def test_a_response_that_follows_its_questionnaire_is_accepted(with_questionnaire):
    assert errors(with_questionnaire.validate(CLEAN_QR)) == []


def _set(item, **values):
    def change(qr):
        qr["item"][item].update(values)
    return change


@pytest.mark.parametrize("change, where, words", [
    (_set(0, linkId="weigth"), "QuestionnaireResponse.item[0]", "The linkId 'weigth' is not an item"),
    (_set(0, answer=[{"valueDecimal": 72.25}]), "QuestionnaireResponse.item[0].answer[0]", "maxDecimalPlaces"),
    (_set(0, answer=[{"valueString": "72"}]), "QuestionnaireResponse.item[0].answer[0].value.ofType(string)",
     "must be of type valueDecimal, not valueString"),
    (_set(1, answer=[{"valueBoolean": True}, {"valueBoolean": False}]), "QuestionnaireResponse.item[1].answer[1]",
     "does not repeat"),
    (_set(1, answer=[{"valueBoolean": True}]), "QuestionnaireResponse",
     "The required item 'packs' is missing from the completed response"),
    (_set(2, answer=[{"valueCoding": {"system": "https://h.example.fr/colours", "code": "green"}}]),
     "QuestionnaireResponse.item[2].answer[0]", "not one of the options"),
    (_set(3, answer=[{"valueString": "ABCD"}]), "QuestionnaireResponse.item[3].answer[0]", "(maxLength)"),
    (_set(4, answer=[{"valueString": "x"}]), "QuestionnaireResponse.item[4]", "group item, which takes no answer"),
    (lambda qr: qr["item"].pop(0), "QuestionnaireResponse",
     "The required item 'weight' is missing from the completed response"),
    (lambda qr: qr["item"].insert(0, qr["item"].pop(1)), "QuestionnaireResponse.item[1]", "is out of order"),
    (lambda qr: qr["item"].insert(1, copy.deepcopy(qr["item"][0])), "QuestionnaireResponse.item[1]",
     "appears more than once"),
    (lambda qr: qr["item"][4]["item"][0].update(linkId="note"), "QuestionnaireResponse.item[4].item[0]",
     "The linkId 'note' is not an item"),
])
def test_each_departure_from_the_questionnaire_is_an_error(with_questionnaire, change, where, words):
    found = errors(with_questionnaire.validate(_qr(change)))
    assert [p for p, m in found if words in m] == [where], found


def test_required_items_bind_only_completed_responses(with_questionnaire):
    qr = _qr(lambda qr: (qr.update(status="in-progress"), qr["item"].pop(0)))
    assert errors(with_questionnaire.validate(qr)) == []


def test_an_unknown_questionnaire_is_not_judged_not_an_error(core):
    out = core.validate(dict(CLEAN_QR, questionnaire="https://h.example.fr/fhir/Questionnaire/other"))
    assert errors(out) == []
    assert any("is not loaded: the answers are not checked" in m for _, m in issues(out, "information"))


def test_a_contained_questionnaire_is_used(core):
    qr = dict(copy.deepcopy(CLEAN_QR), questionnaire="#q", contained=[dict(QUESTIONNAIRE, id="q")])
    assert errors(core.validate(qr)) == []
    qr["item"][0]["answer"] = [{"valueDecimal": 72.25}]
    assert [p for p, m in errors(core.validate(qr)) if "maxDecimalPlaces" in m] == [
        "QuestionnaireResponse.item[0].answer[0]"]


# --- extensions unknown where their definition is expected ---------------------------------------------------
FRC_SD = "https://hl7.fr/ig/fhir/core/StructureDefinition/"


def test_an_extension_missing_from_the_loaded_package_of_its_url_space_is_an_error(frcore):
    out = frcore.validate({"resourceType": "Patient", "extension": [
        {"url": FRC_SD + "fr-core-no-such-extension", "valueString": "x"}]})
    assert errors(out) == [("Patient.extension[0]", (f"The extension {FRC_SD}fr-core-no-such-extension could not be "
                            "found so is not allowed here: hl7.fhir.fr.core#2.2.0, which publishes the URL space "
                            "https://hl7.fr/ig/fhir/core, is loaded and does not define it"))]


def test_extensions_of_the_loaded_package_and_of_unknown_publishers_are_not_errors(frcore):
    out = frcore.validate({"resourceType": "Patient", "extension": [
        {"url": FRC_SD + "fr-core-identity-reliability",
         "extension": [{"url": "identityStatus", "valueCoding": {
             "system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status", "code": "VALI"}}]},
        {"url": "https://vendor.example.fr/fhir/StructureDefinition/colour", "valueString": "x"},
        {"url": "https://vendor.example.fr/fhir/StructureDefinition/complex",
         "extension": [{"url": "part", "valueString": "a"}]}]})
    assert errors(out) == []
    assert [p for p, _ in issues(out, "warning") if p.startswith("Patient.extension[") and p.endswith("]")
            and p.count(".") == 1] == [
        "Patient.extension[1]", "Patient.extension[2]"]


def test_an_unknown_extension_is_not_judged_when_a_version_of_its_package_is_missing():
    # SAS 1.1.0 depends on FR Core 1.1.0, which is not loaded: an FR Core extension may be defined there
    from test_fhir_data import SAS_TGZ
    sas = Validator(load_packages(SAS_TGZ))
    out = sas.validate({"resourceType": "Patient", "extension": [
        {"url": FRC_SD + "fr-core-no-such-extension", "valueString": "x"}]})
    assert errors(out) == []


def test_a_relative_extension_url_is_an_error(core):
    out = core.validate({"resourceType": "Patient", "extension": [{"url": "colour", "valueString": "x"}]})
    assert errors(out) == [("Patient.extension[0].url", ("The extension url 'colour' is not an absolute URI, so it "
                            "cannot identify the StructureDefinition that defines the extension"))]


# --- MeasureReport against its Measure -----------------------------------------------------------------------
M_URL = "https://h.example.fr/fhir/Measure/screening"
POP = "http://terminology.hl7.org/CodeSystem/measure-population"


def _population(code, count=None):
    out = {"code": {"coding": [{"system": POP, "code": code}]}}
    if count is not None:
        out["count"] = count
    return out


MEASURE = {"resourceType": "Measure", "id": "screening", "url": M_URL, "status": "active",
           "scoring": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-scoring",
                                   "code": "proportion"}]},
           "group": [{"code": {"text": "screened", "coding": [{"system": "urn:x", "code": "g1"}]},
                      "population": [_population(c) for c in ("initial-population", "denominator", "numerator")]}]}
CLEAN_REPORT = {"resourceType": "MeasureReport", "status": "complete", "type": "summary", "measure": M_URL,
                "period": {"start": "2024-01-01", "end": "2024-12-31"},
                "group": [{"code": {"coding": [{"system": "urn:x", "code": "g1"}]},
                           "population": [_population("initial-population", 10), _population("denominator", 8),
                                          _population("numerator", 6)],
                           "measureScore": {"value": 0.75}}]}


@pytest.fixture(scope="module")
def with_measure():
    from vigie.fhir.packages import PackageSet
    packages = load_packages(CORE_TGZ)
    return Validator(PackageSet(packages.packages, packages.missing), resources=[MEASURE])


def _report(change):
    report = copy.deepcopy(CLEAN_REPORT)
    change(report)
    return report


def test_a_report_that_follows_its_measure_is_accepted(with_measure):
    assert errors(with_measure.validate(CLEAN_REPORT)) == []


@pytest.mark.parametrize("change, where, words", [
    (lambda r: r["group"][0]["code"]["coding"][0].update(code="g2"), "MeasureReport.group[0]",
     "is not a group of the measure"),
    (lambda r: r["group"][0]["population"].pop(2), "MeasureReport.group[0]",
     "The population numerator of the measure's group is missing"),
    (lambda r: r["group"][0]["population"].append(_population("measure-observation", 1)),
     "MeasureReport.group[0].population[3]", "is not a population of the measure's group"),
    (lambda r: r["group"][0]["population"].append(_population("numerator", 1)),
     "MeasureReport.group[0].population[3]", "reported twice"),
    (lambda r: r["group"][0]["measureScore"].update(value=1.5), "MeasureReport.group[0].measureScore",
     "must be between 0 and 1"),
])
def test_each_departure_from_the_measure_is_an_error(with_measure, change, where, words):
    found = errors(with_measure.validate(_report(change)))
    assert [p for p, m in found if words in m] == [where], found


def test_a_cohort_report_has_no_score(core):
    cohort = dict(copy.deepcopy(MEASURE), id="m", scoring={"coding": [{"code": "cohort"}]},
                  group=[{"population": [dict(_population("initial-population"),
                                              criteria={"language": "text/cql", "expression": "Adults"})]}])
    report = dict(copy.deepcopy(CLEAN_REPORT), measure="#m", contained=[cohort],
                  group=[{"population": [_population("initial-population", 10)]}])
    assert errors(core.validate(report)) == []
    report["group"][0]["measureScore"] = {"value": 10}
    assert [p for p, m in errors(core.validate(report)) if "cohort" in m] == ["MeasureReport.group[0].measureScore"]


def test_an_unknown_measure_is_not_judged(core):
    out = core.validate(CLEAN_REPORT)
    assert errors(out) == []
    assert any("is not loaded: the report is not checked" in m for _, m in issues(out, "information"))


@pytest.mark.parametrize("discriminator, resource_type", [
    ({"type": "type", "path": "resource"}, [{"code": "Patient"}]),
    ({"type": "profile", "path": "resource"},
     [{"code": "Resource", "profile": ["http://hl7.org/fhir/StructureDefinition/Patient"]}]),
])
def test_entry_slices_a_bundle_profile_requires(discriminator, resource_type):
    from vigie.fhir.packages import PackageSet
    profile = {"resourceType": "StructureDefinition", "url": "https://h.example.fr/fhir/StructureDefinition/b",
               "name": "B", "status": "active", "kind": "resource", "abstract": False, "type": "Bundle",
               "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Bundle", "derivation": "constraint",
               "differential": {"element": [
                   {"id": "Bundle.entry", "path": "Bundle.entry",
                    "slicing": {"discriminator": [discriminator], "rules": "open"}},
                   {"id": "Bundle.entry:patient", "path": "Bundle.entry", "sliceName": "patient", "min": 1, "max": "1"},
                   {"id": "Bundle.entry:patient.resource", "path": "Bundle.entry.resource", "type": resource_type}]}}
    packages = load_packages(CORE_TGZ)
    validator = Validator(PackageSet(packages.packages, packages.missing), resources=[profile])

    def bundle(resource):
        return {"resourceType": "Bundle", "type": "collection",
                "entry": [{"fullUrl": "urn:uuid:6f1b3c2e-8a4d-4e0b-9c51-2b7f0f3d9a10", "resource": resource}]}
    out = validator.validate(bundle({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}),
                             profiles=[profile["url"]])
    assert [p for p, m in errors(out) if "Bundle.entry:patient" in m] == ["Bundle"]
    assert errors(validator.validate(bundle({"resourceType": "Patient"}), profiles=[profile["url"]])) == []


def test_creates_in_a_transaction_are_not_the_same_resource(core):
    post = {"resource": {"resourceType": "Patient", "id": "temp"}, "request": {"method": "POST", "url": "Patient"}}
    assert [m for _, m in _bundle_errors(core, [post, post], "transaction") if "same resource" in m] == []
    put = {"resource": _patient("a"), "request": {"method": "PUT", "url": "Patient/a"}}
    assert [p for p, m in _bundle_errors(core, [put, put], "transaction") if "same resource" in m] == [
        "Bundle.entry[1]"]


def test_an_extension_under_another_guide_of_the_same_host_is_not_claimed(frcore):
    out = frcore.validate({"resourceType": "Patient", "extension": [
        {"url": "https://hl7.fr/ig/fhir/core/other-guide/StructureDefinition/x", "valueString": "x"}]})
    assert errors(out) == []


def test_enable_when_compares_quantities_by_value(with_questionnaire):
    from vigie.fhir.questionnaires import _condition
    answers = {"w": [{"valueQuantity": {"value": 70, "system": "http://unitsofmeasure.org", "code": "kg"}}]}
    wanted = {"question": "w", "operator": "=",
              "answerQuantity": {"value": 80, "system": "http://unitsofmeasure.org", "code": "kg"}}
    assert _condition(wanted, answers) is False
    assert _condition(dict(wanted, answerQuantity=dict(wanted["answerQuantity"], value=70)), answers) is True
    assert _condition(dict(wanted, question="unanswered"), answers) is False
    assert _condition({"question": "unanswered", "operator": "exists", "answerBoolean": False}, answers) is True


def test_a_contained_resource_without_id_that_nothing_can_refer_to_breaks_dom_3(core):
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                   "contained": [{"resourceType": "Patient"}]}
    assert [p for p, m in errors(core.validate(observation)) if "has no id" in m] == ["Observation.contained[0]"]
    provenance = {"resourceType": "Provenance", "target": [{"reference": "#"}], "recorded": "2024-01-01T00:00:00Z",
                  "agent": [{"who": {"display": "Dr A"}}]}
    assert errors(core.validate(dict(observation, contained=[provenance]))) == []
