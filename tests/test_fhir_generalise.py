"""Rules taken from the specification's text rather than from a case's expected output, each shown both ways:
what the specification allows is accepted, what it forbids is still an error, and what vigie cannot judge is
an issue not judged (information in `vigie validate`, `error` "undetermined" in a campaign), never an error
and never a pass."""
import copy
import json

import pytest
from test_fhir_data import CORE_TGZ, needs_packages

from vigie.checks import Concluded
from vigie.fhir import Validator, load_packages
from vigie.fhir.validator import not_judged
from vigie.fhirvalidation import Judgement

pytestmark = needs_packages


@pytest.fixture(scope="module")
def core():
    return Validator(load_packages(CORE_TGZ))


def errors(outcome):
    return [(i["expression"][0], i["details"]["text"]) for i in outcome["issue"] if i["severity"] in ("error", "fatal")]


def unjudged(outcome):
    return [(i["severity"], i["expression"][0], not_judged(i)[0]) for i in outcome["issue"] if not_judged(i)]


def test_a_non_breaking_space_is_content_not_whitespace(core):
    """XML Schema's \\s (the specification's regexes) is space, tab, CR and LF only: French typography's
    non-breaking space before ':' leaves a string and a code valid; a tab inside a code does not."""
    patient = {"resourceType": "Patient", "gender": "female",
               "name": [{"text": "Mme\u00a0Dupont\u202f: née Martin "}]}
    assert errors(core.validate(patient)) == []
    assert errors(core.validate(dict(patient, gender="fe\tmale")))[0][0] == "Patient.gender"


def test_a_name_that_only_begins_like_a_choice_element_is_another_element(core):
    """cpb-16 reads `implementation`: a requirements statement with an implementationGuide has none."""
    stmt = {"resourceType": "CapabilityStatement", "status": "draft", "date": "2024-10-01", "kind": "requirements",
            "fhirVersion": "4.0.1", "format": ["json"], "implementationGuide": ["https://interop.esante.gouv.fr/ig"],
            "rest": [{"mode": "server"}], "description": "Consommateur de créneaux"}
    assert errors(core.validate(stmt)) == []
    assert [t[:25] for e, t in errors(core.validate(dict(stmt, implementation={"description": "x"})))] == [
        "Constraint failed: cpb-16"]


def test_an_extension_whose_primitive_value_has_only_extensions_has_a_value(core):
    """JSON representation 2.6.2.2: `_valueString` alone is valueString present without a value, so ext-1 holds."""
    def code_system(ext):
        return {"resourceType": "CodeSystem", "status": "draft", "content": "complete",
                "concept": [{"code": "a", "extension": [ext]}]}
    url = "http://hl7.org/fhir/StructureDefinition/codesystem-concept-comments"
    translated = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/translation", "extension": [
        {"url": "lang", "valueCode": "nl"}, {"url": "content", "valueString": "Niet aanwezig"}]}]}
    assert errors(core.validate(code_system({"url": url, "_valueString": translated}))) == []
    assert {e for e, _ in errors(core.validate(code_system({"url": url})))} == {"CodeSystem.concept[0].extension[0]"}


def test_a_core_extension_outside_the_r4_core_copys_context_is_not_judged(core):
    """The R4 core package's copies of the core extensions are superseded by hl7.fhir.uv.extensions, and its
    own definitions use structuredefinition-fhir-type on ElementDefinition.type: not judged, not an error."""
    sd = json.loads(load_packages(CORE_TGZ).packages[0]._files["package/StructureDefinition-Patient.json"])
    out = core.validate(sd)
    assert errors(out) == []
    assert ("information", "StructureDefinition.snapshot.element[1].type[0].extension[0]",
            "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type") in unjudged(out)


def test_an_extension_outside_its_context_is_an_error_when_its_definition_is_current(core):
    """A profile's own extension (loaded, not a superseded copy) used where its context does not allow it."""
    packages = load_packages(CORE_TGZ)
    packages.add_resource({
        "resourceType": "StructureDefinition", "url": "https://hopital.fr/fhir/StructureDefinition/lit",
        "name": "Lit", "status": "active", "kind": "complex-type", "abstract": False, "type": "Extension",
        "context": [{"type": "element", "expression": "Encounter"}], "derivation": "constraint",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Extension",
        "differential": {"element": [{"id": "Extension", "path": "Extension"},
                                     {"id": "Extension.url", "path": "Extension.url",
                                      "fixedUri": "https://hopital.fr/fhir/StructureDefinition/lit"},
                                     {"id": "Extension.value[x]", "path": "Extension.value[x]",
                                      "type": [{"code": "string"}]}]}})
    validator = Validator(packages)
    ext = {"url": "https://hopital.fr/fhir/StructureDefinition/lit", "valueString": "12B"}
    assert errors(validator.validate({"resourceType": "Encounter", "status": "planned",
                                      "class": {"code": "IMP"}, "extension": [ext]})) == []
    assert [e for e, _ in errors(validator.validate({"resourceType": "Patient", "extension": [ext]}))] == [
        "Patient.extension[0]"]


