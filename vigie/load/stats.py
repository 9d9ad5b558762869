"""Load statistics: full response-time histograms per request name, and what a whole run observed.

Every percentile is computed here from vigie's own histogram of every response time (vigie.load.histogram:
floored to 4 significant digits), never from locust's, which rounds to about two digits, nor from its CSV or
rolling caches.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ObservationError
from . import histogram as buckets

AGGREGATED = "Aggregated"


def percentile(histogram: dict[int, int], p: float) -> float:
    """Nearest-rank percentile: the smallest recorded value with p % of the samples at or below it."""
    total = sum(histogram.values())
    if total == 0:
        return math.nan
    rank = max(1, math.ceil(p / 100 * total))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


def finite(x: float | None):
    return None if x is None or math.isnan(x) else x


# Evidence keeps times to the microsecond: a float's 17 digits say nothing more, and long runs of digits
# are what secret and identifier redaction looks for. The extremes are rounded outwards, so that every
# percentile written stays between them.
def _microseconds(ms: float | None, rounding) -> float | None:
    return None if ms is None else rounding(ms * 1000) / 1000


def _short(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


@dataclass
class RequestStats:
    name: str
    count: int = 0
    failures: int = 0
    histogram: dict[float, int] = field(default_factory=dict)  # bucket (ms, vigie.load.histogram) -> count
    total_response_time: float = 0.0  # ms, exact
    min_response_time: float | None = None
    max_response_time: float = 0.0
    start_time: float | None = None
    end_time: float | None = None
    duration_s: float = 0.0  # of the whole run: throughput is per second of run, as k6 counts it

    @property
    def error_rate(self) -> float:
        return self.failures / self.count if self.count else 0.0

    @property
    def rps(self) -> float:
        return self.count / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def timed(self) -> int:
        return sum(self.histogram.values())

    @property
    def mean(self) -> float:
        return self.total_response_time / self.timed if self.timed else math.nan

    @property
    def max(self) -> float:
        return self.max_response_time if self.timed else math.nan

    def percentile(self, p: float) -> float:
        """The lower edge of the bucket holding the p-th percentile: never above the true one."""
        return percentile(self.histogram, p)

    def percentile_bound(self, p: float) -> float:
        """What the true p-th percentile cannot reach: its bucket's upper edge (excluded)."""
        return buckets.edge(self.percentile(p))

    def to_json(self) -> dict:
        return {"name": self.name, "count": self.count, "failures": self.failures,
                "error_rate": _short(self.error_rate), "rps": _short(self.rps), "mean": _short(finite(self.mean)),
                "p50": finite(self.percentile(50)), "p90": finite(self.percentile(90)),
                "p95": finite(self.percentile(95)), "p99": finite(self.percentile(99)),
                "min": _microseconds(self.min_response_time, math.floor), "max": _microseconds(finite(self.max), math.ceil),
                "total_response_time": _short(self.total_response_time),
                "start_time": _short(self.start_time), "end_time": _short(self.end_time),
                "response_times": {buckets.label(k): v for k, v in sorted(self.histogram.items())}}

    @classmethod
    def from_json(cls, data: dict, duration_s: float) -> RequestStats:
        return cls(name=data["name"], count=data["count"], failures=data["failures"],
                   histogram={float(k): v for k, v in data["response_times"].items()},
                   total_response_time=data["total_response_time"],
                   min_response_time=data.get("min"), max_response_time=data.get("max") or 0.0,
                   start_time=data.get("start_time"), end_time=data.get("end_time"), duration_s=duration_s)


def merge(name: str, parts: list[RequestStats], duration_s: float) -> RequestStats:
    """Several request names (or several workers' counts) as one: histograms and counts add up."""
    hist: dict = {}
    for p in parts:
        buckets.merge_into(hist, p.histogram)
    mins = [p.min_response_time for p in parts if p.min_response_time is not None]
    starts = [p.start_time for p in parts if p.start_time is not None]
    ends = [p.end_time for p in parts if p.end_time is not None]
    return RequestStats(name, count=sum(p.count for p in parts), failures=sum(p.failures for p in parts),
                        histogram=dict(hist), total_response_time=sum(p.total_response_time for p in parts),
                        min_response_time=min(mins) if mins else None,
                        max_response_time=max((p.max_response_time for p in parts), default=0.0),
                        start_time=min(starts) if starts else None, end_time=max(ends) if ends else None,
                        duration_s=duration_s)


