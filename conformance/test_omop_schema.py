"""OMOP CDM 5.4 structure and integrity: one check, the kind of rule (params.rule) measured per table and
field."""
from vigie.checks import check
from vigie.errors import ObservationError
from vigie.warehouse.schema import RULES


@check("omop.structure")
def test_structure(requirement, warehouse, outcome):
    name = requirement.params.get("rule")
    if name not in RULES:
        raise ObservationError(f"unknown OMOP structure rule {name!r} (known: {', '.join(RULES)})")
    rule, what = RULES[name]
    rule(warehouse.measures, requirement.params).conclude(outcome, what)
