"""The FHIR checks called directly, as the plugin would, against small FHIR servers (tests/fhirstub.py) that
give each one a missing or partial observation: a type declared and empty, a statement without search
parameters, an unknown parameter that filters silently, a page without self link, a package not loaded...
Each must end other than `passed`, and pass where the observation is whole (proven both ways)."""
import copy
from pathlib import Path

import pytest
from checkcall import Outcome, conclude
from fhirstub import FhirStub, capability, requirement
from vigie.fixtures.practice.data import build

from conformance import (
    test_fhir_ig,
    test_fhir_rest,
    test_fhir_search,
    test_fhir_validation,
    test_fr_core,
    test_fr_identifiers,
)
from vigie.fhirvalidation import FhirPackages

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "fhir-packages"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/fhir-packages is not beside the repo")
FRC = "https://hl7.fr/ig/fhir/core/StructureDefinition/"
DATA = build(42)
PATIENTS = list(DATA["Patient"].values())[:12]
PATIENT_PARAMS = [{"name": "identifier", "type": "token"}, {"name": "family", "type": "string"},
                  {"name": "birthdate", "type": "date"}]


def run(check, stub: FhirStub, req=None, observe=None):
    """The outcome of one check against a stub, with the fixtures it names."""
    http = stub.http()
    fixtures = {"requirement": req or requirement(), "http": http, "capability": stub.capability(),
                "outcome": Outcome(), "observe": observe, "target": stub.target()}
    names = check.__code__.co_varnames[:check.__code__.co_argcount]
    try:
        result = conclude(check, **{n: fixtures[n] for n in names})
    finally:
        http.close()
    # what the check recorded on its way (outcome.measure, outcome.message), as the report would show it
    result.messages, result.measured = fixtures["outcome"].messages, fixtures["outcome"].measurements
    return result


def patients_stub(store=None, params=PATIENT_PARAMS, **kwargs) -> FhirStub:
    return FhirStub(capability({"Patient": {"searchParam": params}}), {"Patient": PATIENTS if store is None
                                                                      else store}, **kwargs)


def _identifier(r, v):
    system, _, code = v.rpartition("|")
    return any(i.get("value") == code and (not system or i.get("system") == system) for i in r.get("identifier", []))


FILTERS = {("Patient", "identifier"): _identifier,
           ("Patient", "family"): lambda r, v: any(n.get("family", "").lower().startswith(v.lower())
                                                   for n in r.get("name", [])),
           ("Patient", "birthdate"): lambda r, v: {"ge": r.get("birthDate", "") >= v[2:],
                                                   "le": r.get("birthDate", "") <= v[2:],
                                                   "eq": r.get("birthDate", "") == v[2:]}.get(v[:2], False)}


# --- route 1: a type declared searchable that serves nothing is no evidence ------------------------------

EMPTY_CHECKS = {
    "fhir.read": test_fhir_rest.test_read, "fhir.search": test_fhir_rest.test_search,
    "fhir.references": test_fhir_rest.test_references_resolve,
    "fhir.search-params": test_fhir_search.test_declared_parameters_filter,
    "fhir.search-token": test_fhir_search.test_token_search, "fhir.search-string": test_fhir_search.test_string_search,
    "fhir.search-date": test_fhir_search.test_date_search, "fhir.search-post": test_fhir_search.test_post_search_matches_get,
    "fr.identifier-key": test_fr_identifiers.test_identifier_keys,
    "fr.identifier-systems": test_fr_identifiers.test_identifier_systems,
}


# (markers name their check ids literally: tests/test_false_pass.py reads them from the source)
@pytest.mark.partial_observation("fhir.read", "fhir.search", "fhir.references", "fhir.search-params",
                                 "fhir.search-token", "fhir.search-string", "fhir.search-date", "fhir.search-post",
                                 "fr.identifier-key", "fr.identifier-systems")
@pytest.mark.parametrize("check_id", sorted(EMPTY_CHECKS))
def test_a_declared_type_that_serves_nothing_leaves_the_requirement_undetermined(check_id):
    params = {"register": "NIR"} if check_id == "fr.identifier-key" else {}
    with patients_stub(store=[]) as stub:
        result = run(EMPTY_CHECKS[check_id], stub, requirement(**params))
    assert result.status == "error", result
    assert "served no" in result.summary or "returned nothing" in result.summary, result.summary


