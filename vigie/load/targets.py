"""Load targets, with the semantics of k6 thresholds and Gatling assertions.

A target is a metric (latency, error_rate, throughput), an aggregation (p50, p95, p99, any pNN, max,
mean, min for latency; rate for the others), an operator and a value, over every request or over one or
several request names (`scenario`). A latency target passes only on enough responses (min_samples) and
when the recorded percentile tells on which side of the target the true one lies; the run goes on past
its duration (within a bound) until every target of its plan can be judged. With `abort_on_fail`, the load run stops as soon as a periodic
evaluation of the counts so far finds the target lost, after `abort_delay_s` seconds (k6's abortOnFail and
delayAbortEval).
"""
from __future__ import annotations

import math
import operator
import re

from ..errors import ObservationError, VigieError
from . import histogram as buckets
from .stats import AGGREGATED, LoadResult, RequestStats

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
METRICS = {"latency": ("p50", "p90", "p95", "p99", "max", "mean", "min"),
           "error_rate": ("rate",), "throughput": ("rate",)}
TARGET_KEYS = {"metric", "aggregation", "op", "value", "scenario", "abort_on_fail", "abort_delay_s", "load"}
_PCT = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")
MIN_SAMPLES = 20  # see min_samples


def check_params(params: dict) -> tuple[str, str, str, float, str | list]:
    """Validates a load target's params (a profile error is a configuration error, not a failed check)."""
    unknown = sorted(set(params) - TARGET_KEYS)
    if unknown:
        raise VigieError(f"load target: unknown param '{unknown[0]}' (allowed: {', '.join(sorted(TARGET_KEYS))})")
    metric = params.get("metric")
    if metric not in METRICS:
        raise VigieError(f"load target: metric must be one of {', '.join(METRICS)}, not {metric!r}")
    aggregation = params.get("aggregation") or ("p95" if metric == "latency" else "rate")
    if aggregation not in METRICS[metric] and not (metric == "latency" and _PCT.match(aggregation)):
        raise VigieError(f"load target: aggregation {aggregation!r} does not apply to {metric}")
    op = params.get("op")
    if op not in OPS:
        raise VigieError(f"load target: op must be one of {' '.join(OPS)}, not {op!r}")
    value = params.get("value")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise VigieError(f"load target: value must be a number, not {value!r}")
    scenario = params.get("scenario") or AGGREGATED
    if not (isinstance(scenario, str) or (isinstance(scenario, list) and scenario
                                          and all(isinstance(s, str) for s in scenario))):
        raise VigieError(f"load target: scenario must be a request name or a list of them, not {scenario!r}")
    if not isinstance(params.get("abort_on_fail", False), bool):
        raise VigieError("load target: abort_on_fail must be true or false")
    delay = params.get("abort_delay_s", 0)
    if not isinstance(delay, (int, float)) or isinstance(delay, bool) or delay < 0:
        raise VigieError(f"load target: abort_delay_s must be a number of seconds, not {delay!r}")
    return metric, aggregation, op, float(value), scenario


def measure(stats: RequestStats, metric: str, aggregation: str) -> float:
    if metric == "error_rate":
        return stats.error_rate
    if metric == "throughput":
        return stats.rps
    if aggregation == "mean":
        return stats.mean
    if aggregation == "max":
        return stats.max
    if aggregation == "min":
        return float(stats.min_response_time) if stats.min_response_time is not None else math.nan
    return stats.percentile(_pct(aggregation))


def _pct(aggregation: str) -> float | None:
    found = _PCT.match(aggregation)
    return float(found.group(1)) if found else None


def min_samples(aggregation: str) -> int:
    """Response times a latency target needs before it may pass. A p-th percentile of fewer than
    100 / (100 - p) responses is the slowest response itself (p95 of 19 is the 19th of 19): it says nothing
    about the other (100 - p) %; so at least that many, and never fewer than MIN_SAMPLES, the count at which
    a p95 (the percentile of every latency target of the catalogue) first has one response above it."""
    p = _pct(aggregation)
    return max(MIN_SAMPLES, math.ceil(round(100 / (100 - p), 6)) if p is not None else MIN_SAMPLES)


def _show(metric: str, x: float) -> str:
    if metric == "latency":  # a bucket edge as it is (4 significant digits), never rounded up
        return f"{x:.0f} ms" if x >= 100_000 else f"{x:.6g} ms"
    if metric == "error_rate":
        return f"{x * 100:.3g} %"
    return f"{x:.3g} requests/s"


