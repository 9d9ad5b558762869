"""Load targets, with the semantics of k6 thresholds and Gatling assertions.

A target is a metric (latency, error_rate, throughput), an aggregation (p50, p95, p99, any pNN, max,
mean, min for latency; rate for the others), an operator and a value, over every request or over one or
several request names (`scenario`). With `abort_on_fail`, the load run stops as soon as a periodic
evaluation of the counts so far finds the target lost, after `abort_delay_s` seconds (k6's abortOnFail and
delayAbortEval).
"""
from __future__ import annotations

import math
import operator
import re

from ..errors import ObservationError, VigieError
from .stats import AGGREGATED, LoadResult, RequestStats

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
METRICS = {"latency": ("p50", "p90", "p95", "p99", "max", "mean", "min"),
           "error_rate": ("rate",), "throughput": ("rate",)}
TARGET_KEYS = {"metric", "aggregation", "op", "value", "scenario", "abort_on_fail", "abort_delay_s", "load"}
_PCT = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")


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
    return stats.percentile(float(_PCT.match(aggregation).group(1)))


def _show(metric: str, x: float) -> str:
    if metric == "latency":
        return f"{x:.0f} ms"
    if metric == "error_rate":
        return f"{x * 100:.3g} %"
    return f"{x:.3g} requests/s"


def evaluate_target(result: LoadResult, params: dict) -> tuple[bool, float, str]:
    """Holds one statistic of a load run to a target: (ok, observed, message)."""
    metric, aggregation, op, value, scenario = check_params(params)
    stats = result.stats(scenario)
    if stats.count == 0:
        raise ObservationError(f"the load run made no '{stats.name}' request")
    observed = measure(stats, metric, aggregation)
    if math.isnan(observed):
        raise ObservationError(f"no response time was recorded for '{stats.name}'")
    label = {"latency": f"{aggregation} latency", "error_rate": "error rate"}.get(metric, metric)
    who = "all requests" if stats.name == AGGREGATED else stats.name
    ok = OPS[op](observed, value)
    spread = f", {result.workers} workers" if result.workers else ""
    message = (f"{label} of {who}: {_show(metric, observed)}, target {op} {_show(metric, value)} "
               f"({stats.count} requests, {stats.failures} failed, "
               f"{result.duration_s:.1f} s, {result.users} users{spread})")
    if result.aborted:
        message += f"; {result.aborted}"
    return ok, observed, message


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
