"""The StructureDefinition-driven validator against the official packages: every example they ship, the
generated FR Core patients, and one deliberate defect per rule, each found at its FHIRPath location."""
import copy

import pytest
from test_fhir_data import ANNUAIRE_TGZ, FRCORE21_TGZ, FRCORE_TGZ, PATIENT_INS, SAS_TGZ, needs_packages

from vigie.fhir import Validator, load_packages
from vigie.fhir.validator import has_errors

pytestmark = needs_packages
FRC = "https://hl7.fr/ig/fhir/core"


@pytest.fixture(scope="module")
def frcore():
    return Validator(load_packages(FRCORE_TGZ))


@pytest.fixture(scope="module")
def patient():
    from vigie.fixtures.practice import data
    return next(iter(data.build(42)["Patient"].values()))


def errors(outcome):
    return [(i["expression"][0], i["details"]["text"]) for i in outcome["issue"] if i["severity"] in ("error", "fatal")]


def error_paths(outcome):
    return sorted({e for e, _ in errors(outcome)})


@pytest.mark.parametrize("tgz", [FRCORE_TGZ, FRCORE21_TGZ, SAS_TGZ, ANNUAIRE_TGZ], ids=lambda p: p.name)
def test_every_shipped_example_is_accepted(tgz):
    packages = load_packages(tgz)
    validator = Validator(packages)
    examples = list(packages.packages[0].examples())
    assert examples
    rejected = {name: errors(validator.validate(res))[:3] for name, res in examples}
    assert {n: e for n, e in rejected.items() if e} == {}


def test_generated_patients_conform_to_fr_core_patient_ins(frcore):
    from vigie.fixtures.practice import data
    patients = list(data.build(7)["Patient"].values())[:50]
    for p in patients:
        out = frcore.validate(p, profiles=[PATIENT_INS])
        assert not has_errors(out), errors(out)


def test_missing_dependencies_are_said_not_hidden(frcore, patient):
    texts = [i["details"]["text"] for i in frcore.validate(patient)["issue"] if i["severity"] == "information"]
    assert any("hl7.terminology.r4#7.1.0 is not loaded" in t for t in texts)


def _broken(patient, change):
    p = copy.deepcopy(patient)
    change(p)
    return p


CASES = {
    "unknown element": (lambda p: p.update(colour="blue"), "Patient", "Unrecognized property 'colour'"),
    "date format": (lambda p: p.update(birthDate="1990-02-30"), "Patient.birthDate", "not a calendar date"),
    "json type": (lambda p: p.update(active="yes"), "Patient.active", "JSON boolean"),
    "not an array": (lambda p: p.update(address=p["address"][0]), "Patient.address", "must be a JSON array"),
    "cardinality": (lambda p: p.pop("birthDate"), "Patient", "Patient.birthDate: minimum required = 1"),
    "required binding": (lambda p: p.update(gender="femme"), "Patient.gender", "not in the value set"),
    "pattern value in a slice": (lambda p: p["identifier"][0].update(system="urn:oid:1.2.250.1.213.1.4.10"),
                               "Patient.identifier[0].system", "does not match the pattern \"urn:oid:1.2.250.1.213.1.4.8\""),
    "required binding in a slice": (lambda p: p["identifier"][0].update(use="usual"), "Patient.identifier[0].use",
                                    "not in the value set"),
    "invariant fr-core-2": (lambda p: p["identifier"][1].update(use="official"), "Patient", "fr-core-2"),
    "choice type": (lambda p: p.update(deceasedString="no"), "Patient", "not allowed for deceased[x]"),
    "reference target": (lambda p: p.update(generalPractitioner=[{"reference": "Patient/pat-0002"}]),
                         "Patient.generalPractitioner[0]", "not a valid target"),
    "extension value type": (lambda p: p["extension"][0]["extension"][1].update(valueDate=None) or
                             p["extension"][0]["extension"][1].pop("valueDate") or
                             p["extension"][0]["extension"][1].update(valueString="x"),
                             "Patient.extension[0].extension[1]", "valueString"),
    "empty object": (lambda p: p.update(maritalStatus={}), "Patient.maritalStatus", "some content"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_defect_is_found_at_its_location(frcore, patient, name):
    change, where, text = CASES[name]
    assert not has_errors(frcore.validate(patient, profiles=[PATIENT_INS]))
    out = frcore.validate(_broken(patient, change), profiles=[PATIENT_INS])
    found = errors(out)
    assert any(e == where and text in t for e, t in found), found


def test_slicing_counts_and_closed_extension_values(frcore, patient):
    p = _broken(patient, lambda p: p["name"][0].pop("extension"))
    out = frcore.validate(p, profiles=[PATIENT_INS])
    expected = f"Patient.name.extension: minimum required = 1, but only found 0 (from {PATIENT_INS}|2.2.0)"
    assert ("Patient.name[0]", expected) in errors(out)
    p = _broken(patient, lambda p: p["name"][0]["extension"][0].update(url=f"{FRC}/StructureDefinition/other"))
    out = frcore.validate(p, profiles=[PATIENT_INS])
    assert any("birth-list-given-name': a matching slice is required" in t and e == "Patient.name[0]"
               for e, t in errors(out)), errors(out)


def test_unloaded_extensions_hl7_core_namespace_informed_others_warned(frcore):
    def issue(url):
        out = frcore.validate({"resourceType": "Organization", "name": "CH",
                               "extension": [{"url": url, "valueString": "x"}]})
        return [(i["severity"], i["expression"][0]) for i in out["issue"] if url in i["details"]["text"]]
    # defined by HL7 in hl7.fhir.uv.extensions, which the HL7 validator always has: nothing wrong is known
    assert issue("http://hl7.org/fhir/StructureDefinition/organization-brand") == \
        [("information", "Organization.extension[0]")]
    assert issue("https://editeur.example.fr/StructureDefinition/x") == [("warning", "Organization.extension[0]")]


def test_meta_profile_claims_are_validated_and_unknown_ones_warned(frcore, patient):
    p = _broken(patient, lambda p: p.pop("birthDate"))      # claims fr-core-patient-ins in meta.profile
    assert "Patient" in error_paths(frcore.validate(p))
    p["meta"]["profile"] = ["http://example.org/StructureDefinition/nope"]
    out = frcore.validate(p)
    assert not has_errors(out)
    assert any(i["severity"] == "warning" and "nope is not loaded" in i["details"]["text"] for i in out["issue"])


def test_bundle_entries_are_validated(frcore, patient):
    bad = _broken(patient, lambda p: p.update(birthDate="never"))
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"fullUrl": "urn:uuid:7d8e3c0e-59ad-4c62-9c7e-0d1f5b8f2e11", "resource": patient},
                        {"fullUrl": "urn:uuid:1d8e3c0e-59ad-4c62-9c7e-0d1f5b8f2e12", "resource": bad}]}
    out = frcore.validate(bundle)
    assert error_paths(out) == ["Bundle.entry[1].resource/*Patient/pat-0001*/.birthDate"]


