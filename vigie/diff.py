"""`vigie diff OLD NEW`: what changed between two runs, requirement by requirement and verdict by verdict,
for a CI job that must stop a release when something that passed no longer does."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from .display import strip_control
from .errors import VigieError
from .model import VERDICTS, overall_verdict, verdict

# a requirement that no longer passes regressed, whether it now fails or is no longer verified
BAD = ("failed", "error", "not_tested", "skipped")
GOOD = ("passed", "not_applicable")
# the order of verdicts from best to worst (a profile found not to apply verifies nothing)
VERDICT_RANK = {"conformant": 0, "conformant-with-reservations": 1, "not_applicable": 2, "incomplete": 3,
                "non-conformant": 4}
if set(VERDICT_RANK) != set(VERDICTS):   # a verdict added to the model must be ranked here
    raise ImportError("vigie.diff: VERDICT_RANK does not rank every verdict of vigie.model")


def load_for_diff(path: Path, unverified: bool = False) -> dict:
    """A report from a bundle folder (whose integrity is checked first) or, with `unverified`, a report.json
    file or a bundle that is not intact; a bad input is a usage error. The report's `_verification` says what
    was checked."""
    from .signing import verify
    path = Path(path)
    file = path / "report.json" if path.is_dir() else path
    if path.is_dir():
        result = verify(path)
        if result.problems and not unverified:
            raise VigieError(f"{path}: the bundle is not intact ({len(result.problems)} problem(s), e.g. "
                             f"{result.problems[0]}): run `vigie verify`, or give --unverified to compare anyway")
        checked = ("intact, signed by " + result.signer if result.signed else "intact, not signed") \
            if result.intact else "NOT INTACT"
    elif path.exists() and not unverified:
        raise VigieError(f"{path}: a report.json alone cannot be verified: give its bundle folder, or "
                         "--unverified to compare it anyway")
    else:
        checked = "unverified (a report.json alone)"
    try:
        report = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VigieError(f"{path}: no such bundle or report.json") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise VigieError(f"{file}: not a readable report.json ({type(exc).__name__})") from None
    try:
        for o in report["outcomes"]:
            if not all(isinstance(o[k], str) for k in ("requirement", "target", "status", "profile", "level")):
                raise TypeError
        if not isinstance(report["profiles"], list) or not isinstance(report["verdict"], str):
            raise TypeError
    except (KeyError, TypeError):
        raise VigieError(f"{file}: not a vigie report (outcomes, profiles and verdict expected)") from None
    report["_verification"] = checked
    return report


def recomputed_verdicts(report: dict) -> tuple[dict, str]:
    """The verdicts that follow from the report's outcomes (per profile id, and overall), computed by the same
    rules as a run: a diff judges what was observed, not what a report says of itself."""
    complete = (report.get("run") or {}).get("complete", True) is not False
    per_profile = {}
    for p in report["profiles"]:
        pid = p.get("id") if isinstance(p, dict) else None
        mine = [SimpleNamespace(level=o["level"], status=o["status"]) for o in report["outcomes"]
                if o["profile"] == pid]
        per_profile[pid] = verdict(mine, complete)
    return per_profile, overall_verdict(list(per_profile.values()))


def _stated_mismatches(report: dict, side: str) -> list[str]:
    profiles, overall = recomputed_verdicts(report)
    found = [f"{side}: profile {p.get('id')} says {p.get('verdict')}, its outcomes give {profiles[p.get('id')]}"
             for p in report["profiles"] if isinstance(p, dict) and p.get("verdict") != profiles[p.get("id")]]
    if report["verdict"] != overall:
        found.append(f"{side}: the report says {report['verdict']}, its outcomes give {overall}")
    return found


def _measurement_changes(before: dict, after: dict) -> list[dict]:
    """Numeric measurements of the same outcome that changed (p95 78 -> 950 ms while still passing)."""
    changes = []
    for key in sorted(before.keys() & after.keys()):
        old, new = before[key].get("measurements") or {}, after[key].get("measurements") or {}
        for name in sorted(old.keys() & new.keys()):
            a, b = old[name], new[name]
            if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool) \
                    and not isinstance(b, bool) and a != b:
                changes.append({"requirement": key[0], "target": key[1], "measurement": name, "old": a, "new": b,
                                "relative": round((b - a) / abs(a), 3) if a else None})
    return changes


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
    (old_profiles, old_verdict), (new_profiles, new_verdict) = recomputed_verdicts(old), recomputed_verdicts(new)
    result = {"old_run": old.get("run", {}).get("id"), "new_run": new.get("run", {}).get("id"),
              "verification": {"old": old.get("_verification"), "new": new.get("_verification")},
              "warnings": _stated_mismatches(old, "old") + _stated_mismatches(new, "new"),
              "verdict": {"old": old_verdict, "new": new_verdict, "worse": _worse(old_verdict, new_verdict)},
              "profiles": [], "regressions": [], "fixed": [], "changed": [], "added": [], "removed": [],
              "measurements": _measurement_changes(before, after)}
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
    for pid in sorted(old_profiles.keys() | new_profiles.keys()):
        o, n = old_profiles.get(pid), new_profiles.get(pid)
        if o != n:
            result["profiles"].append({"id": pid, "old": o, "new": n, "worse": o is not None and _worse(o, n)})
    result["regression"] = bool(result["regressions"] or result["verdict"]["worse"]
                                or any(p["worse"] for p in result["profiles"]))
    return result


# a measurement shown in the text when it moved by at least this share (all are in --json)
SHOWN_CHANGE = 0.25


def render_text(result: dict) -> str:
    v = result["verdict"]
    lines = [f"{side}: {what}" for side, what in result["verification"].items() if what]
    lines += [f"WARNING {w}" for w in result["warnings"]]
    lines.append(f"verdict: {v['old']} -> {v['new']}" + (" (worse)" if v["worse"] else "")
                 if v["old"] != v["new"] else f"verdict: {v['new']} (unchanged)")
    for p in result["profiles"]:
        lines.append(f"profile {p['id']}: {p['old'] or '(absent)'} -> {p['new'] or '(absent)'}"
                     + (" (worse)" if p["worse"] else ""))
    sections = (("regressions", "REGRESSED"), ("fixed", "fixed"), ("changed", "changed"),
                ("added", "new"), ("removed", "removed"))
    for key, label in sections:
        for e in result[key]:
            lines.append(f"{label:9} {e['requirement']}@{e['target']} ({e['level']}): "
                         f"{e['old'] or '-'} -> {e['new'] or '-'}  {e['summary']}".rstrip())
    for m in result["measurements"]:
        if m["relative"] is None or abs(m["relative"]) >= SHOWN_CHANGE:
            lines.append(f"measured  {m['requirement']}@{m['target']}: {m['measurement']} {m['old']:g} -> "
                         f"{m['new']:g}")
    counts = ", ".join(f"{len(result[k])} {label.lower()}" for k, label in sections)
    lines.append(f"{counts}; " + ("REGRESSION" if result["regression"] else "no regression"))
    # summaries quote what targets sent: nothing of it may drive the reader's terminal
    return "\n".join(strip_control(line) for line in lines)