@pytest.mark.partial_observation("fhir.paging")
def test_paging_needs_pages_to_follow():
    observations = [{"resourceType": "Observation", "id": f"o{i}", "status": "final",
                     "code": {"text": "x"}} for i in range(3)]
    statement = capability({"Observation": {"searchParam": [{"name": "_id", "type": "token"}]}})
    req = requirement(resource="Observation", count=50)
    with FhirStub(statement, {"Observation": []}) as stub:
        assert run(test_fhir_search.test_paging, stub, req).status == "error"
    with FhirStub(statement, {"Observation": observations[:1]}) as stub:
        result = run(test_fhir_search.test_paging, stub, req)
        assert result.status == "error" and "one page" in result.summary
    with FhirStub(statement, {"Observation": observations}) as stub:   # 3 matches: _count lowered to 1
        result = run(test_fhir_search.test_paging, stub, req)
        assert result.status == "passed" and "3 pages" in result.summary, result


@pytest.mark.partial_observation("fhir.search")
def test_search_needs_a_search_that_pages():
    with patients_stub(store=PATIENTS[:3]) as stub:                     # within _count=5: nothing paged
        result = run(test_fhir_rest.test_search, stub, requirement(count=5))
        assert result.status == "error" and "could not be observed" in result.summary
        assert run(test_fhir_rest.test_search, stub, requirement(count=2)).status == "passed"


@pytest.mark.partial_observation("fhir.read")
def test_read_without_search_is_not_exercised():
    statement = capability({"Patient": {"searchParam": PATIENT_PARAMS},
                            "Binary": {"interactions": ["read"]}})
    with FhirStub(statement, {"Patient": PATIENTS}) as stub:
        result = run(test_fhir_rest.test_read, stub)
    assert result.status == "not_tested" and "Binary" in result.summary
    with patients_stub() as stub:
        assert run(test_fhir_rest.test_read, stub).status == "passed"


@pytest.mark.partial_observation("fhir.content-type")
def test_content_type_needs_more_than_the_capability_statement():
    with FhirStub(capability({"Patient": {"interactions": ["read"]}}), {"Patient": PATIENTS}) as stub:
        result = run(test_fhir_rest.test_content_type, stub, requirement(allowed=["application/fhir+json"]))
    assert result.status == "error" and "no search-type" in result.summary
    with patients_stub() as stub:
        assert run(test_fhir_rest.test_content_type, stub, requirement(allowed=["application/fhir+json"])).status \
            == "passed"


class NoIssue(FhirStub):
    """Errors answered with an OperationOutcome that holds no issue."""

    def answer(self, segments, query):
        status, body = super().answer(segments, query)
        return (status, {"resourceType": "OperationOutcome"}) if status >= 400 else (status, body)


@pytest.mark.partial_observation("fhir.errors")
def test_an_operation_outcome_without_issue_is_not_an_error_report():
    with NoIssue(capability({"Patient": {}}), {"Patient": PATIENTS}) as stub:
        result = run(test_fhir_rest.test_errors_are_operation_outcomes, stub)
    assert result.status == "failed" and "no issue" in result.summary
    with patients_stub() as stub:
        assert run(test_fhir_rest.test_errors_are_operation_outcomes, stub).status == "passed"


@pytest.mark.partial_observation("fhir.references")
def test_references_of_resources_without_any_are_not_applicable_only_when_resources_were_seen():
    with patients_stub() as stub:       # patients served, none refers to a readable type
        assert run(test_fhir_rest.test_references_resolve, stub).status == "not_applicable"


# --- route 2: a CapabilityStatement that declares no search parameter -----------------------------------

@pytest.mark.partial_observation("fhir.capability")
def test_a_searchable_type_without_search_parameters_fails_the_capability_statement():
    with patients_stub(params=[]) as stub:
        result = run(test_fhir_rest.test_capability_statement, stub, requirement(fhir_version="4.0.1"))
    assert result.status == "failed" and "without any search parameter" in result.summary
    with FhirStub(capability({})) as stub:
        assert run(test_fhir_rest.test_capability_statement, stub, requirement()).status == "failed"
    with patients_stub() as stub:
        assert run(test_fhir_rest.test_capability_statement, stub, requirement()).status == "passed"


SEMANTICS = {"fhir.search-token": test_fhir_search.test_token_search,
             "fhir.search-string": test_fhir_search.test_string_search,
             "fhir.search-date": test_fhir_search.test_date_search}