def test_unknown_code_systems_give_no_false_error(frcore):
    practitioner = {"resourceType": "Practitioner", "id": "p1",
                    "meta": {"profile": [f"{FRC}/StructureDefinition/fr-core-practitioner"]},
                    "name": [{"family": "Martin", "prefix": ["DR"]}],
                    "qualification": [{"code": {"coding": [{"system": "https://mos.esante.gouv.fr/NOS/TRE_G15",
                                                             "code": "10"}]}}]}
    out = frcore.validate(practitioner)
    assert not has_errors(out), errors(out)
    assert any("cannot be expanded" in i["details"]["text"] for i in out["issue"] if i["severity"] == "information")


def test_not_a_resource(frcore):
    assert errors(frcore.validate({"resourceType": "Nonsense"})) == [("Nonsense", "unknown resource type 'Nonsense'")]
    assert has_errors(frcore.validate(["not", "an", "object"]))


def test_snapshot_generated_from_a_differential():
    """A differential-only profile (as in the HL7 test cases) gets a snapshot built from its base."""
    packages = load_packages(FRCORE_TGZ.parent / "hl7.fhir.r4.core-4.0.1.tgz")
    profile = {"resourceType": "StructureDefinition", "url": "http://example.org/StructureDefinition/p",
               "name": "P", "status": "draft", "kind": "resource", "abstract": False, "type": "Practitioner",
               "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Practitioner", "derivation": "constraint",
               "differential": {"element": [
                   {"id": "Practitioner.telecom", "path": "Practitioner.telecom", "min": 1},
                   {"id": "Practitioner.telecom.system", "path": "Practitioner.telecom.system", "fixedCode": "email"},
               ]}}
    validator = Validator(packages, resources=[profile])
    good = {"resourceType": "Practitioner", "telecom": [{"system": "email", "value": "a@b.example"}]}
    assert not has_errors(validator.validate(good, profiles=[profile["url"]]))
    bad = {"resourceType": "Practitioner", "telecom": [{"system": "phone", "value": "0102030405"}]}
    assert error_paths(validator.validate(bad, profiles=[profile["url"]])) == ["Practitioner.telecom[0].system"]
    assert error_paths(validator.validate({"resourceType": "Practitioner"}, profiles=[profile["url"]])) == ["Practitioner"]