def test_an_ig_publisher_extension_is_not_judged_even_with_every_dependency_loaded(core):
    url = "http://hl7.org/fhir/tools/StructureDefinition/snapshot-base-version"
    out = core.validate({"resourceType": "Patient", "extension": [{"url": url, "valueString": "4.0.1"}]})
    assert errors(out) == []
    assert unjudged(out) == [("information", "Patient.extension[0]", url)]
    # another HL7 guide's extension the HL7 validator would not have either stays an error
    sdc = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-questionnaireAdaptive"
    assert errors(core.validate({"resourceType": "Patient", "extension": [{"url": sdc, "valueBoolean": True}]}))


def test_a_differential_element_is_partial_its_snapshot_element_whole(core):
    """A differential states what differs: a binding without its strength (given by the base) is not an error
    there; the same in the snapshot is."""
    element = {"id": "Patient.gender", "path": "Patient.gender",
               "binding": {"valueSet": "http://hl7.org/fhir/ValueSet/administrative-gender"}}
    sd = {"resourceType": "StructureDefinition", "url": "https://hopital.fr/fhir/StructureDefinition/p",
          "name": "P", "status": "active", "kind": "resource", "abstract": False, "type": "Patient",
          "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient", "derivation": "constraint",
          "differential": {"element": [{"id": "Patient", "path": "Patient"}, element]}}
    assert errors(core.validate(sd)) == []
    whole = dict(sd, snapshot={"element": [{"id": "Patient", "path": "Patient", "min": 0, "max": "*"},
                                           dict(element, min=0, max="1")]})
    assert "StructureDefinition.snapshot.element[1].binding" in [e for e, _ in errors(core.validate(whole))]


def test_concept_map_target_codes_are_not_judged_against_the_target_value_set(core):
    cm = {"resourceType": "ConceptMap", "status": "draft",
          "sourceCanonical": "http://hl7.org/fhir/ValueSet/administrative-gender",
          "targetCanonical": "http://hl7.org/fhir/ValueSet/administrative-gender",
          "group": [{"source": "http://hl7.org/fhir/administrative-gender",
                     "target": "http://hl7.org/fhir/administrative-gender",
                     "element": [{"code": "female", "target": [{"code": "f", "equivalence": "equivalent"}]}]}]}
    assert errors(core.validate(cm)) == []
    cm["group"][0]["element"][0]["code"] = "f"
    assert [e for e, _ in errors(core.validate(cm))] == ["ConceptMap.group[0].element[0].code"]


def test_a_coding_property_value_has_the_type_coding(core):
    def code_system(value):
        return {"resourceType": "CodeSystem", "status": "draft", "content": "complete",
                "property": [{"code": "unite", "type": "Coding"}],
                "concept": [{"code": "L1", "property": [dict({"code": "unite"}, **value)]}]}
    assert errors(core.validate(code_system({"valueCoding": {"system": "https://h.fr/u", "code": "c"}}))) == []
    assert errors(core.validate(code_system({"valueCode": "c"}))) == [(
        "CodeSystem.concept[0].property[0]",
        "The property 'unite' has the type 'code', when it is defined to have the type 'Coding'")]


def test_a_filter_the_code_system_defines_takes_the_values_it_describes():
    """ValueSet.compose.include.filter.value: for a filter the CodeSystem defines, its CodeSystem.filter.value
    describes the values ('lt2' on an integer property is then a value, not a type error)."""
    packages = load_packages(CORE_TGZ)
    cs = {"resourceType": "CodeSystem", "url": "https://h.fr/cs/lit", "status": "active", "content": "complete",
          "property": [{"code": "etage", "type": "integer"}], "concept": [{"code": "L1"}]}
    packages.add_resource(dict(cs, url="https://h.fr/cs/lit2", filter=[
        {"code": "etage", "operator": ["="], "value": "lt<n> (below floor n) or a floor number"}]))
    packages.add_resource(cs)
    validator = Validator(packages)

    def value_set(system):
        return {"resourceType": "ValueSet", "status": "active", "compose": {"include": [
            {"system": system, "filter": [{"property": "etage", "op": "=", "value": "lt2"}]}]}}
    assert errors(validator.validate(value_set("https://h.fr/cs/lit2"))) == []
    assert [e for e, _ in errors(validator.validate(value_set("https://h.fr/cs/lit")))] == [
        "ValueSet.compose.include[0].filter[0]"]


