"""Every resource served validates against FHIR R4 core and against the profiles it claims (meta.profile).

A resource is found valid only when the validator judged all of it: what it could not judge for want of a
package (a required binding to a code system not loaded, a missing extension definition, an invariant it
could not evaluate) leaves the requirement undetermined, naming the package to add."""
from vigie.checks import check, not_applicable, passed
from vigie.errors import ObservationError
from vigie.fhirrest import claimed_profiles, none_served, served_data
from vigie.fhirvalidation import Judgement


def served(http, capability, max_resources: int) -> list[dict]:
    """Up to max_resources served resources, shared evenly between the searchable types; undetermined when
    the types declared searchable served none."""
    types = [t for t in capability.types_with("search-type") if t != "AuditEvent"]  # server-written traces
    if not types:
        not_applicable("the CapabilityStatement declares no search-type interaction")
    share = max(1, max_resources // len(types))
    resources = [r for t in types for r in served_data(http, t, share, page_size=min(share, 100))]
    if not resources:
        none_served(", ".join(types) if len(types) < 4 else f"{len(types)} types: {', '.join(types[:3])}...")
    return resources


def _validate_all(validator, resources, profiles_of, outcome) -> Judgement:
    judgement = Judgement()
    for resource in resources:
        for profiles in profiles_of(resource):
            label = f"{resource['resourceType']}/{resource.get('id')}" + \
                (f" as {profiles[0].rsplit('/', 1)[-1]}" if profiles else "")
            judgement.add(label, validator.validate(resource, profiles=profiles))
    outcome.measure(**judgement.measurements())
    return judgement


@check("fhir.validation")
def test_resources_validate_against_core(requirement, http, capability, observe, outcome):
    packages = observe("fhir-packages")
    validator = packages.validator()
    outcome.measure(packages=packages.loaded)
    resources = served(http, capability, int(requirement.params.get("max_resources", 300)))
    # no profile named: the resource is checked against its base definition (claims unknown here only warn)
    judgement = _validate_all(validator, resources, lambda r: [[]], outcome)
    judgement.conclude("resources are not valid FHIR R4")
    passed(f"{judgement.validated} served resources are valid FHIR R4")


@check("fhir.claimed-profiles")
def test_resources_conform_to_claimed_profiles(requirement, http, capability, observe, outcome):
    resources = served(http, capability, int(requirement.params.get("max_resources", 300)))
    claims = sorted({p for r in resources for p in claimed_profiles(r)})
    outcome.measure(claimed=claims)
    if not claims:
        not_applicable(f"none of the {len(resources)} resources served claims a profile in meta.profile")
    packages = observe("fhir-packages")
    validator = packages.validator(*requirement.params.get("packages", []))
    outcome.measure(packages=packages.loaded)
    unknown = [c for c in claims if validator.packages.resolve(c, "StructureDefinition") is None]
    known = lambda r: [[p] for p in claimed_profiles(r) if p not in unknown]
    judgement = _validate_all(validator, resources, known, outcome)
    judgement.conclude("resources do not conform to the profiles they claim")
    if unknown:
        raise ObservationError(f"claimed profiles that no loaded package defines (add the package that "
                               f"defines them): {', '.join(unknown[:5])}")
    passed(f"{judgement.validated} validations against {len(claims)} claimed profiles, all conformant")