@dataclass
class LoadResult:
    scenarios: dict[str, RequestStats]  # per request name
    aggregated: RequestStats
    duration_s: float
    users: int
    spawn_rate: float = 0.0
    host: str = ""
    locustfile: str = ""
    timeseries: list[dict] = field(default_factory=list)  # per second: t, rps, failures_per_s, p50, p95, users
    # per request name, per second (unix time): requests, failures and response_times (chart buckets)
    per_second: dict[str, dict[int, dict]] = field(default_factory=dict)
    users_per_second: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)  # "<name>: <error>" -> occurrences
    http_responses: int = 0  # requests that got an HTTP response, whatever its status
    status_codes: dict[int, int] = field(default_factory=dict)  # HTTP status -> count (0: no response)
    workers: int = 0  # 0: one local process; else the number of locust workers whose counts the master merged
    aborted: str | None = None  # why the run stopped before its time, if it did
    plan: dict = field(default_factory=dict)  # the load plan the run followed (see vigie.load.plan)

    def stats(self, scenario: str | list | None = None) -> RequestStats:
        """One request name, several merged (a list), or every request (None / "Aggregated")."""
        if not scenario or scenario == AGGREGATED:
            return self.aggregated
        names = [scenario] if isinstance(scenario, str) else list(scenario)
        missing = [n for n in names if n not in self.scenarios]
        if missing:
            seen = ", ".join(sorted(self.scenarios)) or "none"
            raise ObservationError(f"the load run made no '{missing[0]}' request (requests made: {seen})")
        if len(names) == 1:
            return self.scenarios[names[0]]
        return merge(" + ".join(names), [self.scenarios[n] for n in names], self.duration_s)

    def names(self, scenario: str | list | None = None) -> list[str]:
        """The request names a scenario covers (every name for None / "Aggregated")."""
        if not scenario or scenario == AGGREGATED:
            return sorted(self.scenarios)
        return [scenario] if isinstance(scenario, str) else list(scenario)

    def timeseries_of(self, scenario: str | list | None = None) -> list[dict]:
        """The per-second points of the requests a scenario names (the charts of a target judged on them)."""
        return series(self.per_second, self.users_per_second, self.names(scenario))

    def errors_of(self, scenario: str | list | None = None) -> dict[str, int]:
        prefixes = tuple(f"{n}: " for n in self.names(scenario))
        return {k: v for k, v in self.errors.items() if k.startswith(prefixes)}

    def to_json(self) -> dict:
        return {"locustfile": self.locustfile, "host": self.host, "users": self.users,
                "spawn_rate": self.spawn_rate, "duration_s": self.duration_s, "workers": self.workers,
                "aborted": self.aborted, "plan": self.plan, "http_responses": self.http_responses,
                "status_codes": {str(k): v for k, v in sorted(self.status_codes.items())},
                "scenarios": {n: s.to_json() for n, s in sorted(self.scenarios.items())},
                "aggregated": self.aggregated.to_json(), "errors": self.errors, "timeseries": self.timeseries,
                "per_second": per_second_json(self.per_second),
                "users_per_second": {str(t): n for t, n in sorted(self.users_per_second.items())}}

    @classmethod
    def from_json(cls, data: dict) -> LoadResult:
        d = data["duration_s"]
        return cls(scenarios={n: RequestStats.from_json(s, d) for n, s in data["scenarios"].items()},
                   aggregated=RequestStats.from_json(data["aggregated"], d), duration_s=d,
                   users=data["users"], spawn_rate=data.get("spawn_rate", 0.0), host=data.get("host", ""),
                   locustfile=data.get("locustfile", ""), timeseries=data.get("timeseries", []),
                   errors=data.get("errors", {}), http_responses=data.get("http_responses", 0),
                   status_codes={int(k): v for k, v in data.get("status_codes", {}).items()},
                   workers=data.get("workers", 0), aborted=data.get("aborted"), plan=data.get("plan", {}),
                   per_second=per_second_from_json(data.get("per_second", {})),
                   users_per_second={int(t): n for t, n in data.get("users_per_second", {}).items()})


def second(requests: int = 0, failures: int = 0, response_times: dict | None = None) -> dict:
    """One second of one request name."""
    return {"requests": requests, "failures": failures, "response_times": dict(response_times or {})}


def add_second(into: dict, point: dict) -> None:
    into["requests"] += point["requests"]
    into["failures"] += point["failures"]
    buckets.merge_into(into["response_times"], point["response_times"])


def per_second_json(per_second: dict) -> dict:
    return {name: {str(t): {**p, "response_times": {buckets.label(k): c for k, c in sorted(p["response_times"].items())}}
                   for t, p in sorted(points.items())} for name, points in sorted(per_second.items())}


def per_second_from_json(data: dict) -> dict:
    return {name: {int(t): second(p["requests"], p["failures"],
                                  {float(k): c for k, c in p["response_times"].items()})
                   for t, p in points.items()} for name, points in data.items()}


def series(per_second: dict, users: dict, names: list[str]) -> list[dict]:
    """Per second, over the named requests: t, rps (requests in that second), failures_per_s, p50, p95
    (from chart buckets, floored like every vigie bucket) and the users running."""
    seconds: dict[int, dict] = {}
    for name in names:
        for t, point in per_second.get(name, {}).items():
            add_second(seconds.setdefault(t, second()), point)
    return [{"t": t, "rps": s["requests"], "failures_per_s": s["failures"], "users": users.get(t),
             "p50": finite(percentile(s["response_times"], 50)), "p95": finite(percentile(s["response_times"], 95))}
            for t, s in sorted(seconds.items())]
