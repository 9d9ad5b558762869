"""Rules of the FHIR R4 specification behind disagreements with the HL7 Java validator, each shown both ways:
the flawed resource is reported at its location, the clean one is not (null JSON properties, the narrative's
txt-1 and txt-2, search parameter types against their definitions, composite search parameters, references
from one contained resource to another, type discriminators on resolve())."""
import pytest
from test_fhir_data import CORE_TGZ, needs_packages

from vigie.fhir import Validator, load_packages

pytestmark = needs_packages
XHTML = 'xmlns="http://www.w3.org/1999/xhtml"'


@pytest.fixture(scope="module")
def packages():
    return load_packages(CORE_TGZ)


@pytest.fixture(scope="module")
def core(packages):
    return Validator(packages)


def errors(outcome):
    return [(i["expression"][0], i["details"]["text"]) for i in outcome["issue"] if i["severity"] in ("error", "fatal")]


# --- JSON: properties never have null values (json.html) ----------------------------------------------------
def test_null_properties_are_errors(core):
    out = core.validate({"resourceType": "Patient", "meta": None, "gender": None, "birthDate": "2000-01-01",
                         "_birthDate": None})
    assert sorted(p for p, m in errors(out) if "null value" in m) == \
        ["Patient.birthDate", "Patient.gender", "Patient.meta"]


def test_absent_properties_and_aligned_nulls_in_primitive_arrays_are_accepted(core):
    ext = {"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier", "valueCode": "BR"}
    out = core.validate({"resourceType": "Patient", "name": [{"given": ["Jean", "Paul"],
                                                              "_given": [None, {"extension": [ext]}]}]})
    assert [m for _, m in errors(out) if "null" in m] == []


# --- the narrative: txt-1 (its rules) and txt-2 (some content) ------------------------------------------------
@pytest.mark.parametrize("div, failed", [
    (f"<div {XHTML}>text<script>x()</script></div>", ["txt-1"]),
    (f'<div {XHTML}><p onclick="x()">a</p></div>', ["txt-1"]),
    (f"<div {XHTML}> <p>  </p></div>", ["txt-2"]),
    (f"<div {XHTML}><p>Jean Dupont</p></div>", []),
    (f'<div {XHTML}><img src="#photo"/></div>', []),
], ids=["script", "event", "empty", "text", "image"])
def test_narrative_invariants(core, div, failed):
    out = core.validate({"resourceType": "Basic", "code": {"text": "x"}, "text": {"status": "generated", "div": div}})
    keys = [m.split(":")[1].strip() for p, m in errors(out) if m.startswith("Constraint failed")]
    assert keys == failed, errors(out)


# --- search parameters against their definitions -------------------------------------------------------------
def _capability(param_type):
    return {"resourceType": "CapabilityStatement", "status": "active", "date": "2024-01-01", "kind": "instance",
            "fhirVersion": "4.0.1", "format": ["json"], "implementation": {"description": "x"},
            "rest": [{"mode": "server", "resource": [{"type": "AllergyIntolerance", "searchParam": [
                {"name": "clinical-status", "type": param_type,
                 "definition": "http://hl7.org/fhir/SearchParameter/AllergyIntolerance-clinical-status"}]}]}]}


def test_capability_search_param_type_is_its_definitions(core):
    where = "CapabilityStatement.rest[0].resource[0].searchParam[0]"
    assert [p for p, m in errors(core.validate(_capability("date"))) if "search parameter type" in m] == [where]
    assert errors(core.validate(_capability("token"))) == []


def test_capability_search_param_with_an_unknown_definition_is_not_judged(core):
    cs = _capability("date")
    cs["rest"][0]["resource"][0]["searchParam"][0]["definition"] = "http://example.org/SearchParameter/x"
    out = core.validate(cs)
    assert errors(out) == []
    assert any("not loaded" in i["details"]["text"] for i in out["issue"] if i["severity"] == "information")


def _search_parameter(**changes):
    sp = {"resourceType": "SearchParameter", "url": "http://example.org/SearchParameter/org-name", "name": "OrgName",
          "status": "active", "description": "name", "code": "name", "base": ["Organization"], "type": "string",
          "expression": "Organization.name", "derivedFrom": "http://hl7.org/fhir/SearchParameter/Organization-name"}
    sp.update(changes)
    return sp


def test_derived_search_parameter_keeps_the_type_of_its_origin(core):
    assert [p for p, m in errors(core.validate(_search_parameter(type="token")))] == ["SearchParameter"]
    assert errors(core.validate(_search_parameter())) == []


def test_composite_search_parameter_has_components(core):
    component = {"definition": "http://hl7.org/fhir/SearchParameter/Observation-code", "expression": "code"}
    bad = _search_parameter(type="composite", base=["Observation"], expression="Observation", component=[component])
    bad.pop("derivedFrom")
    assert [m for p, m in errors(core.validate(bad)) if "composite" in m]
    good = dict(bad, component=[component, dict(component, definition="http://hl7.org/fhir/SearchParameter/"
                                                                       "Observation-value-quantity")])
    assert [m for p, m in errors(core.validate(good)) if "composite" in m] == []


