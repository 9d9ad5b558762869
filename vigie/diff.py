"""`vigie diff OLD NEW`: what changed between two runs, requirement by requirement and verdict by verdict,
for a CI job that must stop a release when something that passed no longer does."""
from __future__ import annotations

import json
from pathlib import Path

from .errors import VigieError
from .model import VERDICTS

# a requirement that no longer passes regressed, whether it now fails or is no longer verified
BAD = ("failed", "error", "not_tested", "skipped")
GOOD = ("passed", "not_applicable")
# the order of verdicts from best to worst (a profile found not to apply verifies nothing)
VERDICT_RANK = {"conformant": 0, "conformant-with-reservations": 1, "not_applicable": 2, "incomplete": 3,
                "non-conformant": 4}
if set(VERDICT_RANK) != set(VERDICTS):   # a verdict added to the model must be ranked here
    raise ImportError("vigie.diff: VERDICT_RANK does not rank every verdict of vigie.model")


def load_for_diff(path: Path) -> dict:
    """A report from a bundle folder or a report.json file; a bad input is a usage error."""
    path = Path(path)
    file = path / "report.json" if path.is_dir() else path
    try:
        report = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VigieError(f"{path}: no such bundle or report.json") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise VigieError(f"{file}: not a readable report.json ({type(exc).__name__})") from None
    try:
        for o in report["outcomes"]:
            if not all(isinstance(o[k], str) for k in ("requirement", "target", "status", "profile")):
                raise TypeError
        if not isinstance(report["profiles"], list) or not isinstance(report["verdict"], str):
            raise TypeError
    except (KeyError, TypeError):
        raise VigieError(f"{file}: not a vigie report (outcomes, profiles and verdict expected)") from None
    return report


def _worse(old: str | None, new: str | None) -> bool:
    """An unknown or missing new verdict counts as the worst: a diff must not hide a broken run."""
    return old in VERDICT_RANK and VERDICT_RANK.get(new, max(VERDICT_RANK.values())) > VERDICT_RANK[old]


def _entry(key, old, new) -> dict:
    o, n = old.get(key), new.get(key)
    ref = n or o
    return {"requirement": key[0], "target": key[1], "profile": ref["profile"], "level": ref.get("level"),
            "old": o["status"] if o else None, "new": n["status"] if n else None,
            "summary": (n or o).get("summary", "")}


def diff_reports(old: dict, new: dict) -> dict:
    before = {(o["requirement"], o["target"]): o for o in old["outcomes"]}
    after = {(o["requirement"], o["target"]): o for o in new["outcomes"]}
    result = {"old_run": old.get("run", {}).get("id"), "new_run": new.get("run", {}).get("id"),
              "verdict": {"old": old["verdict"], "new": new["verdict"],
                          "worse": _worse(old["verdict"], new["verdict"])},
              "profiles": [], "regressions": [], "fixed": [], "changed": [], "added": [], "removed": []}
    for key in sorted(before.keys() | after.keys()):
        entry = _entry(key, before, after)
        if key not in before:
            result["added"].append(entry)
        elif key not in after:
            result["removed"].append(entry)
        elif entry["new"] in BAD and entry["old"] not in BAD:
            result["regressions"].append(entry)
        elif entry["old"] in BAD and entry["new"] in GOOD:
            result["fixed"].append(entry)
        elif entry["old"] != entry["new"]:
            result["changed"].append(entry)
    old_profiles = {p["id"]: p.get("verdict") for p in old["profiles"]}
    new_profiles = {p["id"]: p.get("verdict") for p in new["profiles"]}
    for pid in sorted(old_profiles.keys() | new_profiles.keys()):
        o, n = old_profiles.get(pid), new_profiles.get(pid)
        if o != n:
            result["profiles"].append({"id": pid, "old": o, "new": n, "worse": o is not None and _worse(o, n)})
    result["regression"] = bool(result["regressions"] or result["verdict"]["worse"]
                                or any(p["worse"] for p in result["profiles"]))
    return result


def render_text(result: dict) -> str:
    v = result["verdict"]
    lines = [f"verdict: {v['old']} -> {v['new']}" + (" (worse)" if v["worse"] else "")
             if v["old"] != v["new"] else f"verdict: {v['new']} (unchanged)"]
    for p in result["profiles"]:
        lines.append(f"profile {p['id']}: {p['old'] or '(absent)'} -> {p['new'] or '(absent)'}"
                     + (" (worse)" if p["worse"] else ""))
    sections = (("regressions", "REGRESSED"), ("fixed", "fixed"), ("changed", "changed"),
                ("added", "new"), ("removed", "removed"))
    for key, label in sections:
        for e in result[key]:
            lines.append(f"{label:9} {e['requirement']}@{e['target']} ({e['level']}): "
                         f"{e['old'] or '-'} -> {e['new'] or '-'}  {e['summary']}".rstrip())
    counts = ", ".join(f"{len(result[k])} {label.lower()}" for k, label in sections)
    lines.append(f"{counts}; " + ("REGRESSION" if result["regression"] else "no regression"))
    return "\n".join(lines)