@pytest.mark.partial_observation("fhir.search-token", "fhir.search-string", "fhir.search-date", "fhir.search-params")
@pytest.mark.parametrize("unknown", ["strict", "ignore"])
def test_undeclared_parameters_are_tried_not_excused(unknown):
    """Not declared and refused (strict) or ignored: not verified, never not_applicable."""
    with patients_stub(params=[], unknown=unknown) as stub:
        for check in SEMANTICS.values():
            result = run(check, stub)
            assert result.status == "error" and "not verified" in result.summary, result
        result = run(test_fhir_search.test_declared_parameters_filter, stub)
        assert result.status == "error" and "declares no search parameter" in result.summary


@pytest.mark.partial_observation("fhir.search-token", "fhir.search-string", "fhir.search-date")
def test_undeclared_parameters_that_the_server_applies_are_tested():
    with patients_stub(params=[], filters=FILTERS) as stub:
        for check in SEMANTICS.values():
            result = run(check, stub)
            assert result.status == "passed" and "applies it" in result.messages[0], result
    with patients_stub(filters=FILTERS) as stub:                          # declared: the same, no message
        for check in SEMANTICS.values():
            assert run(check, stub).status == "passed"


@pytest.mark.partial_observation("fhir.search-token", "fhir.search-string", "fhir.search-date")
def test_semantics_need_the_element_they_search():
    bare = [{"resourceType": "Patient", "id": f"p{i}"} for i in range(3)]
    with patients_stub(store=bare, filters=FILTERS) as stub:
        for check in SEMANTICS.values():
            result = run(check, stub)
            assert result.status == "error" and "could not be exercised" in result.summary, result


@pytest.mark.partial_observation("fhir.search-params")
def test_declared_parameters_on_data_only():
    with patients_stub(filters=FILTERS) as stub:
        assert run(test_fhir_search.test_declared_parameters_filter, stub).status == "passed"
    with patients_stub(unknown="ignore") as stub:                        # declared, then ignored
        assert run(test_fhir_search.test_declared_parameters_filter, stub).status == "failed"


def _with_includes(includes=(), params=PATIENT_PARAMS):
    statement = capability({"Encounter": {"searchParam": params, "searchInclude": list(includes)},
                            "Patient": {"searchParam": params}})
    encounters = list(DATA["Encounter"].values())[:5]
    return FhirStub(statement, {"Encounter": encounters, "Patient": PATIENTS})


@pytest.mark.partial_observation("fhir.include")
def test_includes_are_excused_only_by_a_statement_that_declares_its_searches():
    with _with_includes(params=[]) as stub:
        result = run(test_fhir_search.test_include_and_revinclude, stub)
        assert result.status == "error" and "not declared" in result.summary
    with _with_includes() as stub:
        assert run(test_fhir_search.test_include_and_revinclude, stub).status == "not_applicable"
    statement = capability({"Encounter": {"searchParam": PATIENT_PARAMS, "searchInclude": ["Encounter:patient"]}})
    with FhirStub(statement, {"Encounter": []}) as stub:                # declared, nothing to include from
        result = run(test_fhir_search.test_include_and_revinclude, stub)
        assert result.status == "error" and "matched a resource" in result.summary


# --- route 3: FHIR-REST-14 -------------------------------------------------------------------------------

@pytest.mark.partial_observation("fhir.unknown-param")
@pytest.mark.parametrize("unknown, self_link, status, says", [
    ("empty", False, "failed", "no self link"),
    ("empty", True, "failed", "filtered silently"),
    ("ignore", False, "failed", "no self link"),
    ("ignore", True, "passed", "lenient"),
    ("strict", True, "passed", "strict"),
])
def test_lenient_handling_needs_a_self_link_and_an_unfiltered_result(unknown, self_link, status, says):
    with patients_stub(unknown=unknown, self_link=self_link) as stub:
        result = run(test_fhir_search.test_unknown_parameter, stub)
    assert result.status == status and says in result.summary, result


@pytest.mark.partial_observation("fhir.unknown-param")
def test_lenient_handling_on_an_empty_server_is_undetermined():
    with patients_stub(store=[], unknown="ignore") as stub:
        result = run(test_fhir_search.test_unknown_parameter, stub)
    assert result.status == "error" and "could not be observed" in result.summary


# --- route 4: validation with missing packages -----------------------------------------------------------

@pytest.fixture(scope="module")
def packages(fhir_package_cache):
    if fhir_package_cache is None:
        pytest.skip("../shared/data/fhir-packages is not beside the repo")
    return FhirPackages(str(fhir_package_cache))


