"""summary.md: a short Markdown summary that fits a CI step summary (GitHub's $GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

import re
from pathlib import Path

from ..display import strip_control
from .i18n import STATUSES, check_lang, localized, product_text, t

_MARK = {"conformant": "✅", "conformant-with-reservations": "⚠️", "non-conformant": "❌", "incomplete": "❔", "not_applicable": "➖"}
# Problems listed beneath the table; the full list is in the HTML report, a step summary must stay short.
MAX_PROBLEMS = 25


def render_markdown(report: dict, out: Path, lang: str = "en") -> None:
    check_lang(lang)
    run = report.get("run", {})
    lines = [
        f"## {t('report_title', lang)}{t('colon', lang)} {_verdict(report.get('verdict'), lang)}",
        "",
        f"{_esc(t('product', lang))}{t('colon', lang)} {_esc(product_text(report.get('product'), lang))}",
        "",
        (f"{_esc(t('patient_data', lang))}{t('colon', lang)} "
         f"{_esc(t('patient_data.' + str(run.get('patient_data') or 'as sent'), lang))}"),
        "",
        f"{_code(run.get('id', ''))} · vigie {_esc(run.get('tool_version', ''))} · {_esc(run.get('started', ''))}",
        "",
    ]
    if run.get("interrupted"):
        lines += [f"> {_esc(t('run_interrupted', lang, signal=run['interrupted']))}", ""]
    elif run.get("complete") is False:
        lines += [f"> {_esc(t('run_incomplete', lang))}", ""]
    statuses = [t(f"status.{s}", lang) for s in STATUSES]
    lines.append(
        "| " + " | ".join([t("profile", lang), t("version", lang), t("verdict", lang), *statuses]) + " |"
    )
    lines.append("|" + "---|" * 3 + "---:|" * len(STATUSES))
    for p in report.get("profiles", []):
        counts = p.get("counts", {})
        cells = [
            f"{_esc(localized(p.get('title'), lang) or p['id'])} ({_code(p['id'])})",
            _esc(p.get("version", "")),
            _verdict(p.get("verdict"), lang),
            *(str(counts.get(s, 0)) for s in STATUSES),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    problems = [o for o in report.get("outcomes", []) if o["status"] in ("failed", "error")]
    if problems:
        lines += ["", f"**{t('problems', lang)}**", ""]
        for o in problems[:MAX_PROBLEMS]:
            lines.append(
                f"- {_code(o['requirement'])} ({o['level']}) @ {_code(o['target'])}: "
                f"{t('status.' + o['status'], lang)} — {_esc(o.get('summary', ''))}"
            )
        if len(problems) > MAX_PROBLEMS:
            lines.append(f"- … (+{len(problems) - MAX_PROBLEMS})")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _verdict(key: str | None, lang: str) -> str:
    label = t(f"verdict.{key}", lang) if key in _MARK else str(key)
    return f"{_MARK.get(key, '')} **{label}**".strip()


def _esc(text: object) -> str:
    """Markdown-neutral text: table pipes, emphasis, links and raw HTML from a target stay literal, and its
    control characters (a terminal escape, shown raw by a CI log) are replaced visibly."""
    flat = re.sub(r"\s+", " ", strip_control(text)).strip()
    return re.sub(r"([\\`*_\[\]|<>#!&])", r"\\\1", flat)


def _code(text: object) -> str:
    # backslash escapes are literal inside a code span, except a table pipe, which GFM reads first
    flat = re.sub(r"\s+", " ", strip_control(text)).strip().replace("`", "'").replace("|", "\\|")
    return f"`{flat}`"
