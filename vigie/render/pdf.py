"""report.pdf: the printable, certificate-style report (weasyprint), for a reviewer who files documents.
It is rendered from report.json like every other rendering; its cover names the signing key's fingerprint
(or says the bundle is not signed) so that the paper copy points at the bundle that proves it."""
from __future__ import annotations

import logging
from pathlib import Path

import jinja2

from .i18n import STATUSES, VERDICTS, check_lang, localized, product_text, t

TEMPLATES = Path(__file__).resolve().parent / "templates"


def pdf_html(report: dict, lang: str = "en") -> str:
    check_lang(lang)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)
    verdict = report.get("verdict")
    profiles = []
    for p in report.get("profiles", []):
        source = p.get("source") or {}
        profiles.append({"id": p["id"], "version": p.get("version", ""), "title": localized(p.get("title"), lang)
                         or p["id"], "verdict_label": _verdict(p.get("verdict"), lang), "counts": p.get("counts", {}),
                         "digest": p.get("digest", ""), "source_title": source.get("title", ""),
                         "source_url": source.get("url", ""),
                         "rows": [{**o, "title": localized(o.get("title"), lang)}
                                  for o in report.get("outcomes", []) if o["profile"] == p["id"]]})
    run = {"signer": None, "suite_digest": "", "command": "", "finished": None, "complete": None,
           "patient_data": None,
           **report.get("run", {})}
    env_info = run.get("environment") if isinstance(run.get("environment"), dict) else {}
    return env.get_template("report.pdf.html.j2").render(
        lang=lang, t=lambda key, **kw: t(key, lang, **kw), run=run, profiles=profiles,
        product=product_text(report.get("product"), lang),
        targets=[{"url": "", **x} for x in report.get("targets", [])], status_keys=STATUSES,
        verdict=verdict if verdict in VERDICTS else "incomplete", verdict_label=_verdict(verdict, lang),
        verdict_desc=t(f"verdict_desc.{verdict}", lang) if verdict in VERDICTS else "",
        environment={"python": env_info.get("python", ""), "platform": env_info.get("platform", "")})


def _verdict(key, lang) -> str:
    return t(f"verdict.{key}", lang) if key in VERDICTS else str(key)


def render_pdf(report: dict, out: Path, lang: str = "en") -> None:
    import weasyprint
    # weasyprint logs every CSS property it ignores; a report run is not the place for that noise
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # base_url None and no external resource in the template: nothing is fetched while rendering
    weasyprint.HTML(string=pdf_html(report, lang), base_url=None).write_pdf(out)
