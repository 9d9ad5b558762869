"""The corpus of false passes: every way vigie was once seen to say `passed` (or `conformant`) where nothing was
verified must now end in `failed`, `error` or `not_tested`. Routes of one area live beside it, in
tests/test_false_pass_<area>.py; this file holds the contract's own routes and the rule that every check has a
unit test that feeds it a missing or partial observation (marker `partial_observation`)."""
import ast
import json
import subprocess
import sys
from pathlib import Path

from checkcall import Outcome, conclude

from vigie.model import Outcome as Result
from vigie.model import verdict
from vigie.suite import CHECK_DIRS, ROOT

TESTS = Path(__file__).resolve().parent


def vigie(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "vigie", *args], capture_output=True, text=True, timeout=timeout,
                          check=False, env=env)


def suite_check_ids() -> set[str]:
    """Every check id the suite implements (the argument of each @check(...))."""
    ids = set()
    for folder in CHECK_DIRS:
        for path in (ROOT / folder).rglob("test_*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "check" and node.args \
                        and isinstance(node.args[0], ast.Constant):
                    ids.add(node.args[0].value)
    return ids


def partial_observation_ids() -> set[str]:
    """The check ids named by @pytest.mark.partial_observation(...) in the engine's tests."""
    ids = set()
    for path in TESTS.glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "partial_observation":
                ids |= {a.value for a in node.args if isinstance(a, ast.Constant)}
    return ids


def test_every_check_is_fed_a_partial_observation():
    """Each check has a unit test that gives it a missing or partial observation and finds it does not pass."""
    ids = suite_check_ids()
    assert len(ids) > 50, "the suite's check ids were not found"
    missing = sorted(ids - partial_observation_ids())
    assert not missing, f"checks with no partial-observation test: {missing}"


# --- route 1: a verdict that rests on an assert vanishes under -O ----------------------------------------

def test_a_check_that_concludes_nothing_is_an_error_not_a_pass():
    """What -O did to the bare asserts: the violation check gone, the check ran to its end. Ending is no
    conclusion."""
    from vigie.checks import check

    @check("x")
    def stripped(requirement, outcome):
        requirement.params.get("anything")   # the check observed, and its verdict was an assert, now gone

    result = conclude(stripped, requirement=type("R", (), {"params": {}})(), outcome=Outcome())
    assert result.status == "error" and "without a conclusion" in result.summary


def test_the_access_flaws_fail_under_pythonoptimize(tmp_path):
    """The reference system with --flaw bola --flaw no-auth under PYTHONOPTIMIZE=2: api-access not conformant."""
    import os
    out = tmp_path / "b"
    result = vigie("demo", "--flaw", "bola", "--flaw", "no-auth", "--profile", "api-access", "--out", str(out),
                   env={**os.environ, "PYTHONOPTIMIZE": "2"})
    report = json.loads((out / "report.json").read_text())
    failed = {o["requirement"] for o in report["outcomes"] if o["status"] == "failed"}
    assert {"API-ACCESS-01", "API-ACCESS-07"} <= failed, [(o["requirement"], o["status"], o["summary"])
                                                          for o in report["outcomes"]]
    assert report["verdict"] == "non-conformant" and result.returncode == 1


# --- route 3: what was not checked is never counted as satisfied -----------------------------------------

def _o(level, status):
    return Result(requirement="R", profile="p", level=level, target="t", check="c", status=status, summary="")


def test_an_unverified_requirement_never_makes_a_profile_conformant():
    assert verdict([_o("SHALL", "passed"), _o("SHALL", "not_tested")]) == "incomplete"
    assert verdict([_o("SHALL", "passed"), _o("SHOULD", "not_tested")]) == "conformant-with-reservations"
    assert verdict([_o("SHALL", "not_applicable")] * 11) == "not_applicable"


def test_missing_role_tokens_leave_api_access_incomplete(tmp_path):
    """Without the reader, patient and expired tokens, API-ACCESS-05/06/07 (BOLA included) are not tested and
    api-access is incomplete: a skipped SHALL was once counted as satisfied."""
    import tomllib

    from conftest import practice_process
    with practice_process(tmp_path / "state") as state:
        config = tomllib.loads((state / "vigie.toml").read_text())["targets"][0]
        out = tmp_path / "b"
        result = vigie("run", "--fhir", config["url"], "--ca-file", config["ca_file"], "--token", config["token"],
                       "--profile", "api-access", "--out", str(out))
    report = json.loads((out / "report.json").read_text())
    status = {o["requirement"]: o["status"] for o in report["outcomes"]}
    assert status["API-ACCESS-05"] == status["API-ACCESS-06"] == status["API-ACCESS-07"] == "not_tested", status
    assert report["verdict"] == "incomplete" and result.returncode == 2
