"""A MeasureReport against its Measure, when the Measure is at hand (contained, or among the loaded packages and
resources): R4 measurereport.html (a report's groups and populations are those of the measure: "the populations
that make up the population group, one for each type of population appropriate for the measure") and
measure.html (the populations each scoring method uses; a proportion's score is a fraction of the denominator;
a cohort only selects a population, so it has no score)."""
from __future__ import annotations

from .canonical import as_list, at_hand

# R4 measure.html, population criteria: what each scoring method (measure-scoring) is built from
POPULATIONS = {
    "proportion": {"initial-population", "numerator", "numerator-exclusion", "denominator", "denominator-exclusion",
                   "denominator-exception"},
    "ratio": {"initial-population", "numerator", "numerator-exclusion", "denominator", "denominator-exclusion"},
    "continuous-variable": {"initial-population", "measure-population", "measure-population-exclusion",
                            "measure-observation"},
    "cohort": {"initial-population"},
}


def check_report(run, report, path):
    url = report.get("measure")
    if not isinstance(url, str):
        return
    measure = at_hand(run, report, url, "Measure")
    if measure is None:
        run.cannot_judge(f"{path}.measure", url.split("|")[0], f"The measure {url} is not loaded: the report is not "
                         f"checked against it")
        return
    scoring = _code(measure.get("scoring"))
    defined = [g for g in as_list(measure.get("group")) if isinstance(g, dict)]
    for i, group in enumerate(as_list(report.get("group"))):
        if not isinstance(group, dict):
            continue
        where = f"{path}.group[{i}]"
        definition = _group(group, defined)
        if definition is None:
            code = _code(group.get("code"))
            run.add("error", "business-rule", where, f"The group {code or i} of the report is not a group of the "
                    f"measure {url}")
            continue
        _populations(run, group, definition, scoring, where)
        _score(run, group, scoring, where)


def _group(group, defined):
    """The measure's group that a report's group reports on: the one with its code, or the only group of a
    measure whose groups have no code."""
    code = _code(group.get("code"))
    if code is not None:
        return next((g for g in defined if _code(g.get("code")) == code), None)
    uncoded = [g for g in defined if _code(g.get("code")) is None]
    return uncoded[0] if len(defined) == 1 and uncoded else None


def _populations(run, group, definition, scoring, where):
    wanted = [_code(p.get("code")) for p in as_list(definition.get("population")) if isinstance(p, dict)]
    wanted = [c for c in wanted if c is not None]
    given: dict[str, int] = {}
    for j, population in enumerate(as_list(group.get("population"))):
        code = _code(population.get("code")) if isinstance(population, dict) else None
        if code is None:
            continue
        here = f"{where}.population[{j}]"
        if code in given:
            run.add("error", "business-rule", here, f"The population {code} is reported twice in the group")
        given.setdefault(code, j)
        if wanted and code not in wanted:
            run.add("error", "business-rule", here, f"The population {code} is not a population of the measure's "
                    f"group")
        elif not wanted and scoring in POPULATIONS and code not in POPULATIONS[scoring]:
            run.add("error", "business-rule", here, f"The population {code} has no place in a {scoring} measure")
    for code in wanted:
        if code not in given:
            run.add("error", "business-rule", where, f"The population {code} of the measure's group is missing "
                    f"from the report")


def _score(run, group, scoring, where):
    score = group.get("measureScore")
    if not isinstance(score, dict):
        return
    if scoring == "cohort":
        run.add("error", "business-rule", f"{where}.measureScore",
                "A cohort measure has no score: its report gives the population only")
        return
    value = score.get("value")
    if scoring == "proportion" and isinstance(value, (int, float)) and not isinstance(value, bool) and \
            not 0 <= value <= 1:
        run.add("error", "business-rule", f"{where}.measureScore",
                f"The score {value} of a proportion measure must be between 0 and 1")


def _code(concept) -> str | None:
    """The code of a CodeableConcept's first coding (measure scoring, group and population codes)."""
    if not isinstance(concept, dict):
        return None
    for coding in as_list(concept.get("coding")):
        if isinstance(coding, dict) and isinstance(coding.get("code"), str):
            return coding["code"]
    return None
