"""Every resource served validates against FHIR R4 core and against the profiles it claims (meta.profile)."""
from vigie.checks import check, failed, not_applicable, passed
from vigie.errors import ObservationError
from vigie.fhirrest import claimed_profiles, search_all
from vigie.fhirvalidation import describe, issues


def served(http, capability, max_resources: int) -> list[dict]:
    """Up to max_resources served resources, shared evenly between the searchable types."""
    types = [t for t in capability.types_with("search-type") if t != "AuditEvent"]  # server-written traces
    if not types:
        not_applicable("the server declares no search-type interaction")
    share = max(1, max_resources // len(types))
    return [r for t in types for r in search_all(http, t, limit=share, page_size=min(share, 100))]


def _validate_all(validator, resources, profiles_of, outcome, label):
    invalid, checked = [], 0
    for resource in resources:
        for profiles in profiles_of(resource):
            checked += 1
            errors = issues(validator.validate(resource, profiles=profiles))
            if errors:
                invalid.append(f"{resource['resourceType']}/{resource.get('id')}"
                              f"{' as ' + profiles[0].rsplit('/', 1)[-1] if profiles else ''}: {describe(errors[0])}")
    outcome.measure(validated=checked, invalid=len(invalid), examples=invalid[:20])
    if invalid:
        failed(f"{len(invalid)} of {checked} resources are not valid {label}, e.g. {invalid[0]}")
    return checked


@check("fhir.validation")
def test_resources_validate_against_core(requirement, http, capability, observe, outcome):
    packages = observe("fhir-packages")
    validator = packages.validator()
    outcome.measure(packages=packages.loaded)
    resources = served(http, capability, int(requirement.params.get("max_resources", 300)))
    # no profile named: the resource is checked against its base definition (claims unknown here only warn)
    checked = _validate_all(validator, resources, lambda r: [[]], outcome, "FHIR R4")
    passed(f"{checked} served resources are valid FHIR R4")


@check("fhir.claimed-profiles")
def test_resources_conform_to_claimed_profiles(requirement, http, capability, observe, outcome):
    resources = served(http, capability, int(requirement.params.get("max_resources", 300)))
    claims = sorted({p for r in resources for p in claimed_profiles(r)})
    outcome.measure(claimed=claims)
    if not claims:
        not_applicable("no served resource claims a profile in meta.profile")
    packages = observe("fhir-packages")
    validator = packages.validator(*requirement.params.get("packages", []))
    outcome.measure(packages=packages.loaded)
    unknown = [c for c in claims if validator.packages.resolve(c, "StructureDefinition") is None]
    known = lambda r: [[p] for p in claimed_profiles(r) if p not in unknown]
    checked = _validate_all(validator, resources, known, outcome, "against the profiles they claim")
    if unknown:
        raise ObservationError(f"claimed profiles that no loaded package defines (add the package that "
                               f"defines them): {', '.join(unknown[:5])}")
    passed(f"{checked} validations against {len(claims)} claimed profiles, all conformant")
