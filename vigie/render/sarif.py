"""results.sarif (SARIF 2.1.0) for code-scanning dashboards: the security findings of a run.

A finding is a failed or errored outcome of a security check (a check id with a prefix in SECURITY_PREFIXES,
or any check of a profile that declares `category: security`). Its rule is the requirement; its location
is the target's URL, since what was found is a property of the running system, not of a source line.
"""
from __future__ import annotations

import json
from pathlib import Path

from .i18n import localized

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SECURITY_PREFIXES = ("tls.", "http.", "auth.", "source.", "privacy.", "robust.", "trace.")
LEVELS = {"SHALL": "error", "SHOULD": "warning", "MAY": "note"}
FINDINGS = ("failed", "error")


def is_security(outcome: dict, security_profiles: set[str]) -> bool:
    return outcome["check"].startswith(SECURITY_PREFIXES) or outcome["profile"] in security_profiles


def render_sarif(report: dict, out: Path, lang: str = "en") -> None:
    run = report.get("run", {})
    security_profiles = {p["id"] for p in report.get("profiles", []) if p.get("category") == "security"}
    profiles = {p["id"]: p for p in report.get("profiles", [])}
    urls = {t["id"]: t.get("url") or f"vigie-target:{t['id']}" for t in report.get("targets", [])}
    outcomes = [o for o in report.get("outcomes", []) if is_security(o, security_profiles)]
    rules, index = [], {}
    for o in outcomes:  # one rule per security requirement of the run, found or not
        if o["requirement"] in index:
            continue
        index[o["requirement"]] = len(rules)
        source = (profiles.get(o["profile"]) or {}).get("source") or {}
        rule = {"id": o["requirement"], "name": o["check"],
                "shortDescription": {"text": localized(o.get("title"), lang) or o["requirement"]},
                "defaultConfiguration": {"level": LEVELS.get(o["level"], "warning")},
                "properties": {"level": o["level"], "profile": o["profile"], "check": o["check"],
                               "reference": o.get("reference", ""), "tags": ["security", o["profile"]]}}
        if o.get("reference"):
            rule["fullDescription"] = {"text": o["reference"]}
        if isinstance(source.get("url"), str) and source["url"].startswith(("http://", "https://")):
            rule["helpUri"] = source["url"]
        rules.append(rule)
    results = []
    for o in outcomes:
        if o["status"] not in FINDINGS:
            continue
        uri = urls.get(o["target"], f"vigie-target:{o['target']}")
        results.append({
            "ruleId": o["requirement"], "ruleIndex": index[o["requirement"]],
            "level": LEVELS.get(o["level"], "warning"),
            "message": {"text": o.get("summary") or o["status"]},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}}}],
            # one finding per requirement and target: what lets a dashboard follow it from run to run
            "partialFingerprints": {"vigieRequirementTarget/v1": f"{o['requirement']}@{o['target']}"},
            "properties": {"status": o["status"], "target": o["target"], "profile": o["profile"],
                           "evidence": o.get("evidence", []), "messages": o.get("messages", [])}})
    invocation = {"executionSuccessful": bool(run.get("complete", True))}
    if run.get("command"):
        invocation["commandLine"] = run["command"]
    for key, name in (("started", "startTimeUtc"), ("finished", "endTimeUtc")):
        if run.get(key):
            invocation[name] = run[key]
    sarif = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "vigie", "version": str(run.get("tool_version", "")),
                            "informationUri": "https://vigie.dev/", "rules": rules}},
        "invocations": [invocation],
        "automationDetails": {"id": f"vigie/{run.get('id', '')}"},
        "results": results,
        "properties": {"verdict": report.get("verdict"), "suite_digest": run.get("suite_digest")}}]}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(sarif, indent=2, ensure_ascii=False), encoding="utf-8")