JUNK = [None, 1, -1, 2**40, 1.5, True, "", "x", [], {}, [None], [{}], {"a": 1}, [[1]], {"resourceType": "Patient"},
        {"reference": 5}, {"url": 3}, {"extension": 1}, "#", "urn:uuid:XYZ"]


def _paths(obj, prefix=()):
    if prefix:
        yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def test_malformed_resources_give_issues_never_a_crash():
    """Deterministic mutations of real examples (wrong JSON types, nulls, nested junk) must each give an
    OperationOutcome without an internal error."""
    import random
    packages = load_packages(SAS_TGZ)
    validator = Validator(packages)
    examples = [res for _, res in packages.packages[0].examples()]
    rng = random.Random(20261128)
    for _ in range(250):
        resource = copy.deepcopy(rng.choice(examples))
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(list(_paths(resource)))
            target = resource
            try:
                for step in path[:-1]:
                    target = target[step]
                target[path[-1]] = copy.deepcopy(rng.choice(JUNK))
            except (KeyError, IndexError, TypeError):
                pass    # an earlier mutation changed the shape under this path
        out = validator.validate(resource)
        assert not [i for i in out["issue"] if i["code"] in ("exception", "too-costly")], (path, out["issue"][-1])


def test_extension_context_and_unknown_extensions(frcore, patient):
    given_name = f"{FRC}/StructureDefinition/fr-core-patient-birth-list-given-name"    # context: HumanName
    p = _broken(patient, lambda p: p["extension"].append({"url": given_name, "valueString": "Paul"}))
    out = frcore.validate(p, profiles=[PATIENT_INS])
    assert any(e == "Patient.extension[2]" and "not allowed to be used at this point" in t for e, t in errors(out))
    p = _broken(patient, lambda p: p["extension"].append({"url": "https://example.org/ext/colour",
                                                          "valueString": "blue"}))
    out = frcore.validate(p, profiles=[PATIENT_INS])
    assert not has_errors(out)
    assert any(i["severity"] == "warning" and i["expression"] == ["Patient.extension[2]"] for i in out["issue"])


def test_closed_and_ordered_slicing_from_a_differential():
    packages = load_packages(FRCORE_TGZ.parent / "hl7.fhir.r4.core-4.0.1.tgz")
    url = "http://example.org/StructureDefinition/closed-identifiers"
    profile = {"resourceType": "StructureDefinition", "url": url, "name": "Closed", "status": "draft",
               "kind": "resource", "abstract": False, "type": "Patient", "derivation": "constraint",
               "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
               "differential": {"element": [
                   {"id": "Patient.identifier", "path": "Patient.identifier",
                    "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "closed",
                                "ordered": True}},
                   {"id": "Patient.identifier:a", "path": "Patient.identifier", "sliceName": "a", "min": 1, "max": "1"},
                   {"id": "Patient.identifier:a.system", "path": "Patient.identifier.system", "fixedUri": "urn:a"},
                   {"id": "Patient.identifier:b", "path": "Patient.identifier", "sliceName": "b", "max": "1"},
                   {"id": "Patient.identifier:b.system", "path": "Patient.identifier.system", "fixedUri": "urn:b"},
               ]}}
    validator = Validator(packages, resources=[profile])

    def check(*systems):
        res = {"resourceType": "Patient", "identifier": [{"system": s, "value": "1"} for s in systems]}
        return errors(validator.validate(res, profiles=[url]))

    assert check("urn:a", "urn:b") == []
    assert [e for e, _ in check("urn:a", "urn:c")] == ["Patient.identifier[1]"]           # closed
    assert any("not in the order" in t for _, t in check("urn:b", "urn:a"))              # ordered
    assert any("Patient.identifier:a" in t and "required" in t for _, t in check("urn:b"))  # min 1


def test_bundle_link_relations_occur_once(frcore):
    links = [{"relation": "self", "url": "https://x.example/fhir/Patient"},
             {"relation": "next", "url": "https://x.example/fhir/Patient?page=2"}]
    bundle = {"resourceType": "Bundle", "type": "searchset", "link": links}
    assert not has_errors(frcore.validate(bundle))
    bundle["link"] = links + [{"relation": "self", "url": "https://x.example/fhir/Patient?again"}]
    assert errors(frcore.validate(bundle)) == [("Bundle.link[2]", "The link relationship type 'self' can only occur once")]


def test_markdown_with_an_html_tag_is_a_warning(frcore):
    def warnings(text):
        out = frcore.validate({"resourceType": "Communication", "status": "completed", "note": [{"text": text}]})
        assert not has_errors(out)
        return [i["expression"][0] for i in out["issue"] if i["severity"] == "warning" and "HTML" in i["details"]["text"]]
    assert warnings("<resource type>\\<id>") == ["Communication.note[0].text"]
    assert warnings("a </b> closing tag") == ["Communication.note[0].text"]
    # comparisons, autolinks and plain markdown are not tags
    assert warnings("dose < 5 mg, see <https://example.org/doc> and **bold**") == []