@pytest.fixture
def no_packages(tmp_path, monkeypatch):
    """A package cache with nothing in it, and no registry to fetch from."""
    from vigie.fhir import PackageError, registry

    def unreachable(spec, cache, log=None):
        raise PackageError(f"{spec}: no registry reachable in this test")
    monkeypatch.setattr(registry, "install", unreachable)
    return FhirPackages(str(tmp_path / "empty-cache"))


def not_a_commune(patient: dict) -> dict:
    bad = copy.deepcopy(patient)
    bad["extension"][1]["valueAddress"]["extension"][0]["valueCoding"]["code"] = "NOT-A-COMMUNE"
    return bad


VALIDATION_CHECKS = {"fhir.validation": (test_fhir_validation.test_resources_validate_against_core, {}),
                     "fhir.claimed-profiles": (test_fhir_validation.test_resources_conform_to_claimed_profiles,
                                               {"packages": ["hl7.fhir.fr.core#2.2.0"]}),
                     "frcore.profile": (test_fr_core.test_fr_core_profile,
                                        {"resource": "Patient", "profile": "fr-core-patient-ins"}),
                     "frcore.must-support": (test_fr_core.test_must_support_populated,
                                             {"resource": "Patient", "profile": "fr-core-patient-ins"})}


@needs_shared
@pytest.mark.partial_observation("fhir.validation", "fhir.claimed-profiles", "frcore.profile", "frcore.must-support")
@pytest.mark.parametrize("check_id", sorted(VALIDATION_CHECKS))
def test_validation_without_its_packages_is_an_error(check_id, no_packages):
    check, params = VALIDATION_CHECKS[check_id]
    with patients_stub() as stub:
        result = run(check, stub, requirement(**params), observe=lambda name: no_packages)
    assert result.status == "error" and "vigie packages" in result.summary, result


@needs_shared
@pytest.mark.partial_observation("fhir.validation", "fhir.claimed-profiles", "frcore.profile", "frcore.must-support")
@pytest.mark.parametrize("check_id", sorted(VALIDATION_CHECKS))
def test_validation_of_an_empty_server_is_undetermined(check_id, packages):
    check, params = VALIDATION_CHECKS[check_id]
    with patients_stub(store=[]) as stub:
        result = run(check, stub, requirement(**params), observe=lambda name: packages)
    assert result.status == "error" and "served no" in result.summary, result


@needs_shared
@pytest.mark.partial_observation("frcore.profile", "fhir.claimed-profiles")
def test_an_insee_code_that_cannot_be_checked_is_not_passed(packages):
    """A Patient born in NOT-A-COMMUNE: FR Core's required binding needs ans.fr.terminologies, which no
    registry here gives: undetermined, naming the package, never passed."""
    checks = {test_fr_core.test_fr_core_profile: {"resource": "Patient", "profile": "fr-core-patient-ins"},
              test_fhir_validation.test_resources_conform_to_claimed_profiles: {"packages": ["hl7.fhir.fr.core#2.2.0"]}}
    with patients_stub(store=[not_a_commune(p) for p in PATIENTS]) as stub:
        for check, params in checks.items():
            result = run(check, stub, requirement(**params), observe=lambda name: packages)
            assert result.status == "error", result
            assert "TRE-R13-CommuneOM not loaded (in ans.fr.terminologies#1.7.0)" in result.summary, result.summary
            assert "vigie packages add ans.fr.terminologies-1.7.0.tgz" in result.summary
            assert result.measured["invalid"] == 0


@needs_shared
@pytest.mark.partial_observation("frcore.profile", "fhir.validation")
def test_judged_resources_still_pass_and_violations_still_fail(packages):
    """Practitioners are judged whole with the packages at hand; a violation observed is a failure even
    where something else could not be judged."""
    statement = capability({"Practitioner": {"searchParam": [{"name": "identifier", "type": "token"}]},
                            "Patient": {"searchParam": PATIENT_PARAMS}})
    practitioners = list(DATA["Practitioner"].values())[:5]
    req = requirement(resource="Practitioner", profile="fr-core-practitioner")
    with FhirStub(statement, {"Practitioner": practitioners, "Patient": PATIENTS}) as stub:
        assert run(test_fr_core.test_fr_core_profile, stub, req, lambda name: packages).status == "passed"
        assert run(test_fhir_validation.test_resources_validate_against_core, stub, requirement(),
                   lambda name: packages).status == "passed"
    wrong = [dict(not_a_commune(p), gender="other") for p in PATIENTS]
    with patients_stub(store=wrong) as stub:
        result = run(test_fr_core.test_fr_core_profile, stub,
                     requirement(resource="Patient", profile="fr-core-patient-ins"), lambda name: packages)
    assert result.status == "failed" and "gender" in result.summary, result


