"""Search parameters against the definitions they name: R4 capabilitystatement-definitions.html
(CapabilityStatement.rest.resource.searchParam.type: "It SHALL be the same as the type in the search parameter
definition"), searchparameter-definitions.html (SearchParameter.derivedFrom: "the details in the search
parameter must be consistent with the definition from which it is defined") and search.html#composite (a
composite parameter joins the values of several components). A definition that is not loaded is not judged."""
from __future__ import annotations


def check_capability_statement(run, cs, path):
    for r, rest in enumerate(_list(cs.get("rest"))):
        if not isinstance(rest, dict):
            continue
        for i, resource in enumerate(_list(rest.get("resource"))):
            if not isinstance(resource, dict):
                continue
            for j, param in enumerate(_list(resource.get("searchParam"))):
                if isinstance(param, dict):
                    where = f"{path}.rest[{r}].resource[{i}].searchParam[{j}]"
                    _same_type(run, param.get("type"), param.get("definition"), where)


def check_search_parameter(run, sp, path):
    kind = sp.get("type")
    if kind == "composite" and len(_list(sp.get("component"))) < 2:
        run.add("error", "business-rule", path, "A search parameter of type 'composite' must define two or more "
                "components, the parameters whose values it joins")
    _same_type(run, kind, sp.get("derivedFrom"), path)


def _same_type(run, kind, url, where):
    """The search parameter type `kind` stated at `where` is the type of the definition `url`."""
    if not isinstance(kind, str) or not isinstance(url, str):
        return
    definition = run.v.packages.resolve(url, "SearchParameter")
    if not isinstance(definition, dict):
        run.cannot_judge(where, url.split("|")[0], f"The search parameter {url} is not loaded: the type "
                         f"'{kind}' is not checked against it")
        return
    expected = definition.get("type")
    if isinstance(expected, str) and expected != kind:
        run.add("error", "business-rule", where, f"The search parameter type '{kind}' is not the type "
                f"'{expected}' of its definition {url}")


def _list(value):
    return value if isinstance(value, list) else []