def test_example_org_addresses_are_refused_in_url_elements(frcore):
    def document(url):
        return frcore.validate({"resourceType": "DocumentReference", "status": "current",
                                "content": [{"attachment": {"url": url}}]})
    assert [e for e, _ in errors(document("http://repository.example.org/fhir/Binary/1"))] == \
        ["DocumentReference.content[0].attachment.url"]
    assert errors(document("https://documents.hopital.fr/Binary/1")) == []
    assert errors(document("https://labs.example.com/Binary/1")) == []    # only example.org, as the HL7 validator
    # a uri (an identifier's namespace) may be an example: it names, it is not fetched
    patient = {"resourceType": "Patient", "identifier": [{"system": "http://example.org/ids", "value": "1"}]}
    assert errors(frcore.validate(patient)) == []


def test_code_system_properties_are_defined_once_with_their_standard_type(frcore):
    standard = "http://hl7.org/fhir/concept-properties#"

    def code_system(properties, values):
        return {"resourceType": "CodeSystem", "url": "https://terminologies.hopital.fr/cs", "status": "active",
                "content": "complete", "property": properties,
                "concept": [{"code": "a", "display": "A", "property": values}]}
    clean = code_system([{"code": "notSelectable", "uri": standard + "notSelectable", "type": "boolean"},
                         {"code": "weight", "type": "decimal"}],
                        [{"code": "notSelectable", "valueBoolean": True}, {"code": "weight", "valueDecimal": 1.5}])
    assert errors(frcore.validate(clean)) == []
    flawed = code_system([{"code": "notSelectable", "uri": standard + "notSelectable", "type": "dateTime"},
                          {"code": "notSelectable", "type": "boolean"},
                          {"code": "retired", "uri": standard + "deprecationDate", "type": "dateTime"}],
                         [{"code": "notSelectable", "valueBoolean": True}])
    assert errors(frcore.validate(flawed)) == [
        ("CodeSystem.property[0]", (f"Wrong type 'dateTime': the URI '{standard}notSelectable' identifies a property "
                                   "of type 'boolean'")),
        ("CodeSystem.property[1]", "A property is already defined with the code 'notSelectable'"),
        ("CodeSystem.property[2]", (f"The URI '{standard}deprecationDate' is normally assigned the code "
                                   "'deprecationDate'; the code 'retired' will confuse value set filters")),
        ("CodeSystem.concept[0].property[0]", ("The property 'notSelectable' has the type 'boolean', when it is "
                                              "defined to have the type 'dateTime'"))]


def test_concept_map_codes_are_in_the_maps_value_sets(frcore):
    """A map from administrative gender: its source codes must be in that value set (complete, loaded)."""
    def concept_map(code):
        return {"resourceType": "ConceptMap", "url": "https://terminologies.hopital.fr/cm", "status": "active",
                "sourceCanonical": "http://hl7.org/fhir/ValueSet/administrative-gender",
                "group": [{"source": "http://hl7.org/fhir/administrative-gender",
                           "target": "https://terminologies.hopital.fr/sexe",
                           "element": [{"code": code, "target": [{"code": "F", "equivalence": "equivalent"}]}]}]}
    assert errors(frcore.validate(concept_map("female"))) == []
    assert errors(frcore.validate(concept_map("feminine"))) == [
        ("ConceptMap.group[0].element[0].code",
         "The source code 'feminine' is not valid in the value set http://hl7.org/fhir/ValueSet/administrative-gender")]


def test_value_set_filter_values_have_their_propertys_type():
    """A filter on a code system's property: a Coding value is system#code with a known code, an integer
    an integer."""
    packages = load_packages(FRCORE_TGZ.parent / "hl7.fhir.r4.core-4.0.1.tgz")
    sub = {"resourceType": "CodeSystem", "url": "https://terminologies.hopital.fr/unite", "status": "active",
           "content": "complete", "concept": [{"code": "cardio"}, {"code": "pneumo"}]}
    main = {"resourceType": "CodeSystem", "url": "https://terminologies.hopital.fr/lit", "status": "active",
            "content": "complete", "property": [{"code": "unite", "type": "Coding"},
                                                {"code": "etage", "type": "integer"}],
            "concept": [{"code": "L1", "property": [{"code": "unite", "valueCoding": {
                "system": sub["url"], "code": "cardio"}}, {"code": "etage", "valueInteger": 2}]}]}
    packages.add_resource(sub)
    packages.add_resource(main)
    validator = Validator(packages)

    def value_set(prop, value):
        return {"resourceType": "ValueSet", "url": "https://terminologies.hopital.fr/vs", "status": "active",
                "compose": {"include": [{"system": main["url"],
                                         "filter": [{"property": prop, "op": "=", "value": value}]}]}}
    assert errors(validator.validate(value_set("unite", sub["url"] + "#cardio"))) == []
    assert errors(validator.validate(value_set("etage", "2"))) == []
    assert error_paths(validator.validate(value_set("unite", "cardio"))) == ["ValueSet.compose.include[0].filter[0]"]
    assert "unknown code 'ortho'" in errors(validator.validate(value_set("unite", sub["url"] + "#ortho")))[0][1]
    assert error_paths(validator.validate(value_set("etage", "deux"))) == ["ValueSet.compose.include[0].filter[0]"]


