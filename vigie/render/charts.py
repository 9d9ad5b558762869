"""Inline SVG charts of load statistics, drawn here so that a report needs no script and no library to
show them (and prints them as they are).

Input: the load evidence (LoadResult.to_json() in vigie/loadrun.py, or the part of it a load target names):
`timeseries` (per second: t, rps, failures_per_s, p50, p95, in ms) and `aggregated.response_times` (vigie's
histogram of every response time: bucket lower edge in ms -> count, see vigie/load/histogram.py). A chart
of a judged target draws its threshold as a dashed line, named in the legend above the plot.

Text never overlaps: labels are short (1k, 25k), the legend is laid out left to right above the plot, and the
histogram keeps headroom so that the counts above its bars stay inside the plot.
"""
from __future__ import annotations

import math
from html import escape
from typing import NamedTuple

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 40
FONT = 11
# bin edges of the latency distribution (ms): a 1-2-5 scale keeps every bin meaningful from sub-millisecond
# to ten-second answers
EDGES = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
THRESHOLD_COLOUR = "#1b1b1b"


class Series(NamedTuple):
    key: str          # the member of each point
    colour: str
    dash: str         # stroke-dasharray, "" for a plain line
    label: str        # in the legend


class Threshold(NamedTuple):
    value: float      # in the unit of the chart's y axis (or of the histogram's x axis)
    label: str        # "target p95 < 1000 ms", in the legend


LATENCY = (Series("p50", "#0b4f9c", "", "p50"), Series("p95", "#b3261e", "6 3", "p95"))
ERROR_RATE = (Series("error_pct", "#b3261e", "", ""),)
THROUGHPUT = (Series("rps", "#0b4f9c", "", ""),)


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


def short_number(x: float) -> str:
    """A tick or count label of at most about four characters: 950, 2.5k, 25k, 1.2M."""
    if abs(x) >= 1e6:
        return f"{x / 1e6:.1f}".rstrip("0").rstrip(".") + "M"
    if abs(x) >= 1e4:
        return f"{x / 1e3:.0f}k"
    if abs(x) >= 1000 and x % 100 == 0:
        return f"{x / 1000:g}k"
    return fmt_number(x)


def _text_width(text: str, size: float = FONT) -> float:
    """A generous width of `text` in the chart's font, to lay the legend out."""
    return len(text) * 0.62 * size


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
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="{FONT}">'
                     f"{short_number(value)}</text>")
    parts.append(f'<text x="12" y="{TOP + plot_h / 2:.1f}" font-size="{FONT}" text-anchor="middle" '
                 f'transform="rotate(-90 12 {TOP + plot_h / 2:.1f})">{escape(y_label)}</text>')
    parts.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" font-size="{FONT}" '
                 f'text-anchor="middle">{escape(x_label)}</text>')
    return parts


def _legend(entries: list[tuple[str, str, str]]) -> list[str]:
    """(colour, dash, label) entries, left to right in the band above the plot."""
    parts, x = [], LEFT + 10
    for colour, dash, label in entries:
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<line x1="{x}" x2="{x + 22}" y1="{TOP - 12}" y2="{TOP - 12}" stroke="{colour}" '
                     f'stroke-width="2"{dash_attr}/>')
        parts.append(f'<text x="{x + 28}" y="{TOP - 8}" font-size="{FONT}">{escape(label)}</text>')
        x += 28 + _text_width(label) + 18
    return parts


def _threshold_entry(threshold: Threshold) -> tuple[str, str, str]:
    return THRESHOLD_COLOUR, "4 4", threshold.label


