"""`vigie diff OLD NEW`: regressions, fixes, new and removed requirements; exit 1 on a regression."""
from __future__ import annotations

import copy
import json

import pytest
from reportbundle import copy_of, signed_bundle, vigie

from vigie.diff import diff_reports, render_text


def outcome(req, status, level="SHALL", target="t", profile="p"):
    return {"requirement": req, "profile": profile, "level": level, "target": target, "check": "c",
            "status": status, "summary": f"{req} {status}", "evidence": []}


def report(verdict, *outcomes, profile_verdict=None):
    return {"schema": "vigie-report/1", "run": {"id": verdict}, "targets": [],
            "profiles": [{"id": "p", "version": "1", "verdict": profile_verdict or verdict, "counts": {}}],
            "outcomes": list(outcomes), "verdict": verdict}


def test_regression_fix_new_removed():
    old = report("non-conformant", outcome("A", "passed"), outcome("B", "failed"), outcome("C", "passed"),
                 outcome("D", "passed"))
    new = report("non-conformant", outcome("A", "failed"), outcome("B", "passed"), outcome("C", "passed"),
                 outcome("E", "error"))
    d = diff_reports(old, new)
    assert [e["requirement"] for e in d["regressions"]] == ["A"]
    assert [e["requirement"] for e in d["fixed"]] == ["B"]
    assert [e["requirement"] for e in d["added"]] == ["E"] and [e["requirement"] for e in d["removed"]] == ["D"]
    assert d["regression"] is True
    text = render_text(d)
    assert "REGRESSED A@t (SHALL): passed -> failed" in text and "fixed     B@t" in text


def test_passed_to_error_is_a_regression_and_error_to_failed_is_a_change():
    d = diff_reports(report("incomplete", outcome("A", "passed"), outcome("B", "error")),
                     report("non-conformant", outcome("A", "error"), outcome("B", "failed")))
    assert [e["requirement"] for e in d["regressions"]] == ["A"]
    assert [e["requirement"] for e in d["changed"]] == ["B"]


def test_a_requirement_no_longer_verified_is_a_regression():
    # passed -> not tested leaves no failed outcome, but what was verified no longer is
    d = diff_reports(report("conformant", outcome("A", "passed")), report("incomplete", outcome("A", "not_tested")))
    assert [e["requirement"] for e in d["regressions"]] == ["A"] and d["verdict"]["worse"] and d["regression"]
    assert d["profiles"] == [{"id": "p", "old": "conformant", "new": "incomplete", "worse": True}]


def test_a_worse_verdict_alone_is_a_regression():
    # no outcome regressed (passed -> not applicable), but the profile no longer verifies anything
    d = diff_reports(report("conformant", outcome("A", "passed"), outcome("B", "not_applicable")),
                     report("not_applicable", outcome("A", "not_applicable"), outcome("B", "not_applicable")))
    assert not d["regressions"] and d["verdict"]["worse"] and d["regression"]


def test_verdicts_are_recomputed_from_the_outcomes():
    """A report edited to say conformant while its outcomes still fail is judged by its outcomes."""
    flawed = report("non-conformant", outcome("A", "failed"))
    tampered = report("conformant", outcome("A", "failed"))
    d = diff_reports(flawed, tampered)
    assert d["verdict"] == {"old": "non-conformant", "new": "non-conformant", "worse": False}
    assert d["warnings"] == ["new: profile p says conformant, its outcomes give non-conformant",
                             "new: the report says conformant, its outcomes give non-conformant"]
    assert "WARNING new: the report says conformant" in render_text(d)


def test_measurements_that_moved_are_shown():
    old, new = outcome("L", "passed"), outcome("L", "passed")
    old["measurements"], new["measurements"] = {"p95_ms": 78, "count": 100}, {"p95_ms": 950, "count": 104}
    d = diff_reports(report("conformant", old), report("conformant", new))
    assert {m["measurement"] for m in d["measurements"]} == {"p95_ms", "count"}
    text = render_text(d)
    assert "measured  L@t: p95_ms 78 -> 950" in text and "count 100" not in text   # a 4 % move stays in --json


def test_same_outcomes_no_regression():
    r = report("conformant-with-reservations", outcome("A", "passed"), outcome("B", "failed", "SHOULD"))
    d = diff_reports(r, copy.deepcopy(r))
    assert not any(d[k] for k in ("regressions", "fixed", "changed", "added", "removed", "profiles"))
    assert d["regression"] is False and "no regression" in render_text(d)


def test_better_verdict_is_no_regression():
    d = diff_reports(report("non-conformant", outcome("A", "failed")), report("conformant", outcome("A", "passed")))
    assert d["regression"] is False and d["fixed"]


# --- command line, on a real bundle ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    bundle = signed_bundle().path
    fixed = json.loads((bundle / "report.json").read_text())
    for o in fixed["outcomes"]:
        if o["status"] == "failed":
            o["status"], o["summary"] = "passed", "fixed"
    for p in fixed["profiles"]:
        p["verdict"] = "conformant"
    fixed["verdict"] = "conformant"
    path = tmp_path_factory.mktemp("diff") / "fixed.json"
    path.write_text(json.dumps(fixed))
    return bundle, path


def test_cli_regression_exits_1(real):
    bundle, fixed = real
    result = vigie("diff", str(fixed), str(bundle), "--unverified")
    assert result.returncode == 1, result.stderr
    assert "REGRESSED HTTP-01@fhir (SHALL): passed -> failed" in result.stdout
    # the verdicts are those the outcomes give (fixed.json's edited verdicts are reported, not believed)
    assert "-> non-conformant (worse)" in result.stdout and "WARNING old: the report says conformant" in result.stdout


def test_cli_fix_exits_0_and_json(real):
    bundle, fixed = real
    result = vigie("diff", str(bundle), str(fixed), "--json", "--unverified")
    assert result.returncode == 0, result.stderr
    d = json.loads(result.stdout)
    assert d["regression"] is False and {"HTTP-01", "HTTP-04"} <= {e["requirement"] for e in d["fixed"]}


def test_cli_identical_bundles_exit_0(real):
    bundle, _ = real
    result = vigie("diff", str(bundle), str(bundle))
    assert result.returncode == 0 and "no regression" in result.stdout
    assert "old: intact, signed by sha256:" in result.stdout


def test_cli_refuses_a_tampered_bundle_and_a_lone_report(real, tmp_path):
    """`vigie diff flawed tampered` once printed "non-conformant -> conformant ... no regression"."""
    bundle, fixed = real
    tampered = copy_of(bundle, tmp_path / "tampered")
    report_json = tampered / "report.json"
    report_json.write_text(report_json.read_text().replace('"verdict": "non-conformant"', '"verdict": "conformant"'))
    result = vigie("diff", str(bundle), str(tampered))
    assert result.returncode == 3 and "not intact" in result.stderr and "changed: report.json" in result.stderr
    forced = vigie("diff", str(bundle), str(tampered), "--unverified")
    assert "new: NOT INTACT" in forced.stdout and "verdict: non-conformant (unchanged)" in forced.stdout
    alone = vigie("diff", str(bundle), str(fixed))
    assert alone.returncode == 3 and "cannot be verified" in alone.stderr


@pytest.mark.parametrize("content, message", [
    (None, "no such bundle or report.json"),
    ("not json", "not a readable report.json"),
    ('{"outcomes": [{"requirement": 1}]}', "not a vigie report"),
])
def test_cli_bad_input_exits_3(real, tmp_path, content, message):
    bundle, _ = real
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    result = vigie("diff", str(bundle), str(bad), "--unverified")
    assert result.returncode == 3 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