def test_references_between_the_resources_of_a_parameters_resolve(frcore):
    def parameters(subscriber):
        return {"resourceType": "Parameters", "parameter": [
            {"name": "patient", "resource": {"resourceType": "Patient", "id": "p1"}},
            {"name": "coverage", "resource": {"resourceType": "Coverage", "id": "c1", "status": "active",
                                              "beneficiary": {"reference": subscriber},
                                              "payor": [{"reference": "Organization/cpam-75"}]}}]}
    assert errors(frcore.validate(parameters("Patient/p1"))) == []
    # Patient/p2 can only mean a Patient of the Parameters, and there is none with that id; the payor, of a
    # type the Parameters does not carry, is elsewhere
    assert errors(frcore.validate(parameters("Patient/p2"))) == [(
        "Parameters.parameter[1].resource/*Coverage/c1*/.beneficiary",
        ("Unable to resolve resource with reference 'Patient/p2': the Parameters carries Patient resources, none "
        "with the id 'p2'"))]


def test_a_code_without_its_system_is_warned(frcore):
    def warnings(coding):
        out = frcore.validate({"resourceType": "Observation", "status": "final", "code": {"coding": [coding]}})
        return [i["expression"][0] for i in out["issue"] if i["severity"] == "warning" and "no system" in
                i["details"]["text"]]
    assert warnings({"code": "8867-4"}) == ["Observation.code.coding[0]"]
    assert warnings({"system": "http://loinc.org", "code": "8867-4"}) == []


def test_relative_references_in_a_bundle_resolve_by_the_entries_full_url(frcore):
    """Patient/p in an entry whose fullUrl is on server B means B's Patient/p: an entry with that type and id
    under server A's URL is a near miss, warned."""
    def bundle(observation_base):
        return {"resourceType": "Bundle", "type": "collection", "entry": [
            {"fullUrl": "https://a.hopital.fr/fhir/Patient/p", "resource": {"resourceType": "Patient", "id": "p"}},
            {"fullUrl": f"{observation_base}/Observation/o", "resource": {
                "resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "poids"},
                "subject": {"reference": "Patient/p"}}}]}

    def warnings(out):
        return [(i["expression"][0], i["details"]["text"]) for i in out["issue"] if i["severity"] == "warning"
                and "Bundle resolution" in i["details"]["text"]]
    assert warnings(frcore.validate(bundle("https://a.hopital.fr/fhir"))) == []
    assert warnings(frcore.validate(bundle("https://b.hopital.fr/fhir"))) == [(
        "Bundle.entry[1].resource/*Observation/o*/.subject",
        ("Entry 0 matches the reference Patient/p by type and id but its fullUrl https://a.hopital.fr/fhir/Patient/p "
        "does not match the full target URL https://b.hopital.fr/fhir/Patient/p by Bundle resolution rules"))]


def test_hl7_code_systems_state_case_sensitivity_and_define_their_concepts(frcore):
    def warnings(url, **fields):
        cs = {"resourceType": "CodeSystem", "url": url, "status": "active", "content": "complete",
              "concept": [{"code": "a", "display": "A"}, {"code": "b", "display": "B"}], **fields}
        return [(i["expression"][0], i["details"]["text"][:40]) for i in frcore.validate(cs)["issue"]
                if i["severity"] == "warning" and "HL7 Defined" in i["details"]["text"]]
    assert warnings("http://terminology.hl7.org/CodeSystem/x") == [
        ("CodeSystem", "HL7 Defined CodeSystems SHOULD have a st"),
        ("CodeSystem.concept[0]", "HL7 Defined CodeSystems should ensure th")]
    assert warnings("http://terminology.hl7.org/CodeSystem/x", caseSensitive=True,
                    concept=[{"code": "a", "definition": "A, defined"}]) == []
    assert warnings("https://terminologies.hopital.fr/cs") == []     # not HL7's: its own rules