def over_time(points: list[dict], series: tuple[Series, ...], title: str, x_label: str, y_label: str,
              threshold: Threshold | None = None) -> str | None:
    """One line per series, per second of the load run, and the threshold as a horizontal dashed line (the y
    axis reaches it, so that the margin to the target is seen); None without data."""
    points = sorted((p for p in points if isinstance(p, dict) and isinstance(p.get("t"), (int, float))),
                    key=lambda p: p["t"])
    values = [p[s.key] for p in points for s in series if isinstance(p.get(s.key), (int, float))]
    if not values:
        return None
    t0 = points[0]["t"]
    span = max(points[-1]["t"] - t0, 1)
    y_max, y_step = _y_axis(max([*values, threshold.value if threshold else 0]) or 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = _frame(title, y_label, x_label, y_max, y_step)
    step = _nice_step(span / 5)
    for i in range(int(span / step) + 1):
        x = LEFT + plot_w * i * step / span
        parts.append(f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" font-size="{FONT}">'
                     f"{short_number(i * step)}</text>")
    legend = []
    for s in series:
        coords = [(LEFT + plot_w * (p["t"] - t0) / span, TOP + plot_h - plot_h * p[s.key] / y_max)
                  for p in points if isinstance(p.get(s.key), (int, float))]
        if not coords:
            continue
        dash_attr = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        parts.append(f'<polyline class="series-{s.key}" fill="none" stroke="{s.colour}" stroke-width="2"{dash_attr} '
                     f'points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in coords)}"/>')
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{s.colour}"/>' for x, y in coords]
        if s.label:
            legend.append((s.colour, s.dash, s.label))
    if threshold:
        y = TOP + plot_h - plot_h * threshold.value / y_max
        parts.append(f'<line class="threshold" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="{THRESHOLD_COLOUR}" stroke-width="1.5" stroke-dasharray="4 4"/>')
        legend.append(_threshold_entry(threshold))
    parts += _legend(legend)
    parts.append("</svg>")
    return "".join(parts)


def latency_over_time(timeseries: list[dict], title: str, x_label: str, y_label: str,
                      threshold: Threshold | None = None) -> str | None:
    """p50 and p95 latency (ms) per second of the load run; None without data."""
    return over_time(timeseries, LATENCY, title, x_label, y_label, threshold)


def error_rate_over_time(timeseries: list[dict], title: str, x_label: str, y_label: str,
                         threshold: Threshold | None = None) -> str | None:
    """The share of failed requests (%) per second of the load run; None without requests."""
    points = [{"t": p.get("t"), "error_pct": 100 * (p.get("failures_per_s") or 0) / p["rps"]}
              for p in timeseries if isinstance(p, dict) and isinstance(p.get("rps"), (int, float)) and p["rps"] > 0]
    return over_time(points, ERROR_RATE, title, x_label, y_label, threshold)


def throughput_over_time(timeseries: list[dict], title: str, x_label: str, y_label: str,
                         threshold: Threshold | None = None) -> str | None:
    """Requests per second of the load run; None without data."""
    return over_time(timeseries, THROUGHPUT, title, x_label, y_label, threshold)


def histogram_bins(response_times: dict, reach: float | None = None) -> list[tuple[int, int]]:
    """The response-time histogram (ms -> count) grouped into the EDGES bins: (bin index, count), up to the
    last bin that holds a response (or holds `reach`, a threshold to be drawn)."""
    counts = [0] * len(EDGES)
    for bucket, count in response_times.items():
        try:
            ms, n = float(bucket), int(count)
        except (TypeError, ValueError):
            continue
        counts[_bin_of(ms)] += n
    last = max((i for i, c in enumerate(counts) if c), default=-1)
    if last < 0:
        return []
    if reach is not None:
        last = max(last, _bin_of(reach))
    return list(enumerate(counts))[: last + 1]


def _bin_of(ms: float) -> int:
    return max(i for i, edge in enumerate(EDGES) if ms >= edge) if ms >= 0 else 0


def bin_label(index: int) -> str:
    """The range of a bin as a reader names it: "5–10", "1k–2k", "≥10k"."""
    if index == len(EDGES) - 1:
        return f"≥{short_number(EDGES[-1])}"
    return f"{short_number(EDGES[index])}–{short_number(EDGES[index + 1])}"


def latency_distribution(response_times: dict, title: str, x_label: str, y_label: str,
                         threshold: Threshold | None = None) -> str | None:
    """How many requests fell in each latency bin, as bars over the bin edges (labelled at the edges, so that
    no label is wider than its bin), the threshold (ms) as a vertical dashed line; None without data."""
    bins = histogram_bins(response_times or {}, threshold.value if threshold else None)
    if not bins:
        return None
    # headroom: the count above the tallest bar stays inside the plot, below the legend
    y_max, y_step = _y_axis(max(c for _, c in bins) * 1.2)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = _frame(title, y_label, x_label, y_max, y_step)
    slot = plot_w / len(bins)
    for i, count in bins:
        h = plot_h * count / y_max
        x = LEFT + slot * i
        parts.append(f'<rect class="bar" x="{x + slot * 0.1:.1f}" y="{TOP + plot_h - h:.1f}" width="{slot * 0.8:.1f}" '
                     f'height="{h:.1f}" fill="#0b4f9c"><title>{escape(bin_label(i))} ms: {count}</title></rect>')
        if count:
            parts.append(f'<text x="{x + slot / 2:.1f}" y="{TOP + plot_h - h - 3:.1f}" font-size="10" '
                         f'text-anchor="middle">{short_number(count)}</text>')
    for i in range(len(bins) + (0 if bins[-1][0] == len(EDGES) - 1 else 1)):
        label = short_number(EDGES[i]) + ("+" if i == len(EDGES) - 1 else "")
        parts.append(f'<text x="{LEFT + slot * i:.1f}" y="{TOP + plot_h + 16}" font-size="10" '
                     f'text-anchor="middle">{label}</text>')
    if threshold:
        x = LEFT + slot * _position(threshold.value)
        parts.append(f'<line class="threshold" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + plot_h}" '
                     f'stroke="{THRESHOLD_COLOUR}" stroke-width="1.5" stroke-dasharray="4 4"/>')
        parts += _legend([_threshold_entry(threshold)])
    parts.append("</svg>")
    return "".join(parts)


def _position(ms: float) -> float:
    """Where `ms` falls on the histogram's axis, in bins: its bin's index plus its place inside the bin."""
    i = _bin_of(ms)
    if i == len(EDGES) - 1:
        return i
    return i + (ms - EDGES[i]) / (EDGES[i + 1] - EDGES[i])


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
