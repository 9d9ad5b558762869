"""The load observation: one locust run per target and campaign, its statistics kept as evidence.

The run follows the load plan of the profile whose requirement asked first (vigie.load.plan): the check
hands the plan over with `observe_load_for`, then every load requirement of the campaign is held to its
target on the same run. A second profile with a different plan on the same target is an error for its
requirements (run it in its own campaign), never a silent reuse of another run.
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import ObservationError
from .load.plan import LoadPlan, make_plan, plan_for
from .load.process import STOP_TIMEOUT_S, require_traffic, run_load, run_worker
from .load.stats import AGGREGATED, LoadResult, RequestStats, percentile
from .load.targets import check_params, evaluate_target, measure
from .observations import observation
from .writes import may_write

__all__ = ["AGGREGATED", "STOP_TIMEOUT_S", "LoadPlan", "LoadResult", "RequestStats", "check_params",
           "evaluate_target", "make_plan", "measure", "observe_load", "observe_load_for", "percentile",
           "plan_for", "require_traffic", "run_load", "run_worker"]

_pending: dict[str, LoadPlan] = {}  # target id -> the plan the next load observation of it follows


def target_env(target) -> dict:
    """What the locustfile needs of the target, passed in its environment (never on a command line)."""
    return {"VIGIE_LOAD_CA_FILE": target.ca_file or "", "VIGIE_LOAD_TOKEN": target.token or "",
            "VIGIE_LOAD_URL": target.url}


def evidence_dir(store, target) -> Path:
    """Where the raw statistics and locust's logs of one target go: evidence/load/<target>/."""
    from .evidence import safe_name
    return store.path_for(f"load/{safe_name(target.id)}/stats.json").parent


@observation("load", kinds=("fhir", "warehouse"))
def observe_load(target, store) -> LoadResult:
    plan = _pending.get(target.id) or make_plan(None)
    may_write()   # a scenario may create resources (the practice mix's encounter-create)
    out_dir = evidence_dir(store, target)
    env = {**target_env(target), "VIGIE_LOAD_MIX": json.dumps(plan.mix)}
    try:
        return run_load(plan.locustfile(), target.public()["url"], plan.users, plan.spawn_rate, plan.duration_s, env=env,
                        out_dir=out_dir, workers=plan.workers, master=plan.master,
                        expect_workers=plan.expect_workers, abort=plan.abort, targets=plan.targets,
                        plan=plan.to_json())
    finally:
        for path in [*out_dir.glob("*.log"), *out_dir.glob("*.json")]:
            _scrub(path, store.redact)


def _scrub(path: Path, redact) -> None:
    """The driver wrote these itself: scrub them like everything the store writes. JSON as data, so that what
    is masked is its strings, never its numbers (a timestamp's digits are not an identifier)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".json":
        try:
            path.write_text(json.dumps(redact.data(json.loads(text)), indent=1), encoding="utf-8")
            return
        except ValueError:
            pass  # not JSON after all (a driver killed while writing): scrubbed as text
    path.write_text(redact.text(text), encoding="utf-8")


def observe_load_for(observe, target, plan: LoadPlan) -> LoadResult:
    """The target's load run, following plan; an error if the campaign already ran it with another plan."""
    _pending.setdefault(target.id, plan)
    try:
        result = observe("load")
    finally:
        _pending.pop(target.id, None)
    ran = result.plan.get("key")
    if ran is not None and ran != plan.key():
        raise ObservationError(f"the load run of {target.id} followed the plan of profile "
                               f"'{result.plan.get('profile')}', not this profile's: run it in its own campaign")
    return result