def _holds(op: str, value: float, stats: RequestStats, aggregation: str, observed: float) -> bool | None:
    """Whether the target holds for the true statistic: True, False, or None when the bucket that holds a
    percentile straddles the target value (vigie.load.histogram: the true percentile lies in
    [observed, its bucket's upper edge), and never above the maximum)."""
    if _pct(aggregation) is None:
        return OPS[op](observed, value)  # mean, max, min, rates: exact
    upper = stats.percentile_bound(_pct(aggregation))
    top = stats.max
    if op in ("<", "<="):
        if upper <= value or OPS[op](top, value):
            return True
        return None if OPS[op](observed, value) else False
    if OPS[op](observed, value):
        return True
    return False if upper <= value or not OPS[op](top, value) else None


def _padded(stats: RequestStats, op: str, need: int) -> RequestStats:
    """The named requests with the responses missing up to `need` added at the best value for the target
    (instant for an upper limit, endless for a lower one): if the target is lost even then, it is lost."""
    best, missing = (0.0 if op in ("<", "<=") else math.inf), need - stats.timed
    low = stats.min_response_time
    return RequestStats(stats.name, count=need, histogram=buckets.merge_into(dict(stats.histogram), {best: missing}),
                        total_response_time=stats.total_response_time + best * missing,
                        min_response_time=best if low is None else min(low, best),
                        max_response_time=max(stats.max_response_time, best))


def evaluate_target(result: LoadResult, params: dict) -> tuple[bool, float, str]:
    """Holds one statistic of a load run to a target: (ok, observed, message). Raises ObservationError when
    the run cannot tell: requests without a recorded time, too few responses for a latency target that
    would pass, or a percentile within its bucket of the target value. A run stopped early (abort_on_fail)
    is judged on what it made: it stops only once every target of its plan has the responses it needs."""
    metric, aggregation, op, value, scenario = check_params(params)
    stats = result.stats(scenario)
    if stats.count == 0:
        raise ObservationError(f"the load run made no '{stats.name}' request")
    who = "all requests" if stats.name == AGGREGATED else stats.name
    if metric == "latency" and stats.timed != stats.count:
        raise ObservationError(f"the response times of {stats.count - stats.timed} of the {stats.count} "
                               f"'{who}' requests were not recorded")
    observed = measure(stats, metric, aggregation)
    if math.isnan(observed):
        raise ObservationError(f"no response time was recorded for '{stats.name}'")
    label = {"latency": f"{aggregation} latency", "error_rate": "error rate"}.get(metric, metric)
    spread = f", {result.workers} workers" if result.workers else ""
    message = (f"{label} of {who}: {_show(metric, observed)}, target {op} {_show(metric, value)} "
               f"({stats.count} requests, {stats.failures} failed, "
               f"{result.duration_s:.1f} s, {result.users} users{spread})")
    if result.aborted:
        message += f"; {result.aborted}"
    need = min_samples(aggregation) if metric == "latency" else 0
    if stats.timed < need:
        padded = _padded(stats, op, need)
        if _holds(op, value, padded, aggregation, measure(padded, metric, aggregation)) is False:
            return False, observed, (f"{message}; lost on {stats.timed} responses, whatever the "
                                     f"{need - stats.timed} more a {aggregation} needs would have been")
        raise ObservationError(f"only {stats.timed} responses of '{who}', {need} needed to judge a "
                               f"{aggregation} (lengthen the run: --load-duration): {message}")
    holds = _holds(op, value, stats, aggregation, observed)
    if holds is None:
        raise ObservationError(f"{message}, recorded to 4 significant digits: the true {aggregation} may lie "
                               f"on either side of the target (below {_show(metric, stats.percentile_bound(_pct(aggregation)))})")
    return holds, observed, message


def undecided(result: LoadResult, targets) -> list[str]:
    """The requirement ids of targets the counts so far cannot judge (too few responses of their requests,
    none yet): the run goes on for them, within a bound."""
    waiting = []
    for rid, params in targets:
        try:
            evaluate_target(result, params)
        except ObservationError:
            waiting.append(rid)
        except VigieError:
            continue  # a profile error: the check reports it, more load would not help
    return waiting


def lost(result: LoadResult, params: dict, elapsed_s: float) -> str | None:
    """For abort_on_fail: why the target is already lost on the counts so far, or None while it holds
    (or while it cannot be judged yet: no request of its scenario, or within its abort delay)."""
    if not params.get("abort_on_fail") or elapsed_s < params.get("abort_delay_s", 0):
        return None
    try:
        ok, _, message = evaluate_target(result, params)
    except ObservationError:
        return None
    return None if ok else message