def test_questionnaire_answers_coded_without_a_system_are_warned(frcore):
    def warnings(coding):
        qr = {"resourceType": "QuestionnaireResponse", "status": "completed", "item": [{"linkId": "1", "item": [
            {"linkId": "1.1", "answer": [{"valueCoding": coding}]}]}]}
        return [i["expression"][0] for i in frcore.validate(qr)["issue"]
                if i["severity"] == "warning" and i["details"]["text"].startswith("Coding has no system")]
    assert warnings({"code": "oui"}) == ["QuestionnaireResponse.item[0].item[0].answer[0]"]
    assert warnings({"system": "https://terminologies.hopital.fr/reponses", "code": "oui"}) == []


def test_a_choice_value_of_the_wrong_json_kind_names_the_choice_element(frcore):
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "poids"}}
    # a JSON string where valueInteger needs a number: no type of value[x] is written that way
    assert errors(frcore.validate({**obs, "valueInteger": "12"})) == [
        ("Observation.value[x]", "The primitive value must be a number, not a string")]
    # a number of the right kind but an invalid value keeps the typed path
    assert error_paths(frcore.validate({**obs, "valueInteger": 1.5})) == ["Observation.value.ofType(integer)"]


def test_slicing_discriminators_must_name_an_element_of_the_sliced_element(frcore):
    def profile(extension_discriminator):
        return {"resourceType": "StructureDefinition", "url": "https://profils.hopital.fr/StructureDefinition/ae",
                "name": "AE", "status": "draft", "kind": "resource", "abstract": False, "type": "AuditEvent",
                "baseDefinition": "http://hl7.org/fhir/StructureDefinition/AuditEvent", "derivation": "constraint",
                "differential": {"element": [
                    # a backbone element: its own children (agent.type) can discriminate
                    {"id": "AuditEvent.agent", "path": "AuditEvent.agent",
                     "slicing": {"discriminator": [{"type": "pattern", "path": "type"}], "rules": "open"}},
                    # an Extension: url and value[x] can, 'type' is no element of Extension
                    {"id": "AuditEvent.agent.extension", "path": "AuditEvent.agent.extension",
                     "slicing": {"discriminator": [{"type": "value", "path": extension_discriminator}],
                                 "rules": "open"}}]}}
    assert errors(frcore.validate(profile("url"))) == []
    assert errors(frcore.validate(profile("value.system"))) == []
    assert errors(frcore.validate(profile("type"))) == [(
        "StructureDefinition.differential.element[1].slicing.discriminator[0]",
        ("The discriminator path 'type' does not appear to be valid for the element that is being sliced "
        "'AuditEvent.agent.extension'"))]


def test_dates_bounded_by_durations_from_now():
    """maxValueDuration is that long after the current clock, minValueDuration that long before it."""
    import datetime as dt
    packages = load_packages(FRCORE_TGZ.parent / "hl7.fhir.r4.core-4.0.1.tgz")

    def years(n):
        return {"value": n, "unit": "a", "system": "http://unitsofmeasure.org", "code": "a"}
    profile = {"resourceType": "StructureDefinition", "url": "http://example.org/StructureDefinition/born",
               "name": "Born", "status": "draft", "kind": "resource", "abstract": False, "type": "Patient",
               "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient", "derivation": "constraint",
               "differential": {"element": [{"id": "Patient.birthDate", "path": "Patient.birthDate",
                                             "minValueDuration": years(120), "maxValueDuration": years(1)}]}}
    validator = Validator(packages, resources=[profile])
    this_year = dt.date.today().year

    def paths(birth):
        return error_paths(validator.validate({"resourceType": "Patient", "birthDate": birth}, profiles=[profile["url"]]))
    assert paths(f"{this_year - 40}-06-01") == []
    assert paths(f"{this_year}") == []
    assert paths(f"{this_year + 3}-01-01") == ["Patient.birthDate"]
    assert paths(f"{this_year - 130}-01-01") == ["Patient.birthDate"]