# --- references between contained resources; type discriminators on resolve() --------------------------------
PROFILE = {"resourceType": "StructureDefinition", "url": "http://example.org/StructureDefinition/appt",
           "name": "Appt", "status": "draft", "kind": "resource", "abstract": False, "type": "Appointment",
           "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Appointment", "derivation": "constraint",
           "differential": {"element": [
               {"id": "Appointment.supportingInformation", "path": "Appointment.supportingInformation",
                "slicing": {"discriminator": [{"type": "type", "path": "$this.resolve()"}], "rules": "closed"}},
               {"id": "Appointment.supportingInformation:device", "path": "Appointment.supportingInformation",
                "sliceName": "device", "min": 0, "max": "1",
                "type": [{"code": "Reference", "targetProfile": ["http://hl7.org/fhir/StructureDefinition/Device"]}]}]}}


def _list_with(sibling):
    appointment = {"resourceType": "Appointment", "id": "appt", "meta": {"profile": [PROFILE["url"]]},
                   "status": "proposed", "participant": [{"status": "accepted", "actor": {"display": "x"}}],
                   "supportingInformation": [{"reference": "#sib"}]}
    return {"resourceType": "List", "status": "current", "mode": "snapshot",
            "contained": [appointment, dict(sibling, id="sib")], "entry": [{"item": {"reference": "#appt"}}]}


def test_a_contained_resource_refers_to_its_siblings(packages):
    validator = Validator(packages, resources=[PROFILE])
    assert errors(validator.validate(_list_with({"resourceType": "Device"}))) == []
    found = errors(validator.validate(_list_with({"resourceType": "Patient"})))
    assert [p for p, m in found if "slice" in m] == \
        ["List.contained[0]/*Appointment/appt*/.supportingInformation[0]"], found


# --- an extensible binding with an unknown code (terminologies.html#extensible) -------------------------------
def _warnings(outcome):
    return [(i["expression"][0], i["details"]["text"]) for i in outcome["issue"] if i["severity"] == "warning"]


@pytest.mark.parametrize("code, unknown", [("no-such-state", True), ("amended", False)])
def test_an_unknown_code_in_an_extensible_binding_also_misses_the_value_set(core, code, unknown):
    out = core.validate({"resourceType": "Contract", "legalState": {"coding": [
        {"system": "http://hl7.org/fhir/contract-legalstate", "code": code}]}})
    assert [p for p, m in errors(out) if "Unknown code" in m] == \
        (["Contract.legalState.coding[0].code"] if unknown else [])
    assert [p for p, m in _warnings(out) if "value set" in m] == (["Contract.legalState"] if unknown else [])


# --- ElementDefinition.type.aggregation: how the referenced resource is held -----------------------------------
def _org_profile(*modes):
    return {"resourceType": "StructureDefinition", "url": "http://example.org/StructureDefinition/org-" + "-".join(modes),
            "name": "Org", "status": "draft", "kind": "resource", "abstract": False, "type": "Organization",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Organization", "derivation": "constraint",
            "differential": {"element": [{"id": "Organization.endpoint", "path": "Organization.endpoint", "type": [
                {"code": "Reference", "targetProfile": ["http://hl7.org/fhir/StructureDefinition/Endpoint"],
                 "aggregation": list(modes)}]}]}}


ENDPOINT = {"resourceType": "Endpoint", "id": "e1", "status": "active", "address": "https://h.example.fr/fhir",
            "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                               "code": "hl7-fhir-rest"},
            "payloadType": [{"text": "any"}]}


def test_a_bundled_reference_must_be_found_in_the_bundle(packages):
    profile = _org_profile("bundled")
    validator = Validator(packages, resources=[profile])

    def bundle(ref):
        org = {"resourceType": "Organization", "id": "o1", "meta": {"profile": [profile["url"]]},
               "endpoint": [{"reference": ref}]}
        return {"resourceType": "Bundle", "type": "collection", "entry": [
            {"fullUrl": "https://h.example.fr/fhir/Organization/o1", "resource": org},
            {"fullUrl": "https://h.example.fr/fhir/Endpoint/e1", "resource": ENDPOINT}]}
    assert [p for p, m in errors(validator.validate(bundle("Endpoint/e1"))) if "aggregation" in m] == []
    assert [p for p, m in errors(validator.validate(bundle("Endpoint/other"))) if "aggregation" in m] == \
        ["Bundle.entry[0].resource/*Organization/o1*/.endpoint[0]"]


def test_a_contained_only_reference_must_be_local(packages):
    profile = _org_profile("contained")
    validator = Validator(packages, resources=[profile])
    local = {"resourceType": "Organization", "meta": {"profile": [profile["url"]]}, "contained": [ENDPOINT],
             "endpoint": [{"reference": "#e1"}]}
    assert [m for p, m in errors(validator.validate(local)) if "aggregation" in m] == []
    remote = dict(local, endpoint=[{"reference": "Endpoint/e1"}])
    remote.pop("contained")
    assert [p for p, m in errors(validator.validate(remote)) if "aggregation" in m] == ["Organization.endpoint[0]"]


# --- concept property URIs in HL7's namespace (codesystem.html#defined-props) ------------------------------------
@pytest.mark.parametrize("code, kind, unknown", [("order", "decimal", True), ("inactive", "boolean", False),
                                                 ("status", "code", False)])
def test_a_property_uri_in_the_hl7_namespace_names_a_defined_property(core, code, kind, unknown):
    cs = {"resourceType": "CodeSystem", "url": "http://example.org/CodeSystem/cs", "status": "draft",
          "content": "complete", "property": [{"code": code, "uri": f"http://hl7.org/fhir/concept-properties#{code}",
                                               "type": kind}],
          "concept": [{"code": "a", "display": "A"}]}
    found = [p for p, m in errors(core.validate(cs)) if "concept property" in m]
    assert found == (["CodeSystem.property[0]"] if unknown else [])