def test_what_the_validator_cannot_judge_makes_a_campaign_requirement_undetermined(core):
    """The same not-judged issue in a campaign: the requirement ends in `error` (undetermined), never passed."""
    url = "http://hl7.org/fhir/tools/StructureDefinition/snapshot-base-version"
    judgement = Judgement()
    judgement.add("Patient/1", core.validate({"resourceType": "Patient", "id": "1",
                                              "extension": [{"url": url, "valueString": "4.0.1"}]}))
    judgement.validated = 1
    with pytest.raises(Concluded) as concluded:
        judgement.conclude("Patients are invalid")
    assert concluded.value.status == "error" and url in concluded.value.summary


def test_the_hl7_validators_settings_that_vigie_has_change_what_is_judged():
    """`options` (the HL7 validator's settings): each changes its rule, and nothing else."""
    packages = load_packages(CORE_TGZ)
    plain, strict = Validator(packages), Validator(packages, options={
        "examples": True, "noHtmlInMarkdown": True, "validateContains": "IGNORE", "security-checks": True,
        "unknown-setting": 1})
    assert "unknown-setting" not in strict.options
    doc = {"resourceType": "DocumentReference", "status": "current",
           "content": [{"attachment": {"url": "http://repository.example.org/fhir/Binary/1"}}]}
    assert errors(plain.validate(doc)) and errors(strict.validate(doc)) == []
    note = {"resourceType": "Communication", "status": "completed", "note": [{"text": "a <rouge> note"}]}
    assert errors(plain.validate(note)) == [] and [e for e, _ in errors(strict.validate(note))] == [
        "Communication.note[0].text"]
    condition = {"resourceType": "Condition", "subject": {"reference": "Patient/1"},
                 "contained": [{"resourceType": "Practitioner", "id": "x" * 65}]}
    assert errors(plain.validate(condition)) and errors(strict.validate(condition)) == []
    patient = {"resourceType": "Patient", "name": [{"text": "<b>Dupont</b>"}]}
    assert errors(plain.validate(patient)) == [] and [e for e, _ in errors(strict.validate(patient))] == [
        "Patient.name[0].text"]


