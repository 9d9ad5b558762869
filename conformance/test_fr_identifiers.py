"""French identifiers carried by FHIR resources: INS/NIR keys, RPPS, FINESS, SIREN/SIRET, and the system each
identifier type must use."""
from vigie import identifiers as ids
from vigie.checks import check, failed, not_applicable, passed, undetermined
from vigie.errors import ObservationError
from vigie.fhirrest import created_by_vigie, declared_search, none_served, objects_at, search_all, text_at

REGISTERS = {  # params.register → (resource type, identifier systems, validity rule)
    "NIR": ("Patient", ids.NIR_SYSTEMS, ids.nir_is_valid),
    "RPPS": ("Practitioner", {ids.RPPS_SYSTEM}, ids.rpps_is_valid),
    "FINESS": ("Organization", {ids.FINESS_SYSTEM}, ids.finess_is_valid),
    "SIREN/SIRET": ("Organization", {ids.SIRENE_SYSTEM}, ids.sirene_is_valid),
}


def _served(http, capability, rtype: str, limit: int) -> tuple[list[dict], bool]:
    """The rtype resources served (at most `limit`), and whether that is all of them. Not applicable when
    rtype is not declared searchable; undetermined when it is and serves nothing."""
    declared_search(capability, rtype)
    read = list(search_all(http, rtype, limit=limit))
    resources = [r for r in read if not created_by_vigie(r)]
    if not resources:
        none_served(rtype)
    return resources, len(read) < limit


def _none_carried(what: str, seen: dict, complete: bool) -> None:
    """No identifier to judge among the resources served: an observed reason only if all of them were read."""
    served = ", ".join(f"{n} {t}" for t, n in seen.items())
    if not complete:
        undetermined(f"no {what} among the first {served} served; the others were not read")
    not_applicable(f"no {what} among the {served} served")


@check("fr.identifier-key")
def test_identifier_keys(requirement, http, capability, outcome):
    """Every identifier of one register (params.register) among the resources that carry it has a valid
    shape and check key."""
    what = requirement.params.get("register")
    if what not in REGISTERS:
        raise ObservationError(f"unknown register {what!r} (known: {', '.join(REGISTERS)})")
    rtype, systems, valid = REGISTERS[what]
    limit = int(requirement.params.get("max_resources", 2000))
    checked, bad = 0, []
    resources, complete = _served(http, capability, rtype, limit)
    for resource in resources:
        for identifier in objects_at(resource, "identifier"):
            if text_at(identifier, "system") in systems:
                checked += 1
                if not valid(str(identifier.get("value", ""))):
                    bad.append(f"{rtype}/{resource.get('id')}: {identifier.get('value')}")
    outcome.measure(checked=checked, invalid=len(bad), examples=bad[:20])
    if not checked:
        _none_carried(f"{what} identifier", {rtype: len(resources)}, complete)
    if bad:
        failed(f"{len(bad)} of {checked} {what} identifiers are invalid, e.g. {bad[0]}")
    passed(f"{checked} {what} identifiers, all with a valid shape and key")


# Identifier.type code (FR Core's fr-core-cs-v2-0203 and HL7 v2-0203) → the systems FR Core allows for it
# (FACTS.md section 2: FR Core 2.2.0 identifier slices)
TYPE_SYSTEMS = {
    "INS-NIR": {ids.INS_NIR_SYSTEM}, "INS-NIA": {ids.INS_NIA_SYSTEM},
    "INS-NIR-TEST": {ids.INS_NIR_TEST_SYSTEM}, "INS-NIR-DEMO": {ids.INS_NIR_DEMO_SYSTEM},
    "NH": {ids.NIR_BILLING_SYSTEM, ids.NIA_BILLING_SYSTEM},
    "RPPS": {ids.RPPS_SYSTEM}, "IDNPS": {ids.IDNATPS_SYSTEM}, "IDNST": {ids.IDNATST_SYSTEM},
    "FINEG": {ids.FINESS_SYSTEM}, "FINEJ": {ids.FINESS_SYSTEM},
    "SIREN": {ids.SIRENE_SYSTEM}, "SIRET": {ids.SIRENE_SYSTEM},
    "RPPSRG": {"https://rppsrang.esante.gouv.fr"},
}
# an INS is the official identity (or a former one): fr-core-vs-patient-identifier-use-ins
INS_USES = {"official", "old"}
TYPE_SYSTEMS_CODES = {"https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203",
                      "http://terminology.hl7.org/CodeSystem/v2-0203"}


@check("fr.identifier-systems")
def test_identifier_systems(requirement, http, capability, outcome):
    """An identifier typed INS-NIR, RPPS, FINESS... carries the system (OID or URI) of that register; an INS
    has use official or old. Every type of params.resources the server declares searchable must serve
    instances; the types it does not declare are left out."""
    limit = int(requirement.params.get("max_resources", 2000))
    wanted = requirement.params.get("resources", ["Patient", "Practitioner", "Organization"])
    types = [t for t in wanted if "search-type" in capability.interactions(t)]
    if not types:
        not_applicable(f"the CapabilityStatement declares no search on {', '.join(wanted)}")
    checked, bad, seen, complete = 0, [], {}, True
    for rtype in types:
        resources, whole = _served(http, capability, rtype, limit)
        seen[rtype], complete = len(resources), complete and whole
        for resource in resources:
            for identifier in objects_at(resource, "identifier"):
                codes = [text_at(c, "code") for c in objects_at(identifier, "type.coding")
                         if text_at(c, "system") in TYPE_SYSTEMS_CODES and text_at(c, "code") in TYPE_SYSTEMS]
                for code in codes:
                    checked += 1
                    if text_at(identifier, "system") not in TYPE_SYSTEMS[code]:
                        bad.append(f"{rtype}/{resource.get('id')}: {code} with system {identifier.get('system')}")
                    elif code.startswith("INS-") and identifier.get("use") not in INS_USES:
                        bad.append(f"{rtype}/{resource.get('id')}: {code} with use {identifier.get('use')}")
    outcome.measure(checked=checked, wrong=len(bad), examples=bad[:20])
    if not checked:
        _none_carried("identifier typed with a French register code", seen, complete)
    if bad:
        failed(f"{len(bad)} of {checked} typed identifiers carry another register's system, e.g. {bad[0]}")
    passed(f"{checked} typed identifiers, each with its register's system")