@needs_shared
@pytest.mark.partial_observation("frcore.profile", "frcore.must-support")
def test_fr_core_on_types_the_server_does_not_declare_is_not_applicable(packages):
    with FhirStub(capability({"Organization": {"searchParam": PATIENT_PARAMS}}), {"Organization": []}) as stub:
        for check in (test_fr_core.test_fr_core_profile, test_fr_core.test_must_support_populated):
            result = run(check, stub, requirement(resource="Patient", profile="fr-core-patient-ins"),
                         lambda name: packages)
            assert result.status == "not_applicable" and "declares no search on Patient" in result.summary


@pytest.mark.partial_observation("fr.identifier-key", "fr.identifier-systems")
def test_identifier_checks_read_the_capability_statement():
    with FhirStub(capability({"Organization": {"searchParam": PATIENT_PARAMS}}), {"Organization": []}) as stub:
        assert run(test_fr_identifiers.test_identifier_keys, stub, requirement(register="NIR")).status \
            == "not_applicable"
        assert run(test_fr_identifiers.test_identifier_systems, stub,
                   requirement(resources=["Patient"])).status == "not_applicable"
    with patients_stub() as stub:
        assert run(test_fr_identifiers.test_identifier_keys, stub, requirement(register="NIR")).status == "passed"
        assert run(test_fr_identifiers.test_identifier_keys, stub, requirement(register="NIR", max_resources=5)) \
            .status == "passed"
    bare = [{"resourceType": "Patient", "id": f"p{i}"} for i in range(3)]
    with patients_stub(store=bare) as stub:        # every patient read, none carries a NIR: observed
        assert run(test_fr_identifiers.test_identifier_keys, stub, requirement(register="NIR")).status \
            == "not_applicable"
        result = run(test_fr_identifiers.test_identifier_keys, stub, requirement(register="NIR", max_resources=2))
        assert result.status == "error" and "were not read" in result.summary


# --- implementation guide requirements ---------------------------------------------------------------------

@pytest.mark.partial_observation("ig.interaction", "ig.search-param", "ig.include")
def test_ig_requirements_need_data():
    reqs = {test_fhir_ig.test_ig_interaction: [requirement(resource="Patient", interaction="read"),
                                               requirement(resource="Patient", interaction="search-type")],
            test_fhir_ig.test_ig_search_parameter: [requirement(resource="Patient", code="family", type="string")],
            test_fhir_ig.test_ig_include: [requirement(resource="Patient", parameter="_revinclude",
                                                       value="Encounter:patient")]}
    with patients_stub(store=[], filters=FILTERS) as stub:
        for check, requirements in reqs.items():
            for req in requirements:
                result = run(check, stub, req)
                assert result.status == "error", (req.params, result)
    with patients_stub(filters=FILTERS) as stub:
        for check, requirements in reqs.items():
            status = {req.params.get("value", ""): run(check, stub, req).status for req in requirements}
            # the stub has no _revinclude: nothing included is no evidence of support
            assert set(status.values()) == ({"error"} if check is test_fhir_ig.test_ig_include else {"passed"})


@pytest.mark.partial_observation("ig.search-param")
def test_ig_search_parameter_whose_definition_is_not_loaded():
    with patients_stub(filters=FILTERS) as stub:
        result = run(test_fhir_ig.test_ig_search_parameter, stub, requirement(
            resource="Patient", code="family", type="string", label="fam-label",
            definition_not_loaded="https://ig.example/SearchParameter/fam"))
    assert result.status == "error" and "is in no loaded package" in result.summary


def test_the_markers_name_the_checks_the_tests_call():
    """The partial_observation markers above spell their ids out; they must be the ids of the checks called."""
    import ast
    markers = {node.name: {a.value for d in node.decorator_list if isinstance(d, ast.Call)
                           and getattr(d.func, "attr", "") == "partial_observation" for a in d.args}
               for node in ast.parse(Path(__file__).read_text()).body if isinstance(node, ast.FunctionDef)}
    assert markers["test_a_declared_type_that_serves_nothing_leaves_the_requirement_undetermined"] == set(EMPTY_CHECKS)
    assert markers["test_validation_without_its_packages_is_an_error"] == set(VALIDATION_CHECKS)
    assert markers["test_undeclared_parameters_that_the_server_applies_are_tested"] == set(SEMANTICS)
