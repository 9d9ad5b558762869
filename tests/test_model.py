"""Verdict rules: what the README's verdict table says is what the code computes."""
import re
from pathlib import Path

import pytest

from vigie.model import EXIT_CODES, VERDICTS, Outcome, counts, overall_verdict, verdict

README = Path(__file__).resolve().parent.parent / "README.md"


def o(level, status):
    return Outcome(requirement="R", profile="p", level=level, target="t", check="c", status=status, summary="")


@pytest.mark.parametrize("outcomes, complete, expected", [
    ([o("SHALL", "passed"), o("SHOULD", "passed")], True, "conformant"),
    ([o("SHALL", "passed"), o("SHOULD", "failed")], True, "conformant-with-reservations"),
    # a SHOULD not verified is a reservation, not a pass
    ([o("SHALL", "passed"), o("SHOULD", "not_tested")], True, "conformant-with-reservations"),
    ([o("SHALL", "passed"), o("SHOULD", "error")], True, "conformant-with-reservations"),
    ([o("SHALL", "passed"), o("MAY", "failed")], True, "conformant"),
    ([o("SHALL", "passed"), o("MAY", "error")], True, "conformant"),
    ([o("SHALL", "failed"), o("SHALL", "error")], True, "non-conformant"),
    ([o("SHALL", "error"), o("SHOULD", "failed")], True, "incomplete"),
    ([o("SHALL", "not_tested")], True, "incomplete"),
    # a skipped SHALL (reports of vigie before 0.2) was never verified
    ([o("SHALL", "passed"), o("SHALL", "skipped")], True, "incomplete"),
    ([o("SHALL", "passed"), o("SHALL", "not_applicable")], True, "conformant"),
    ([o("SHALL", "passed")], False, "incomplete"),
    ([o("SHALL", "failed")], False, "non-conformant"),
    # never conformant on nothing observed
    ([o("SHALL", "not_applicable"), o("SHOULD", "not_applicable")], True, "not_applicable"),
    ([o("SHALL", "not_applicable"), o("MAY", "error")], True, "incomplete"),
    ([], True, "not_applicable"),
    ([o("SHALL", "not_applicable")], False, "incomplete"),
])
def test_verdict(outcomes, complete, expected):
    assert verdict(outcomes, complete) == expected


def test_overall_is_the_worst():
    assert overall_verdict(["conformant", "incomplete", "conformant-with-reservations"]) == "incomplete"
    assert overall_verdict(["incomplete", "non-conformant"]) == "non-conformant"
    assert overall_verdict(["conformant"]) == "conformant"
    # a profile that does not apply weighs nothing, unless none applies
    assert overall_verdict(["not_applicable", "conformant"]) == "conformant"
    assert overall_verdict(["not_applicable", "not_applicable"]) == "not_applicable"
    assert EXIT_CODES["not_applicable"] != 0, "a run that verified nothing must not pass a CI gate"


def test_counts():
    assert counts([o("SHALL", "passed"), o("SHALL", "passed"), o("MAY", "error")])["passed"] == 2


def _readme_table(heading: str) -> dict:
    """The rows of the README table whose first column is `heading`: {name: meaning}."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"| {heading} | meaning |")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1]
    return rows


def test_readme_verdict_table_is_the_code():
    """Each verdict the code can give is in the README's table, and each row's rule holds in the code: the
    README is generated from nothing, so this is where the two meet."""
    table = _readme_table("verdict")
    assert set(table) == set(VERDICTS)
    # the rule each row states, as outcomes that must give exactly that verdict
    examples = {
        "conformant": [o("SHALL", "passed"), o("SHOULD", "passed"), o("SHOULD", "not_applicable")],
        "conformant-with-reservations": [o("SHALL", "passed"), o("SHOULD", "not_tested")],
        "non-conformant": [o("SHALL", "failed"), o("SHALL", "error")],
        "incomplete": [o("SHALL", "passed"), o("SHALL", "error")],
        "not_applicable": [o("SHALL", "not_applicable")],
    }
    for name, outcomes in examples.items():
        assert verdict(outcomes) == name
    assert re.search(r"SHOULD.*(not verified|could not be verified)", table["conformant-with-reservations"])
    assert "never" in table["conformant"] and "nothing observed" in table["conformant"]


def test_readme_status_table_is_the_code():
    from vigie.checks import CONCLUSIONS
    table = _readme_table("status")
    assert set(CONCLUSIONS) <= set(table), "every status a check can conclude is explained"
    assert "skipped" not in table or "0.2" in table["skipped"]