def test_the_benchmark_loads_what_each_run_lists(tmp_path):
    """A run's `supporting` is exactly what the Java validator loaded: a profile the case has but the run
    did not load is not applied (the resource claims it: not loaded, a warning), one the run lists is."""
    import importlib.util
    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "fhir_validation.py"
    spec = importlib.util.spec_from_file_location("fhir_validation_benchmark", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    (tmp_path / "inputs").mkdir()
    url = "https://h.fr/StructureDefinition/p"
    (tmp_path / "inputs" / "p.json").write_text(json.dumps({
        "resourceType": "StructureDefinition", "url": url, "name": "P", "status": "active", "kind": "resource",
        "abstract": False, "type": "Patient", "derivation": "constraint",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
        "differential": {"element": [{"id": "Patient", "path": "Patient"},
                                     {"id": "Patient.gender", "path": "Patient.gender", "min": 1}]}}))
    (tmp_path / "inputs" / "pat.json").write_text(json.dumps({"resourceType": "Patient", "meta": {"profile": [url]}}))
    case = {"name": "c", "input": "pat.json", "supporting": ["p.json"], "profiles": []}
    run = {"mode": "base", "expected_valid": True, "expected_error_count": 0, "expected_outcome": None}
    core = load_packages(CORE_TGZ)
    assert bench.run_case(core, tmp_path, case, dict(run, supporting=[]))["errors"] == 0
    assert bench.run_case(core, tmp_path, case, dict(run, supporting=["p.json"]))["errors"] == 1
    assert bench.run_case(core, tmp_path, case, run)["errors"] == 1      # no list: the case's files


def _profile(url, type_, elements, base=None):
    return {"resourceType": "StructureDefinition", "url": url, "name": url.rsplit("/", 1)[-1], "status": "active",
            "kind": "complex-type" if type_[0].isupper() and type_ in ("Address",) else "resource",
            "abstract": False, "type": type_, "derivation": "constraint",
            "baseDefinition": base or f"http://hl7.org/fhir/StructureDefinition/{type_}",
            "differential": {"element": [{"id": type_, "path": type_}] + elements}}


def test_an_element_with_two_type_profiles_conforms_to_either():
    """ElementDefinition.type.profile: "the content must conform to at least one of them"."""
    packages = load_packages(CORE_TGZ)
    city, postal = "https://h.fr/sd/adresse-ville", "https://h.fr/sd/adresse-postale"
    packages.add_resource(_profile(city, "Address", [{"id": "Address.city", "path": "Address.city", "min": 1}]))
    packages.add_resource(_profile(postal, "Address", [{"id": "Address.postalCode", "path": "Address.postalCode",
                                                        "min": 1}]))
    patient_profile = "https://h.fr/sd/patient"
    packages.add_resource(_profile(patient_profile, "Patient", [{
        "id": "Patient.address", "path": "Patient.address",
        "type": [{"code": "Address", "profile": [city, postal]}]}]))
    validator = Validator(packages)

    def patient(address):
        return {"resourceType": "Patient", "meta": {"profile": [patient_profile]}, "address": [address]}
    assert errors(validator.validate(patient({"postalCode": "75001"}))) == []
    assert errors(validator.validate(patient({"city": "Paris"}))) == []
    assert errors(validator.validate(patient({"country": "FR"})))   # neither


def test_an_address_part_extension_fits_address_line_in_a_slice_of_address():
    """iso21090-ADXP-* have the context Address.line; in a profile's slice of Patient.address the element is
    Patient.address.line, which is Address.line of the data type Address."""
    packages = load_packages(CORE_TGZ)
    url = "https://h.fr/sd/patient-adresses"
    packages.add_resource(_profile(url, "Patient", [
        {"id": "Patient.address", "path": "Patient.address",
         "slicing": {"discriminator": [{"type": "value", "path": "use"}], "rules": "open"}},
        {"id": "Patient.address:home", "path": "Patient.address", "sliceName": "home", "max": "1"},
        {"id": "Patient.address:home.use", "path": "Patient.address.use", "fixedCode": "home"}]))
    validator = Validator(packages)
    adxp = "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-houseNumber"
    patient = {"resourceType": "Patient", "meta": {"profile": [url]}, "address": [{
        "use": "home", "line": ["12 rue de la Paix"], "_line": [{"extension": [{"url": adxp, "valueString": "12"}]}]}]}
    out = validator.validate(patient)
    assert errors(out) == [] and unjudged(out) == []
    # on a telecom it is outside its context (judged from the R4 core's copy: not judged, never passed)
    patient["telecom"] = [{"system": "phone", "_value": {"extension": [{"url": adxp, "valueString": "12"}]}}]
    assert unjudged(validator.validate(patient)) == [("information", "Patient.telecom[0].value.extension[0]", adxp)]


def test_a_slice_named_only_by_its_id_is_a_slice():
    """ElementDefinition.id is "path:sliceName": a snapshot element with such an id and no sliceName is a
    slice (of its sliced element), not a second, required, occurrence of the element."""
    packages = load_packages(CORE_TGZ)
    url = "https://h.fr/sd/patient-ins"
    sd = _profile(url, "Patient", [
        {"id": "Patient.identifier", "path": "Patient.identifier",
         "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"}},
        {"id": "Patient.identifier:ins", "path": "Patient.identifier", "sliceName": "ins", "min": 1, "max": "1"},
        {"id": "Patient.identifier:ins.system", "path": "Patient.identifier.system", "min": 1,
         "fixedUri": "urn:oid:1.2.250.1.213.1.4.8"}])
    snapshot = copy.deepcopy(Validator(load_packages(CORE_TGZ), resources=[sd]).snapshot_of(url))
    for element in snapshot:
        element.pop("sliceName", None)
    packages.add_resource(dict(sd, snapshot={"element": snapshot}))
    validator = Validator(packages)
    ins = {"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "1234567890123"}
    assert errors(validator.validate({"resourceType": "Patient", "meta": {"profile": [url]}, "identifier": [ins]})) == []
    assert errors(validator.validate({"resourceType": "Patient", "meta": {"profile": [url]},
                                      "identifier": [dict(ins, system="urn:oid:1.2.3")]}))
