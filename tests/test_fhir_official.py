"""No false error on official content: every resource the official packages publish (conformance resources and
examples) is validated against its base definition and the profiles it claims, and none has an error, apart
from the defects of the R4 core package listed below, each a rule the specification states (and the HL7
validator applies): the list is asserted exactly, so a new false error fails and so does a rule that stops
firing. The largest guard against a validator tuned to its test cases: about 5,000 resources, some 20 s."""
import time

import pytest
from test_fhir_data import ANNUAIRE_TGZ, CORE_TGZ, FRCORE21_TGZ, FRCORE_TGZ, SAS_TGZ, needs_packages

from vigie.fhir import Validator, load_packages

pytestmark = needs_packages

# (file, expression of the error) -> the rule the published resource breaks
_UNKNOWN_STATUS = "ConceptMap.source[x]: the source value set 'contains the concepts that are being mapped'"
_NO_BASE = "SearchParameter.base is 1..* in R4; these extension search parameters give none"
CORE_DEFECTS = {
    ("CapabilityStatement-example.json", "CapabilityStatement.url"):
        "uuid: 'urn:uuid:' then lowercase hexadecimal (datatypes, uuid); this one is in capitals",
    ("SearchParameter-questionnaireresponse-extensions-QuestionnaireResponse-item-subject.json", "SearchParameter.id"):
        "id: at most 64 characters (datatypes, id)",
    ("ValueSet-example-hierarchical.json", "ValueSet.compose.include[0]"):
        "ValueSet.compose.include.system: 'An absolute URI' ('#hacked')",
    **{(f"StructureDefinition-{name}.json", "StructureDefinition"):
       "sdf-4: a structure that is not abstract has a baseDefinition (these logical models have neither)"
       for name in ("Definition", "Event", "FiveWs", "Request")},
    **{("CodeSystem-snomedct.json", f"CodeSystem.property[{i}]"):
       "CodeSystem.property: a code (and URI) identifies one property; SNOMED CT's lists 'Laterality' and the "
       "placeholder URI 'http://.........?' twice" for i in (3, 5, 6, 35)},
    **{(f"SearchParameter-{kind}-extensions-{rt}-{code}.json", "SearchParameter"): _NO_BASE
       for kind, rt in (("codesystem", "CodeSystem"), ("valueset", "ValueSet"))
       for code in ("author", "effective", "end", "keyword", "workflow")},
    # CapabilityStatement.rest.resource.searchParam.type "SHALL be the same as the type in the search parameter
    # definition"; these examples declare `version` as a string (its definition: token) and the terminology
    # server's ValueSet reference / ConceptMap source and target with other types than theirs
    **{(f"CapabilityStatement-{name}.json", f"CapabilityStatement.rest[0].resource[{r}].searchParam[{j}]"):
       "CapabilityStatement.rest.resource.searchParam.type: the type of its search parameter definition"
       for name, params in (("knowledge-repository", ((0, 5), (1, 5), (2, 5), (3, 5), (4, 7))),
                            ("measure-processor", ((0, 2),)), ("terminology-server", ((0, 2), (1, 3), (1, 4))))
       for r, j in params},
    # the status maps of the workflow pattern map from lists of codes ('proposed,waitlist') and from codes the
    # status value set does not have
    **{(f"ConceptMap-sc-{name}.json", f"ConceptMap.group[0].element[{j}].code"): _UNKNOWN_STATUS
       for name, elements in (("appointmentstatus", (1,)), ("clinicalimpression-status", (1, 3, 4, 6, 7)),
                              ("condition-ver-status", (1, 2)), ("contract-publicationstatus", (2, 3, 6, 8)),
                              ("contract-status", (2, 3, 6, 8)), ("diagnostic-report-status", (1, 3)),
                              ("goal-achievement", (0, 3)), ("medicationdispense-status", (7,)),
                              ("observation-status", (3,)), ("participationstatus", (0,)),
                              ("publication-status", (0,)), ("research-study-status", (3, 4, 5)),
                              ("research-subject-status", (0, 2)), ("subscription-status", (0,)),
                              ("verificationresult-status", (3,)))
       for j in elements},
}


def package_resources(package):
    """(folder, file name, resource) of what a package publishes: package/ and package/example/ (the FHIR package
    specification's folders for resources); package/other/ holds the IG publisher's reports, not content."""
    for name in sorted(package._files):
        folder, _, file = name.rpartition("/")
        if folder not in ("package", "package/example") or not file.endswith(".json") \
                or file in ("package.json", ".index.json"):
            continue
        res = package.resource(name)
        if isinstance(res, dict) and isinstance(res.get("resourceType"), str):
            yield folder, file, res


@pytest.mark.parametrize("tgz, expected", [(CORE_TGZ, CORE_DEFECTS), (FRCORE_TGZ, {}), (FRCORE21_TGZ, {}),
                                           (SAS_TGZ, {}), (ANNUAIRE_TGZ, {})], ids=lambda p: getattr(p, "name", ""))
def test_official_content_has_no_false_error(tgz, expected):
    packages = load_packages(tgz, CORE_TGZ)
    validator = Validator(packages)
    start, count, found, examples = time.process_time(), 0, {}, 0
    for folder, file, res in package_resources(packages.packages[0]):
        count += 1
        examples += folder == "package/example"
        for issue in validator.validate(res)["issue"]:
            if issue["severity"] in ("error", "fatal"):
                found[(file, issue["expression"][0])] = issue["details"]["text"]
    print(f"\n{tgz.name}: {count} resources validated ({examples} of them examples) in "
          f"{time.process_time() - start:.1f} s CPU; {len(found)} errors, each a known defect of the content")
    assert count > (4000 if tgz == CORE_TGZ else 50)
    unexpected = {k: v for k, v in found.items() if k not in expected}
    assert unexpected == {}, f"{len(unexpected)} false errors on official content"
    assert sorted(set(expected) - set(found)) == [], "defects of the official content no longer reported"
