"""Inline SVG charts of load statistics, drawn here so that a report needs no script and no library to
show them (and prints them as they are).

Input: the load evidence (LoadResult.to_json() in vigie/loadrun.py, or the part of it a load target names):
`timeseries` (per second: t, rps, failures_per_s, p50, p95, in ms) and `aggregated.response_times` (vigie's
histogram of every response time: bucket lower edge in ms -> count, see vigie/load/histogram.py).
"""
from __future__ import annotations

import math
from html import escape

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 40
# bin edges of the latency distribution (ms): a 1-2-5 scale keeps every bin meaningful from sub-millisecond
# to ten-second answers
EDGES = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
SERIES = (("p50", "#0b4f9c", ""), ("p95", "#b3261e", "6 3"))


def _nice_step(raw: float) -> float:
    """The smallest 1-2-5 step at least `raw`, so that axis ticks fall on round numbers."""
    if raw <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(step * magnitude for step in (1, 2, 2.5, 5, 10) if step * magnitude >= raw)


def _y_axis(value: float) -> tuple[float, float]:
    """(top, step) of a y axis of at most four round steps that holds `value`."""
    step = _nice_step(value / 4)
    return max(step, math.ceil(value / step) * step), step


def fmt_number(x: float) -> str:
    return f"{x:.0f}" if x >= 10 or x == int(x) else f"{x:.1f}"


def _frame(title: str, y_label: str, x_label: str, y_max: float, y_step: float) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
              f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}">'),
             f"<title>{escape(title)}</title>",
             f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#c9ced6"/>']
    for i in range(round(y_max / y_step) + 1):
        value = y_step * i
        y = TOP + plot_h - plot_h * value / y_max
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e6ea"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{fmt_number(value)}</text>')
    parts.append(f'<text x="14" y="{TOP + plot_h / 2:.1f}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 14 {TOP + plot_h / 2:.1f})">{escape(y_label)}</text>')
    parts.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" font-size="11" '
                 f'text-anchor="middle">{escape(x_label)}</text>')
    return parts


def latency_over_time(timeseries: list[dict], title: str, x_label: str, y_label: str) -> str | None:
    """p50 and p95 latency per second of the load run, as two lines; None without data."""
    points = [p for p in timeseries if isinstance(p, dict) and isinstance(p.get("t"), (int, float))]
    if not points:
        return None
    t0 = min(p["t"] for p in points)
    span = max(max(p["t"] for p in points) - t0, 1)
    y_max, y_step = _y_axis(max((p.get(k) or 0) for p in points for k, _, _ in SERIES))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = _frame(title, y_label, x_label, y_max, y_step)
    step = _nice_step(span / 5)
    for i in range(int(span / step) + 1):
        x = LEFT + plot_w * i * step / span
        parts.append(f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" font-size="11">'
                     f"{fmt_number(i * step)}</text>")
    for n, (key, colour, dash) in enumerate(SERIES):
        coords = [(LEFT + plot_w * (p["t"] - t0) / span, TOP + plot_h - plot_h * (p.get(key) or 0) / y_max)
                  for p in sorted(points, key=lambda p: p["t"]) if p.get(key) is not None]
        if not coords:
            continue
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<polyline class="series-{key}" fill="none" stroke="{colour}" stroke-width="2"{dash_attr} '
                     f'points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in coords)}"/>')
        for x, y in coords:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>')
        lx = LEFT + 10 + 80 * n
        parts.append(f'<line x1="{lx}" x2="{lx + 22}" y1="{TOP - 12}" y2="{TOP - 12}" stroke="{colour}" '
                     f'stroke-width="2"{dash_attr}/>')
        parts.append(f'<text x="{lx + 28}" y="{TOP - 8}" font-size="11">{key}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram_bins(response_times: dict) -> list[tuple[str, int]]:
    """The response-time histogram (ms -> count) grouped into the EDGES bins, labelled like "5–10"."""
    counts = [0] * len(EDGES)
    for bucket, count in response_times.items():
        try:
            ms, n = float(bucket), int(count)
        except (TypeError, ValueError):
            continue
        index = max(i for i, edge in enumerate(EDGES) if ms >= edge) if ms >= 0 else 0
        counts[index] += n
    labels = [f"{EDGES[i]}–{EDGES[i + 1]}" for i in range(len(EDGES) - 1)] + [f"≥{EDGES[-1]}"]
    last = max((i for i, c in enumerate(counts) if c), default=-1)
    return list(zip(labels, counts))[: last + 1]


def latency_distribution(response_times: dict, title: str, x_label: str, y_label: str) -> str | None:
    """How many requests fell in each latency bin, as bars; None without data."""
    bins = histogram_bins(response_times or {})
    if not bins:
        return None
    y_max, y_step = _y_axis(max(c for _, c in bins))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = _frame(title, y_label, x_label, y_max, y_step)
    slot = plot_w / len(bins)
    for i, (label, count) in enumerate(bins):
        h = plot_h * count / y_max
        x = LEFT + slot * i + slot * 0.15
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{slot * 0.7:.1f}" '
                     f'height="{h:.1f}" fill="#0b4f9c"><title>{escape(label)} ms: {count}</title></rect>')
        if count:
            parts.append(f'<text x="{x + slot * 0.35:.1f}" y="{TOP + plot_h - h - 3:.1f}" font-size="10" '
                         f'text-anchor="middle">{count}</text>')
        parts.append(f'<text x="{x + slot * 0.35:.1f}" y="{TOP + plot_h + 16}" font-size="10" '
                     f'text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def percentile(response_times: dict, pct: float) -> float | None:
    """The `pct` percentile (ms) of the histogram: the first bucket at which the cumulative count reaches
    pct % of all requests (vigie.load.stats.percentile's nearest rank). vigie's buckets are lower edges, so
    the value is never above the slowest response."""
    buckets = sorted((float(k), int(v)) for k, v in (response_times or {}).items())
    total = sum(n for _, n in buckets)
    if not total:
        return None
    need, seen = total * pct / 100, 0
    for ms, n in buckets:
        seen += n
        if seen >= need:
            return ms
    return buckets[-1][0]
