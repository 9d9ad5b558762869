"""The chart of verdicts per profile: one bar per profile, split by outcome status, its verdict written
beside it. Inline SVG drawn here (no script, no library), so that the PDF prints it as it is; colours come
with the status words of the legend, never alone."""
from __future__ import annotations

from html import escape

from .i18n import STATUSES, VERDICTS, t

WIDTH, ROW, LEFT, RIGHT, TOP = 680, 22, 150, 170, 34
COLOURS = {"passed": "#3a8f4e", "failed": "#b3261e", "error": "#8e4a9c", "skipped": "#8a919b",
           "not_applicable": "#c4c9d0", "not_tested": "#d1a83b"}
LIGHT = ("not_applicable", "not_tested")  # dark figures on these, white on the others


def outcomes_per_profile(profiles: list[dict], lang: str) -> str | None:
    """`profiles` as report.json holds them (id, verdict, counts); None without outcomes to draw."""
    rows = [p for p in profiles if sum(_counts(p).values())]
    if not rows:
        return None
    widest = max(sum(_counts(p).values()) for p in rows)
    plot = WIDTH - LEFT - RIGHT
    height = TOP + ROW * len(rows) + 8
    title = t("chart_outcomes", lang)
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart outcomes-chart" viewBox="0 0 {WIDTH} {height}" '
              f'width="{WIDTH}" height="{height}" role="img" aria-label="{escape(title)}">'),
             f"<title>{escape(title)}</title>"]
    parts += _legend(lang)
    for i, p in enumerate(rows):
        parts += _bar(p, TOP + ROW * i, plot / widest, lang)
    parts.append("</svg>")
    return "".join(parts)


def _counts(profile: dict) -> dict[str, int]:
    counts = profile.get("counts") if isinstance(profile.get("counts"), dict) else {}
    return {s: counts[s] for s in STATUSES if isinstance(counts.get(s), int) and counts[s] > 0}


def _legend(lang: str) -> list[str]:
    parts, x = [], LEFT
    for status in STATUSES:
        if status == "skipped":  # only reports before vigie 0.2 have it; its bars still carry their title
            continue
        label = t(f"status.{status}", lang)
        parts.append(f'<rect x="{x}" y="8" width="10" height="10" fill="{COLOURS[status]}"/>'
                     f'<text x="{x + 14}" y="17" font-size="10">{escape(label)}</text>')
        x += 24 + 6 * len(label)
    return parts


def _bar(profile: dict, y: float, scale: float, lang: str) -> list[str]:
    parts = [f'<text x="{LEFT - 6}" y="{y + 14}" font-size="10" text-anchor="end">{escape(str(profile["id"]))}</text>']
    x = LEFT
    for status, n in _counts(profile).items():
        w = n * scale
        parts.append(f'<rect class="seg-{status}" x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{ROW - 6}" '
                     f'fill="{COLOURS[status]}"><title>{escape(t(f"status.{status}", lang))}: {n}</title></rect>')
        if w >= 14:
            parts.append(f'<text x="{x + w / 2:.1f}" y="{y + 14}" font-size="9" text-anchor="middle" '
                         f'fill="{"#1b1f24" if status in LIGHT else "#fff"}">{n}</text>')
        x += w
    verdict = profile.get("verdict")
    label = t(f"verdict.{verdict}", lang) if verdict in VERDICTS else str(verdict or "—")
    parts.append(f'<text x="{WIDTH - RIGHT + 8}" y="{y + 14}" font-size="10" font-weight="bold">{escape(label)}</text>')
    return parts
