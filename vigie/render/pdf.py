"""report.pdf: the printable, certificate-style report (weasyprint), for a reviewer who files documents.
It is rendered from report.json like every other rendering: a cover (verdict, product, patient-data
masking, signer), a table of contents with page numbers, the findings first (each linked to its page, with
the decisive excerpt of its evidence), the key charts, then one section per profile. Headings become the
PDF's outline; every internal link is a PDF link."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import jinja2
from markupsafe import Markup

from . import evidence_view
from .decisive import bundle_file, charts_of, decisive, read_json
from .findings import findings, one_line
from .i18n import (
    STATUSES,
    VERDICTS,
    check_lang,
    date_text,
    level_text,
    localized,
    markup,
    product_text,
    reference_text,
    t,
)
from .outcome_chart import outcomes_per_profile

TEMPLATES = Path(__file__).resolve().parent / "templates"
MAX_MESSAGES = 6
MEASURE_MAX_CHARS = 160


def pdf_html(report: dict, lang: str = "en", bundle_dir: Path | None = None) -> str:
    check_lang(lang)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)
    verdict = report.get("verdict")
    outcomes = report.get("outcomes", [])
    found = [_finding(o, i, report, lang, bundle_dir) for i, o in enumerate(findings(outcomes), 1)]
    # a profile's row of a finding links to the finding's section
    anchors = {id(o): f"f-{i}" for i, o in enumerate(findings(outcomes), 1)}
    profiles = [_profile(p, i, outcomes, anchors, lang) for i, p in enumerate(report.get("profiles", []), 1)]
    run = {"signer": None, "suite_digest": "", "command": "", "finished": None, "complete": None, "interrupted": None,
           "patient_data": None,
           **report.get("run", {})}
    run |= {"started_text": date_text(run.get("started"), lang),
            "finished_text": date_text(run["finished"], lang) if run["finished"] else ""}
    env_info = run.get("environment") if isinstance(run.get("environment"), dict) else {}
    return env.get_template("report.pdf.html.j2").render(
        lang=lang, t=lambda key, **kw: t(key, lang, **kw), run=run, profiles=profiles, findings=found,
        disclaimer=markup("pdf_disclaimer", lang, command=Markup("<code>vigie verify</code>")),
        outcome_chart=Markup(outcomes_per_profile(report.get("profiles", []), lang) or ""),
        load_charts=_load_charts(outcomes, lang, bundle_dir),
        product=product_text(report.get("product"), lang),
        targets=[{"url": "", **x} for x in report.get("targets", [])], status_keys=STATUSES,
        verdict=verdict if verdict in VERDICTS else "incomplete", verdict_label=_verdict(verdict, lang),
        verdict_desc=t(f"verdict_desc.{verdict}", lang) if verdict in VERDICTS else "",
        environment={"python": env_info.get("python", ""), "platform": env_info.get("platform", "")})


def _verdict(key, lang) -> str:
    return t(f"verdict.{key}", lang) if key in VERDICTS else str(key)


def _profile(p: dict, index: int, outcomes: list[dict], anchors: dict[int, str], lang: str) -> dict:
    source = p.get("source") or {}
    rows = [{**o, "title": localized(o.get("title"), lang), "level_label": level_text(o.get("level"), lang),
             "reference": reference_text(o.get("reference"), lang), "finding": anchors.get(id(o), "")}
            for o in outcomes if o["profile"] == p["id"]]
    return {"id": p["id"], "anchor": f"p-{index}", "version": p.get("version", ""),
            "title": localized(p.get("title"), lang) or p["id"], "verdict_label": _verdict(p.get("verdict"), lang),
            "counts": p.get("counts", {}), "digest": p.get("digest", ""), "source_title": source.get("title", ""),
            "source_url": source.get("url", ""), "rows": rows}


def _finding(o: dict, index: int, report: dict, lang: str, bundle_dir: Path | None) -> dict:
    base = next((x.get("url", "") for x in report.get("targets", []) if x.get("id") == o.get("target")), "")
    messages = [str(m) for m in o.get("messages") or []]
    return {**o, "anchor": f"f-{index}", "title": localized(o.get("title"), lang),
            "level_label": level_text(o.get("level"), lang), "reference": reference_text(o.get("reference"), lang),
            "reason": one_line(o.get("summary")), "messages": messages[:MAX_MESSAGES],
            "more_messages": max(0, len(messages) - MAX_MESSAGES),
            "measurements": [(k, _measure(v)) for k, v in (o.get("measurements") or {}).items()],
            "started_text": date_text(o.get("started"), lang) if o.get("started") else "",
            "decisive": decisive(o, bundle_dir, lang, base)}


def _measure(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MEASURE_MAX_CHARS else text[:MEASURE_MAX_CHARS] + " …"


def _load_charts(outcomes: list[dict], lang: str, bundle_dir: Path | None) -> list[dict]:
    """The charts of each whole load run the report's outcomes refer to (a finding shows its own scenario's)."""
    runs = []
    for path in dict.fromkeys(p for o in outcomes for p in o.get("evidence") or []):
        data = read_json(bundle_file(bundle_dir, path))
        if not isinstance(data, dict) or data.get("scenario"):
            continue
        shown = evidence_view.view(data, lang)
        if shown and shown["kind"] == "load" and (charts := charts_of(shown)):
            runs.append({"host": shown["host"], "path": path, "charts": charts})
    return runs


def render_pdf(report: dict, out: Path, lang: str = "en", bundle_dir: Path | None = None) -> None:
    import weasyprint
    # weasyprint logs every CSS property it ignores; a report run is not the place for that noise
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # base_url None and no external resource in the template: nothing is fetched while rendering
    weasyprint.HTML(string=pdf_html(report, lang, bundle_dir), base_url=None).write_pdf(out)