@pytest.mark.parametrize("div, problem", [
    ('<div xmlns="http://www.w3.org/1999/xhtml"><p>Jean <b>Dupont</b> &amp; &#169; <a href="#x">x</a></p></div>', None),
    ('<div xmlns="http://www.w3.org/1999/xhtml">&reg;</div>', "Invalid entity in the XHTML ('&reg;')"),
    ('<div xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></div>', "Illegal element name in the XHTML ('script')"),
    ('<div xmlns="http://www.w3.org/1999/xhtml"><p onclick="x()">a</p></div>', "Illegal attribute name in the XHTML ('onclick')"),
    ('<div xmlns="http://www.w3.org/1999/xhtml"><a href=" javascript:x()">a</a></div>', "Illegal active content"),
    ('<div>no namespace</div>', "in the namespace http://www.w3.org/1999/xhtml"),
    ('<div xmlns="http://www.w3.org/1999/xhtml"><p>unclosed</div>', "not well-formed XHTML"),
    ('<!DOCTYPE div><div xmlns="http://www.w3.org/1999/xhtml"/>', "DOCTYPE"),
], ids=["good", "entity", "script", "event", "javascript", "namespace", "unclosed", "doctype"])
def test_narratives_are_restricted_xhtml(frcore, div, problem):
    out = frcore.validate({"resourceType": "Basic", "code": {"text": "x"}, "text": {"status": "generated", "div": div}})
    found = [text for path, text in errors(out) if path == "Basic.text.div"]
    if problem is None:
        assert found == []
        return
    assert problem in found[0], errors(out)
    # well-formed XHTML that breaks the narrative's rules also fails txt-1 (htmlChecks()); XHTML that cannot
    # be read is reported once, as such
    well_formed = not any(w in problem for w in ("entity", "well-formed", "DOCTYPE"))
    assert [t.split(":")[1].strip() for t in found[1:]] == (["txt-1"] if well_formed else []), found


def test_contained_resources_are_referenced(frcore):
    """dom-3: a contained resource is referred to from its container (or refers to it)."""
    condition = {"resourceType": "Condition", "subject": {"reference": "Patient/1"},
                 "contained": [{"resourceType": "Practitioner", "id": "dr"}]}
    assert error_paths(frcore.validate(condition)) == ["Condition.contained[0]"]
    assert not has_errors(frcore.validate({**condition, "recorder": {"reference": "#dr"}}))
    back = {"resourceType": "Provenance", "id": "pv", "target": [{"reference": "#"}],
            "recorded": "2026-01-01T00:00:00Z", "agent": [{"who": {"display": "x"}}]}
    assert not has_errors(frcore.validate({**condition, "contained": [back]}))


def test_a_resource_language_is_stated_in_its_narrative(frcore):
    def warned(div):
        basic = {"resourceType": "Basic", "language": "fr-FR", "code": {"text": "x"},
                 "text": {"status": "generated", "div": div}}
        return [i["expression"][0] for i in frcore.validate(basic)["issue"]
                if i["severity"] == "warning" and "lang" in i["details"]["text"]]
    ns = 'xmlns="http://www.w3.org/1999/xhtml"'
    assert warned(f'<div {ns}>texte</div>') == ["Basic"]
    assert warned(f'<div {ns} lang="fr-FR">texte</div>') == ["Basic"]
    assert warned(f'<div {ns} lang="fr-FR" xml:lang="fr-FR">texte</div>') == []


def test_urn_references_in_a_bundle_resolve_to_its_entries(frcore):
    uuid = "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                   "subject": {"reference": uuid}}
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"fullUrl": "urn:uuid:9d1b5d6a-2e5c-4a8e-8d0e-2f1a9b7c6d5e", "resource": observation}]}

    def unresolved(b):
        return [i["expression"][0] for i in frcore.validate(b)["issue"] if "not locally contained" in i["details"]["text"]]
    assert unresolved(bundle) == ["Bundle.entry[0].resource/*Observation/null*/.subject"]
    bundle["entry"].append({"fullUrl": uuid, "resource": {"resourceType": "Patient"}})
    assert unresolved(bundle) == []


