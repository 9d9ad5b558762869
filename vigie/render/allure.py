"""allure-results/: one Allure 2 `<uuid>-result.json` per outcome, for teams that read test history in Allure.

vigie writes these files itself from report.json instead of running allure-pytest: the checks run
in-process under vigie's own pytest plugin, one test per requirement and target, and what Allure should
show is the outcome vigie decided (with its requirement, profile, target and level), not pytest's view of
the test function. It also keeps report.json the single source every rendering reads.

Each outcome's evidence files are attached (copied beside the results, once each, whatever the number of
outcomes that name them), so that the folder a CI job publishes alone still shows what was observed.
"""
from __future__ import annotations

import json
import mimetypes
import shutil
import uuid
from datetime import datetime
from pathlib import Path

from .i18n import localized

STATUS = {"passed": "passed", "failed": "failed", "error": "broken", "skipped": "skipped",
          "not_applicable": "skipped", "not_tested": "skipped"}
SEVERITY = {"SHALL": "critical", "SHOULD": "normal", "MAY": "minor"}
NAMESPACE = uuid.UUID("6f1c3c3e-8d0b-4f7e-9b55-2d3a1c8f0a11")  # stable uuids: a re-render overwrites
TYPES = {".json": "application/json", ".sarif": "application/json", ".ndjson": "application/x-ndjson",
         ".log": "text/plain", ".txt": "text/plain", ".sql": "text/plain", ".csv": "text/csv",
         ".xml": "application/xml", ".html": "text/html"}


def _ms(timestamp: str | None) -> int | None:
    try:
        return int(datetime.fromisoformat(timestamp).timestamp() * 1000)
    except (TypeError, ValueError):
        return None


def render_allure(report: dict, out_dir: Path, lang: str = "en", bundle_dir: Path | None = None) -> None:
    """Writes `out_dir` (the bundle's allure-results/); evidence paths are read under `bundle_dir`, by
    default the folder that holds `out_dir`."""
    out_dir = Path(out_dir)
    bundle = Path(bundle_dir) if bundle_dir is not None else out_dir.parent
    if out_dir.exists():  # results of an earlier rendering of this bundle would be counted twice
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    run = report.get("run", {})
    run_start = _ms(run.get("started")) or 0
    attached: dict[str, dict | None] = {}
    for o in report.get("outcomes", []):
        name = f"{o['requirement']}@{o['target']}"
        start = _ms(o.get("started")) or run_start
        stop = start + int(float(o.get("duration_s") or 0) * 1000)
        result = {
            "uuid": str(uuid.uuid5(NAMESPACE, f"{run.get('id')}/{name}")),
            "historyId": name, "testCaseId": o["requirement"],
            "name": f"{o['requirement']} — {localized(o.get('title'), lang)}".rstrip(" —"),
            "fullName": f"vigie.{o['profile']}.{name}",
            "status": STATUS.get(o["status"], "unknown"),
            "statusDetails": {"message": o.get("summary", ""), "trace": "\n".join(o.get("messages", []))},
            "stage": "finished", "start": start, "stop": stop,
            "description": "\n".join([o.get("reference", ""), *("evidence: " + e for e in o.get("evidence", []))]),
            "labels": [{"name": "requirement", "value": o["requirement"]},
                       {"name": "profile", "value": o["profile"]},
                       {"name": "target", "value": o["target"]},
                       {"name": "severity", "value": SEVERITY.get(o["level"], "normal")},
                       {"name": "level", "value": o["level"]},
                       {"name": "check", "value": o["check"]},
                       {"name": "suite", "value": o["profile"]},
                       {"name": "parentSuite", "value": "vigie"},
                       {"name": "framework", "value": "vigie"}],
            "parameters": [{"name": "target", "value": o["target"]}, {"name": "status", "value": o["status"]}],
            "links": [], "steps": [],
            "attachments": [a for a in (_attach(path, bundle, out_dir, attached) for path in o.get("evidence", []))
                            if a],
        }
        (out_dir / f"{result['uuid']}-result.json").write_text(json.dumps(result, indent=2, ensure_ascii=False),
                                                               encoding="utf-8")
    env = run.get("environment") or {}
    lines = [f"vigie={run.get('tool_version', '')}", f"run={run.get('id', '')}", f"verdict={report.get('verdict')}",
             f"python={env.get('python', '')}", f"platform={env.get('platform', '')}"]
    (out_dir / "environment.properties").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _attach(path: object, bundle: Path, out_dir: Path, attached: dict) -> dict | None:
    """The Allure attachment of one evidence file of the bundle, copied into `out_dir` the first time it is
    named; None for a path that is not a file of the bundle (missing, a link, outside it: a crafted report
    must not make vigie copy other files)."""
    if not isinstance(path, str):
        return None
    if path not in attached:
        attached[path] = None
        root, file = bundle.resolve(), bundle / path
        if file.is_file() and not file.is_symlink() and file.resolve().is_relative_to(root):
            suffix = file.suffix.lower()
            source = f"{uuid.uuid5(NAMESPACE, 'evidence:' + path)}-attachment{suffix}"
            shutil.copyfile(file, out_dir / source)
            kind = TYPES.get(suffix) or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            attached[path] = {"name": path, "source": source, "type": kind}
    return attached[path]
