"""results.sarif (SARIF 2.1.0) for code-scanning dashboards: the security requirements of a run and their findings.

A security requirement is one of a profile whose checks are security checks: the profile's `family` in
report.json, the suite folder its checks live in (vigie.suite.check_families), so that a new security check
or profile is reported without a list to keep up to date. Every security requirement of the run is a rule,
with help (what it asks, its source, how to fix); each failed or errored outcome is a result, whose location
is the target's URL, since what was found is a property of the running system, not of a source line.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..suite import check_families
from .i18n import level_text, localized, reference_text

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SECURITY = "security"
LEVELS = {"SHALL": "error", "SHOULD": "warning", "MAY": "note"}
# GitHub code scanning ranks security rules by this property (0-10: 7+ high, 4+ medium, else low)
SECURITY_SEVERITY = {"SHALL": "8.0", "SHOULD": "5.0", "MAY": "2.0"}
FINDINGS = ("failed", "error")

HELP = {
    "en": {"asks": "What it asks", "level": "Level", "source": "Source", "fix": "How to fix", "colon": ":",
           "SHALL": "a failure makes the profile non-conformant",
           "SHOULD": "a failure leaves the profile conformant with reservations",
           "MAY": "reported for information",
           "how": "Change the system so that it meets the requirement as stated above. The result's message says "
                  "what vigie observed instead (or, for an undetermined result, what it could not observe), and "
                  "the evidence files it lists, in the report bundle, hold the exchanges, scan or findings "
                  "behind it. Run vigie again to confirm the fix."},
    "fr": {"asks": "Ce qui est exigé", "level": "Niveau", "source": "Source", "fix": "Comment corriger",
           "colon": "\u00a0:",
           "SHALL": "un échec rend le profil non conforme",
           "SHOULD": "un échec laisse le profil conforme avec réserves",
           "MAY": "donné pour information",
           "how": "Modifier le système pour qu'il satisfasse l'exigence telle qu'énoncée ci-dessus. Le message "
                  "du résultat dit ce que vigie a observé à la place (ou, pour un résultat indéterminé, ce "
                  "qu'il n'a pas pu observer), et les fichiers de preuve qu'il cite, dans le lot du rapport, "
                  "contiennent les échanges, l'analyse ou les constats sur lesquels il repose. Relancer vigie "
                  "pour confirmer la correction."},
}


def security_outcomes(report: dict) -> list[dict]:
    """The outcomes of the run's security requirements. A report written before profiles carried their
    family is read with the families of the checks as the suite holds them now."""
    families = {p["id"]: p.get("family") for p in report.get("profiles", []) if "family" in p}
    checks = check_families()
    return [o for o in report.get("outcomes", [])
            if (families[o["profile"]] if o["profile"] in families else checks.get(o["check"])) == SECURITY]


def render_sarif(report: dict, out: Path, lang: str = "en") -> None:
    run = report.get("run", {})
    profiles = {p["id"]: p for p in report.get("profiles", [])}
    urls = {t["id"]: t.get("url") or f"vigie-target:{t['id']}" for t in report.get("targets", [])}
    outcomes = security_outcomes(report)
    rules, index = [], {}
    for o in outcomes:  # one rule per security requirement of the run, found or not
        if o["requirement"] not in index:
            index[o["requirement"]] = len(rules)
            rules.append(_rule(o, profiles.get(o["profile"]) or {}, lang))
    results = [_result(o, index[o["requirement"]], urls) for o in outcomes if o["status"] in FINDINGS]
    invocation = {"executionSuccessful": bool(run.get("complete", True))}
    if run.get("interrupted"):
        invocation["exitSignalName"] = str(run["interrupted"])
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


def _rule(o: dict, profile: dict, lang: str) -> dict:
    source = profile.get("source") if isinstance(profile.get("source"), dict) else {}
    rule = {"id": o["requirement"], "name": o["check"],
            "shortDescription": {"text": localized(o.get("title"), lang) or o["requirement"]},
            "help": _help(o, source, lang),
            "defaultConfiguration": {"level": LEVELS.get(o["level"], "warning")},
            "properties": {"level": o["level"], "profile": o["profile"], "check": o["check"],
                           "reference": o.get("reference", ""), "tags": [SECURITY, o["profile"]],
                           "security-severity": SECURITY_SEVERITY.get(o["level"], "5.0")}}
    if o.get("reference"):
        rule["fullDescription"] = {"text": reference_text(o["reference"], lang)}
    if _web(source.get("url")):
        rule["helpUri"] = source["url"]
    return rule


def _help(o: dict, source: dict, lang: str) -> dict:
    """What the requirement asks (its title and level), where it comes from (the profile's source and the
    requirement's reference) and how to fix it, as text and as Markdown."""
    words = HELP.get(lang, HELP["en"])
    title = localized(o.get("title"), lang) or o["requirement"]
    c = words["colon"]
    level = level_text(o["level"], lang) + (f" — {words[o['level']]}" if o["level"] in words else "")
    cited = ", ".join(x for x in (str(source.get("title") or ""), reference_text(o.get("reference"), lang)) if x)
    url = source["url"] if _web(source.get("url")) else ""
    parts = [(words["asks"], title), (words["level"], level), (words["source"], cited), (words["fix"], words["how"])]
    text = "\n".join(f"{name}{c} {value}" + (f" ({url})" if url and name == words["source"] else "")
                     for name, value in parts)
    linked = {words["source"]: f"[{cited or url}]({url})"} if url else {}
    markdown = "\n\n".join(f"**{name}**{c} {linked.get(name, value)}" for name, value in parts)
    return {"text": text, "markdown": markdown}


def _result(o: dict, rule_index: int, urls: dict) -> dict:
    return {"ruleId": o["requirement"], "ruleIndex": rule_index, "level": LEVELS.get(o["level"], "warning"),
            "message": {"text": o.get("summary") or o["status"]},
            "locations": [{"physicalLocation": {"artifactLocation": {
                "uri": urls.get(o["target"], f"vigie-target:{o['target']}")}}}],
            # one finding per requirement and target: what lets a dashboard follow it from run to run
            "partialFingerprints": {"vigieRequirementTarget/v1": f"{o['requirement']}@{o['target']}"},
            "properties": {"status": o["status"], "target": o["target"], "profile": o["profile"],
                           "evidence": o.get("evidence", []), "messages": o.get("messages", [])}}


def _web(url: object) -> bool:
    return isinstance(url, str) and url.startswith(("http://", "https://"))
