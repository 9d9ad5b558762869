"""Response-time buckets: every response time is kept, rounded down to a fixed number of significant digits.

locust's own histogram rounds to the nearest 10 ms above 100 ms and 100 ms above 1 s, so a percentile read
from it may lie above every response actually seen (a p95 of 1300 ms on a run whose slowest answer took
1260.7 ms). vigie records each time itself, in microseconds floored to DIGITS significant digits (exact to the
microsecond below 10 ms, within 0.1 % above): a percentile read from these buckets is never above the true
one, hence never above the maximum, and the bucket's upper edge bounds it from above. The number of buckets
stays bounded whatever the run's length (at most about 9,000 per decade of response times).
"""
from __future__ import annotations

import math

DIGITS = 4  # statistics: what targets are judged on
CHART_DIGITS = 2  # per-second points of the charts: a 1-hour run keeps a few dozen buckets per second


def _scale(us: int, digits: int) -> int:
    return 10 ** max(0, len(str(us)) - digits)


def bucket(ms: float, digits: int = DIGITS) -> float:
    """The bucket (its lower edge, in ms) of a response time in ms."""
    us = max(0, int(ms * 1000))  # int() floors a positive time: the edge is never above the time
    scale = _scale(us, digits)
    return us // scale * scale / 1000


def edge(key_ms: float, digits: int = DIGITS) -> float:
    """The upper edge (ms, excluded) of the bucket whose lower edge is key_ms."""
    if math.isinf(key_ms):
        return key_ms
    us = round(key_ms * 1000)
    return (us + _scale(us, digits)) / 1000


def label(key_ms: float) -> str:
    """A bucket as a JSON object key (a string): its lower edge in ms, as Python writes the float."""
    return repr(float(key_ms))


def merge_into(into: dict, histogram: dict) -> dict:
    for key, count in histogram.items():
        into[key] = into.get(key, 0) + count
    return into