def test_vital_sign_codes_bring_their_r4_profile(frcore):
    """FHIR R4 makes the vital signs profiles mandatory for the Observations that use their codes (as the HL7
    validator applies them): a heart rate in the wrong unit is an error under LOINC 8867-4, not under a local
    code; a blood pressure may derive from other vital signs and give its components in mm[Hg]."""
    def heart_rate(system, code, unit):
        return {"resourceType": "Observation", "status": "final", "effectiveDateTime": "2026-01-01",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                          "code": "vital-signs"}]}],
                "code": {"coding": [{"system": system, "code": code}]}, "subject": {"reference": "Patient/p"},
                "valueQuantity": {"value": 72, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}
    loinc = frcore.validate(heart_rate("http://loinc.org", "8867-4", "{beats}/min"))
    assert [i["details"]["text"] for i in loinc["issue"] if i["severity"] == "information"
            and "Heart rate profile" in i["details"]["text"]] == [
        ("Validate Observation against the Heart rate profile (http://hl7.org/fhir/StructureDefinition/heartrate) "
        "which is required by the FHIR specification because the LOINC code 8867-4 was found")]
    assert any(path.startswith("Observation.value") for path, _ in errors(loinc)), errors(loinc)
    assert not has_errors(frcore.validate(heart_rate("http://loinc.org", "8867-4", "/min")))
    assert not has_errors(frcore.validate(heart_rate("https://hopital.example.fr/codes", "FC", "{beats}/min")))
    bp = {**heart_rate("http://loinc.org", "85354-9", "/min"), "derivedFrom": [{"reference": "Observation/hr"}],
          "component": [{"code": {"coding": [{"system": "http://loinc.org", "code": c}]},
                         "valueQuantity": {"value": v, "unit": "mmHg", "system": "http://unitsofmeasure.org",
                                           "code": "mm[Hg]"}} for c, v in (("8480-6", 120), ("8462-4", 80))]}
    del bp["valueQuantity"]
    assert not has_errors(frcore.validate(bp)), errors(frcore.validate(bp))
    # the units of a vital sign's other components: outside the vital signs units, a warning (as the HL7
    # validator reads that binding), not an error
    saturation = {**heart_rate("http://loinc.org", "2708-6", "%"), "component": [
        {"code": {"coding": [{"system": "http://loinc.org", "code": "3151-8"}]},
         "valueQuantity": {"value": 6, "unit": "L/min", "system": "http://unitsofmeasure.org", "code": "L/min"}}]}
    outcome = frcore.validate(saturation)
    assert not has_errors(outcome), errors(outcome)
    assert [i["expression"][0] for i in outcome["issue"] if i["severity"] == "warning"
            and "ucum-vitals-common" in i["details"]["text"]] == ["Observation.component[0].value.ofType(Quantity)"]


# --- what the validator could not judge (issue 12): said as such, never taken for a pass --------------------

def _not_judged(outcome):
    from vigie.fhir.validator import not_judged
    return [(i["expression"][0], not_judged(i)) for i in outcome["issue"] if not_judged(i)]


def test_a_required_binding_to_a_code_system_not_loaded_is_not_judged(frcore, patient):
    """FR Core binds the birth place's INSEE code (required) to a value set over TRE-R13-CommuneOM, which is in
    ans.fr.terminologies, a dependency the cache lacks: the code cannot be checked, whatever it is."""
    bad = _broken(patient, lambda p: p["extension"][1]["valueAddress"]["extension"][0]["valueCoding"].update(
        code="NOT-A-COMMUNE"))
    for resource in (patient, bad):
        out = frcore.validate(resource, profiles=[PATIENT_INS])
        assert not has_errors(out), errors(out)      # nothing wrong can be shown...
        lacked = dict(_not_judged(out))              # ...and nothing is taken as checked
        insee = next(v for e, v in lacked.items() if e.endswith("extension[0].value.ofType(Coding)"))
        assert insee == ("https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM",
                         "ans.fr.terminologies#1.7.0")
        # the birthPlace slice names hl7.fhir.uv.extensions' version of the extension, not R4 core's
        assert ("http://hl7.org/fhir/StructureDefinition/patient-birthPlace", "hl7.fhir.uv.extensions.r4#5.2.0") \
            in lacked.values()


def test_everything_judged_leaves_no_such_issue(frcore):
    """A Practitioner of the reference data: every binding FR Core gives it is checkable here."""
    from vigie.fixtures.practice import data
    practitioner = next(iter(data.build(42)["Practitioner"].values()))
    assert _not_judged(frcore.validate(practitioner)) == []


def test_an_invariant_that_cannot_be_evaluated_is_not_judged(frcore, monkeypatch):
    from vigie.fhir import fhirpath

    def broken(expression, *args, **kwargs):
        if expression.startswith("name.exists()") or "per-1" in expression or expression == "start <= end":
            raise fhirpath.FhirPathError("unsupported function")
        return evaluate(expression, *args, **kwargs)
    evaluate = fhirpath.evaluate
    monkeypatch.setattr(fhirpath, "evaluate", broken)
    out = frcore.validate({"resourceType": "Patient", "contact": [{"gender": "male"}],
                           "period": {"start": "2020"}})
    # pat-1 (error severity, on Patient.contact: name.exists() or ...) could not be evaluated
    assert ("Patient.contact[0]", ("invariant pat-1", None)) in _not_judged(out), out["issue"]


def test_mime_types_are_judged_by_their_grammar():
    """urn:ietf:bcp:13 is no list any package ships: a MIME type is judged by its form (and FHIR's xml/json)."""
    from vigie.fhir.terminology import Expansion
    mime = Expansion(set(), {"urn:ietf:bcp:13"}, True)
    assert mime.contains(None, "application/fhir+json; fhirVersion=4.0") is True
    assert mime.contains(None, "json") is True
    assert mime.contains(None, "not a type") is False
    assert mime.contains("urn:ietf:bcp:13", "text") is False
