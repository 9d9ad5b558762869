"""French health identifiers inside FHIR resources, for `vigie validate --fr-identifiers`: each Identifier whose
system is a French register's has that register's shape and check key (vigie/identifiers.py; sources and
caveats in its docstring). A key whose rule is unverified (FINESS) is a warning, not an error."""
from __future__ import annotations

from .. import identifiers as ids

# system -> (register, validity rule, severity of a failure)
REGISTERS = {
    **{system: ("INS/NIR", ids.nir_is_valid, "error") for system in ids.NIR_SYSTEMS},
    ids.RPPS_SYSTEM: ("RPPS", ids.rpps_is_valid, "error"),
    ids.FINESS_SYSTEM: ("FINESS", ids.finess_is_valid, "warning"),
    ids.SIRENE_SYSTEM: ("SIREN/SIRET", ids.sirene_is_valid, "error"),
}


def identifier_issues(resource, path: str) -> list[tuple[str, str, str]]:
    """(severity, FHIRPath, message) for each French identifier of `resource` (contained and Bundle entries
    included) whose value fails its register's rule."""
    found = []
    stack = [(resource, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, list):
            stack.extend((item, f"{where}[{i}]") for i, item in reversed(list(enumerate(node))))
            continue
        if not isinstance(node, dict):
            continue
        register = REGISTERS.get(node.get("system")) if isinstance(node.get("system"), str) else None
        value = node.get("value")
        if register is not None and isinstance(value, str):
            name, valid, severity = register
            if not valid(value):
                found.append((severity, where, (f"The {name} identifier '{value}' ({node['system']}) does not have "
                              f"the shape and check key of its register")))
        for key, child in reversed(list(node.items())):
            if isinstance(child, (dict, list)):
                inner = child.get("resourceType") if isinstance(child, dict) else None
                step = f"{where}.{key}" + (f"/*{inner}/{child.get('id', 'null')}*/" if isinstance(inner, str) else "")
                stack.append((child, step))
    return found
