"""Renderers of a report bundle. Each reads only the report dict (report.json) and writes one file;
none computes a verdict: they show the ones the report holds.
"""

from __future__ import annotations

import json
from pathlib import Path

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema" / "report.schema.json"

FORMATS = ("html", "junit", "md")


def report_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate_report(report: dict) -> None:
    """Raise ValueError naming the first offending field when `report` breaks the published schema."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(report_schema())
    errors = sorted(validator.iter_errors(report), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(root)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ValueError(f"report.json does not match vigie-report/1 at {where}: {first.message}{more}")


def load_report(path: Path, validate: bool = True) -> dict:
    report = json.loads(Path(path).read_text(encoding="utf-8"))
    if validate:
        validate_report(report)
    return report


def render(report: dict, fmt: str, out: Path, lang: str = "en", bundle_dir: Path | None = None) -> Path:
    """Render `report` in `fmt` (one of FORMATS) to `out`, its sentences in `lang`; returns `out`."""
    from ..messages import localized

    report = localized(report, lang)
    out = Path(out)
    if fmt == "html":
        from .html import render_html

        render_html(report, out, lang=lang, bundle_dir=bundle_dir)
    elif fmt == "junit":
        from .junit import render_junit

        render_junit(report, out)
    elif fmt == "md":
        from .markdown import render_markdown

        render_markdown(report, out, lang=lang)
    else:
        raise ValueError(f"unknown report format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return out
