"""The HTML report: one self-contained file (inline CSS, no script, nothing fetched at view time) that a
regulator's reviewer can read, follow to the evidence, and print.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import jinja2

from ..evidence import writable
from . import evidence_view
from .decisive import bundle_file, read_json
from .findings import is_finding, one_line, rank
from .i18n import (
    LEVELS,
    STATUSES,
    VERDICTS,
    check_lang,
    date_text,
    level_text,
    localized,
    product_text,
    reference_text,
    t,
)

TEMPLATES = Path(__file__).resolve().parent / "templates"

# Evidence larger than this is linked, not embedded: the report must stay light enough to mail and open.
EMBED_MAX_BYTES = 200 * 1024
EXCERPT_MAX_LINES = 80


def render_html(report: dict, out: Path, lang: str = "en", bundle_dir: Path | None = None) -> None:
    check_lang(lang)
    out = Path(out)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every value comes from report.json, which carries text observed on the target
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    page = env.get_template("report.html.j2").render(
        lang=lang, t=lambda key, **kw: t(key, lang, **kw), **_view(report, out, lang, bundle_dir)
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    # evidence is parsed again to be shown: a target's unpaired surrogate escape may come back as a character
    out.write_text(writable(page), encoding="utf-8")


@dataclass
class _Context:
    lang: str
    out: Path
    bundle_dir: Path | None
    anchors: set[str] = field(default_factory=set)
    # evidence path -> where its excerpt is shown: one scan serves many requirements, embed it once
    excerpts: dict[str, dict] = field(default_factory=dict)

    def anchor(self, base: str) -> str:
        anchor, n = base, 1
        while anchor in self.anchors:  # slugs of distinct ids may collide; each block keeps its own
            n += 1
            anchor = f"{base}-{n}"
        self.anchors.add(anchor)
        return anchor


def _view(report: dict, out: Path, lang: str, bundle_dir: Path | None) -> dict:
    ctx = _Context(lang, out, bundle_dir)
    rows = [_outcome(o, ctx) for o in report.get("outcomes", [])]
    profiles = [_profile(p, ctx) for p in report.get("profiles", [])]
    by_id = {p["id"]: p for p in profiles}
    for row in rows:
        if row["profile"] not in by_id:  # an outcome of a profile the report does not describe: still show it
            by_id[row["profile"]] = _profile({"id": row["profile"]}, ctx)
            profiles.append(by_id[row["profile"]])
        by_id[row["profile"]]["rows"].append(row)
    # optional fields get explicit defaults: the template is strict so that a typo in it fails loudly
    run = {"finished": None, "suite_digest": "", "command": "", "complete": None, "interrupted": None, "signer": None,
           "patient_data": None, "environment": {}, "fhir_packages": [], **report.get("run", {})}
    run |= {"started_text": date_text(run.get("started"), lang), "finished_text": date_text(run["finished"], lang)}
    env = run["environment"] if isinstance(run["environment"], dict) else {}
    return {
        "run": run,
        "findings": sorted((r for r in rows if r["is_finding"]), key=lambda r: rank(r["status"]["key"],
                                                                                     r["level"])),
        "product": product_text(report.get("product"), lang),
        "verdict": _verdict(report.get("verdict"), lang),
        "targets": [{"url": "", **target} for target in report.get("targets", [])],
        "profiles": profiles,
        "not_tested": [r for r in rows if r["status"]["key"] == "not_tested"],
        "environment": {"python": env.get("python", ""), "platform": env.get("platform", ""),
                        "packages": sorted((k, v) for k, v in (env.get("packages") or {}).items() if v)},
        "attestations": [r for r in rows if r["is_attestation"]],
        "statuses": [_status(s, lang) for s in STATUSES],
        "verdicts": [_verdict(v, lang) for v in VERDICTS],
        "levels": [{"key": lv, "label": level_text(lv, lang), "desc": t(f"level_desc.{lv}", lang)}
                   for lv in LEVELS],
    }


def _status(key: str, lang: str) -> dict:
    known = key in STATUSES
    return {
        "key": key,
        "css": key if known else "unknown",
        "label": t(f"status.{key}", lang) if known else str(key),
        "desc": t(f"status_desc.{key}", lang) if known else "",
    }


def _verdict(key: str | None, lang: str) -> dict:
    known = key in VERDICTS
    return {
        "key": key,
        "css": key if known else "unknown",
        "label": t(f"verdict.{key}", lang) if known else str(key or "—"),
        "desc": t(f"verdict_desc.{key}", lang) if known else "",
    }


def _profile(p: dict, ctx: _Context) -> dict:
    lang, source, counts = ctx.lang, p.get("source") or {}, p.get("counts") or {}
    return {
        "id": p["id"],
        "anchor": ctx.anchor("p-" + _slug(p["id"])),
        "version": p.get("version", ""),
        "title": localized(p.get("title"), lang) or p["id"],
        "source": {
            "title": source.get("title", ""),
            "url": _safe_url(source.get("url")),
            "published": source.get("published", ""),
        },
        "digest": p.get("digest", ""),
        "verdict": _verdict(p.get("verdict"), lang),
        "counts": counts,
        "total": sum(v for v in counts.values() if isinstance(v, int)),
        "rows": [],
    }


def _outcome(o: dict, ctx: _Context) -> dict:
    lang, duration = ctx.lang, o.get("duration_s")
    label = f"{o['requirement']} @ {o['target']}"
    return {
        "anchor": ctx.anchor("o-" + _slug(f"{o['requirement']}-{o['target']}")),
        "requirement": o["requirement"],
        "profile": o["profile"],
        "level": o["level"],
        "level_label": level_text(o["level"], lang),
        "title": localized(o.get("title"), lang),
        "reference": reference_text(o.get("reference", ""), lang),
        "target": o["target"],
        "check": o["check"],
        "is_attestation": o["check"] == "attestation",
        "status": _status(o["status"], lang),
        "is_finding": is_finding(o),
        "summary": o.get("summary", ""),
        "reason": one_line(o.get("summary", "")),
        "messages": o.get("messages") or [],
        "measurements": [(k, _value(v)) for k, v in (o.get("measurements") or {}).items()],
        "evidence": [_evidence(path, label, ctx) for path in o.get("evidence") or []],
        "started": o.get("started") or "",
        "started_text": date_text(o.get("started"), lang) if o.get("started") else "",
        "duration": "" if duration is None else _number(duration, lang) + " s",
    }


def _evidence(path: str, label: str, ctx: _Context) -> dict:
    item = {"path": path, "href": quote(path), "excerpt": None, "note": "", "anchor": "", "shown_with": None,
            "view": None}
    file = bundle_file(ctx.bundle_dir, path)  # a crafted report must not make us read files outside the bundle
    if file is None:
        return item
    item["href"] = quote(Path(os.path.relpath(file, ctx.out.resolve().parent)).as_posix())
    if path in ctx.excerpts:
        item["shown_with"] = ctx.excerpts[path]
        return item
    data = read_json(file)  # None when unreadable or too large: still linked, the reviewer opens it
    if data is not None:
        item["view"] = evidence_view.view(data, ctx.lang)
        if item["view"] is not None:
            item["anchor"] = ctx.anchor("x-" + _slug(path))
            ctx.excerpts[path] = {"anchor": item["anchor"], "label": label}
            return item
        if file.stat().st_size >= EMBED_MAX_BYTES:
            return item
        lines = json.dumps(data, indent=2, ensure_ascii=False).splitlines()
        item["excerpt"] = "\n".join(lines[:EXCERPT_MAX_LINES])
        if len(lines) > EXCERPT_MAX_LINES:
            item["note"] = t("excerpt_truncated", ctx.lang, shown=EXCERPT_MAX_LINES, total=len(lines))
        item["anchor"] = ctx.anchor("x-" + _slug(path))
        ctx.excerpts[path] = {"anchor": item["anchor"], "label": label}
    return item


def _value(v: object) -> str:
    """A measurement as a reviewer reads it: plain text, a comma list, or compact JSON for structures."""
    if isinstance(v, str):
        return v
    if isinstance(v, list) and v and all(isinstance(x, (str, int, float)) for x in v):
        return ", ".join(x if isinstance(x, str) else json.dumps(x) for x in v)
    return json.dumps(v, ensure_ascii=False)


def _number(x: float, lang: str) -> str:
    text = f"{x:.2f}" if x >= 0.01 or x == 0 else f"{x:.3g}"
    return text.replace(".", ",") if lang == "fr" else text


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"


def _safe_url(url: object) -> str:
    """Only web addresses become links: a `javascript:` URL in a profile must not run in the report."""
    if isinstance(url, str) and urlsplit(url).scheme in ("http", "https"):
        return url
    return ""
