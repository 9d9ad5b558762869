"""Load targets: one check holds a statistic of the target's load run to each requirement's threshold.

The run follows the load plan of the requirement's profile (its `load` param); one run per target serves
every load requirement of the campaign.
"""
from vigie.checks import check, failed, passed
from vigie.loadrun import evaluate_target, observe_load_for, plan_for


@check("load.target")
def test_load_target(requirement, target, observe, outcome):
    result = observe_load_for(observe, target, plan_for(requirement))
    params = requirement.params
    ok, observed, message = evaluate_target(result, params)
    stats = result.stats(params.get("scenario")).to_json()
    outcome.measure(observed=observed, threshold=params["value"], op=params["op"], metric=params["metric"],
                    aggregation=params.get("aggregation"), scenario=stats["name"], count=stats["count"],
                    failures=stats["failures"], error_rate=stats["error_rate"], rps=stats["rps"],
                    p50_ms=stats["p50"], p95_ms=stats["p95"], p99_ms=stats["p99"], max_ms=stats["max"],
                    mean_ms=stats["mean"], duration_s=result.duration_s, users=result.users,
                    workers=result.workers, aborted=result.aborted)
    if not ok:
        failed(message)
    passed(message)
