"""Load targets: one check holds a statistic of the target's load run to each requirement's threshold.

The run follows the load plan of the requirement's profile (its `load` param); one run per target serves
every load requirement of the campaign. Each target is judged on the requests it names (its `scenario`),
and its own evidence (statistics and charts) shows those requests only.
"""
from vigie.checks import check, failed, passed, undetermined
from vigie.errors import ObservationError
from vigie.loadrun import evaluate_target, observe_load_for, plan_for


def _named(result, params) -> dict:
    """The load evidence of the requests a target names, in the shape the report draws charts from, with
    the threshold they were judged against (drawn on the charts)."""
    scenario = params.get("scenario")
    return {"host": result.host, "users": result.users, "duration_s": result.duration_s,
            "aborted": result.aborted, "scenario": result.names(scenario),
            "threshold": {k: params.get(k) for k in ("metric", "aggregation", "op", "value")},
            "aggregated": result.stats(scenario).to_json(), "timeseries": result.timeseries_of(scenario),
            "errors": result.errors_of(scenario)}


@check("load.target")
def test_load_target(requirement, target, observe, outcome):
    result = observe_load_for(observe, target, plan_for(requirement))
    params = requirement.params
    stats = result.stats(params.get("scenario"))  # an error if the run made none of a named request
    outcome.evidence(f"load/{requirement.id}@{target.id}.json", _named(result, params))
    summary = stats.to_json()
    outcome.measure(threshold=params["value"], op=params["op"], metric=params["metric"],
                    aggregation=params.get("aggregation"), scenario=summary["name"], count=summary["count"],
                    failures=summary["failures"], error_rate=summary["error_rate"], rps=summary["rps"],
                    p50_ms=summary["p50"], p95_ms=summary["p95"], p99_ms=summary["p99"], max_ms=summary["max"],
                    mean_ms=summary["mean"], duration_s=result.duration_s, users=result.users,
                    workers=result.workers, aborted=result.aborted)
    try:
        ok, observed, message = evaluate_target(result, params)
    except ObservationError as exc:
        undetermined(str(exc))
    outcome.measure(observed=observed)
    if not ok:
        failed(message)
    passed(message)
