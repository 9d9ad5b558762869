"""FR Core (hl7.fhir.fr.core): the Patients, Practitioners, Organizations and Encounters served conform to
their FR Core profile (fr-core-patient-ins for identities whose status is VALI), and the must-support
elements of those profiles are populated at least once across the data."""
from vigie.checks import check, failed, not_applicable, passed, undetermined
from vigie.fhirrest import search_all, values_at
from vigie.fhirvalidation import describe, identity_status, issues, must_support

FRC = "https://hl7.fr/ig/fhir/core/StructureDefinition/"


def _selected(requirement, http):
    rtype = requirement.params["resource"]
    limit = int(requirement.params.get("max_resources", 300))
    resources = list(search_all(http, rtype, limit=limit))
    if requirement.params.get("identity_status"):
        resources = [r for r in resources if identity_status(r) == requirement.params["identity_status"]]
    if not resources:
        not_applicable(f"no {rtype} served" + (f" with identity status {requirement.params['identity_status']}"
                                               if requirement.params.get("identity_status") else ""))
    return rtype, resources


def _validator(requirement, observe, outcome):
    version = str(requirement.params.get("version", "2.2.0"))
    packages = observe("fhir-packages")
    validator = packages.validator(f"hl7.fhir.fr.core#{version}")
    outcome.measure(fr_core=version, packages=packages.loaded)
    return validator


@check("frcore.profile")
def test_fr_core_profile(requirement, http, observe, outcome):
    validator = _validator(requirement, observe, outcome)
    rtype, resources = _selected(requirement, http)
    profile = FRC + requirement.params["profile"]
    invalid = []
    for resource in resources:
        # judged against this profile alone: the profiles a resource claims are FHIR-REST-16's business
        meta = resource.get("meta")
        alone = {**resource, "meta": {k: v for k, v in meta.items() if k != "profile"}} if isinstance(meta, dict) \
            else resource
        errors = issues(validator.validate(alone, profiles=[profile]))
        if errors:
            invalid.append(f"{rtype}/{resource.get('id')}: {describe(errors[0])}")
    outcome.measure(profile=profile, validated=len(resources), invalid=len(invalid), examples=invalid[:20])
    if invalid:
        failed(f"{len(invalid)} of {len(resources)} {rtype} do not conform to {requirement.params['profile']}, "
               f"e.g. {invalid[0]}")
    passed(f"{len(resources)} {rtype} conform to {requirement.params['profile']}")


def _populated(resource: dict, path: str, url: str | None) -> bool:
    values = values_at(resource, path.split(".", 1)[1]) if "." in path else [resource]
    if url:
        return any(isinstance(v, dict) and v.get("url") == url for v in values)
    return bool(values)


@check("frcore.must-support")
def test_must_support_populated(requirement, http, observe, outcome):
    validator = _validator(requirement, observe, outcome)
    rtype, resources = _selected(requirement, http)
    profile = FRC + requirement.params["profile"]
    snapshot = validator.snapshot_of(profile)
    if not snapshot:
        undetermined(f"{profile} is not defined by the loaded FR Core package")
    elements = must_support(snapshot)
    if not elements:
        not_applicable(f"{requirement.params['profile']} marks no element must-support")
    absent = [f"{p}{' (' + u.rsplit('/', 1)[-1] + ')' if u else ''}" for p, u in elements
              if not any(_populated(r, p, u) for r in resources)]
    outcome.measure(profile=profile, resources=len(resources), must_support=len(elements), never_populated=absent)
    if absent:
        failed(f"{len(absent)} must-support elements of {requirement.params['profile']} are never "
               f"populated across {len(resources)} {rtype}: {', '.join(absent[:8])}")
    passed(f"the {len(elements)} must-support elements of {requirement.params['profile']} are each populated "
           f"in at least one of {len(resources)} {rtype}")
