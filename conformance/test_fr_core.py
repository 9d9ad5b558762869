"""FR Core (hl7.fhir.fr.core): the Patients, Practitioners, Organizations and Encounters served conform to
their FR Core profile (fr-core-patient-ins for identities whose status is VALI), and the must-support
elements of those profiles are populated at least once across the data.

A requirement does not concern a server whose CapabilityStatement declares no search on its type; a type
declared searchable that serves nothing leaves it undetermined (nothing was seen to conform). A resource
passes only when the validator judged all of it: a required binding to a code system that is not loaded,
an extension whose definition is missing or an invariant that could not be evaluated leave the requirement
undetermined, naming the package to add."""
from vigie.checks import check, failed, not_applicable, passed, undetermined
from vigie.fhirrest import declared_search, none_served, served_data, values_at
from vigie.fhirvalidation import Judgement, identity_status, must_support

FRC = "https://hl7.fr/ig/fhir/core/StructureDefinition/"


def _selected(requirement, http, capability):
    rtype = requirement.params["resource"]
    declared_search(capability, rtype)
    limit = int(requirement.params.get("max_resources", 300))
    served = served_data(http, rtype, limit)
    if not served:
        none_served(rtype)
    status = requirement.params.get("identity_status")
    resources = [r for r in served if identity_status(r) == status] if status else served
    if not resources:
        if len(served) >= limit:
            undetermined(f"none of the first {len(served)} {rtype} served has identity status {status}; the "
                         f"others were not read")
        not_applicable(f"none of the {len(served)} {rtype} served has identity status {status}")
    return rtype, resources


def _validator(requirement, observe, outcome):
    version = str(requirement.params.get("version", "2.2.0"))
    packages = observe("fhir-packages")
    validator = packages.validator(f"hl7.fhir.fr.core#{version}")
    outcome.measure(fr_core=version, packages=packages.loaded)
    return validator


@check("frcore.profile")
def test_fr_core_profile(requirement, http, capability, observe, outcome):
    validator = _validator(requirement, observe, outcome)
    rtype, resources = _selected(requirement, http, capability)
    profile = FRC + requirement.params["profile"]
    judgement = Judgement()
    for resource in resources:
        # judged against this profile alone: the profiles a resource claims are FHIR-REST-16's business
        meta = resource.get("meta")
        alone = {**resource, "meta": {k: v for k, v in meta.items() if k != "profile"}} if isinstance(meta, dict) \
            else resource
        judgement.add(f"{rtype}/{resource.get('id')}", validator.validate(alone, profiles=[profile]))
    outcome.measure(profile=profile, **judgement.measurements())
    judgement.conclude(f"{rtype} do not conform to {requirement.params['profile']}")
    passed(f"{len(resources)} {rtype} conform to {requirement.params['profile']}")


def _populated(resource: dict, path: str, url: str | None) -> bool:
    values = values_at(resource, path.split(".", 1)[1]) if "." in path else [resource]
    if url:
        return any(isinstance(v, dict) and v.get("url") == url for v in values)
    return bool(values)


@check("frcore.must-support")
def test_must_support_populated(requirement, http, capability, observe, outcome):
    validator = _validator(requirement, observe, outcome)
    rtype, resources = _selected(requirement, http, capability)
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
