"""Verdict rules: SHALL failures make a profile non-conformant, unverified SHALLs make it incomplete."""
import pytest

from vigie.model import Outcome, counts, overall_verdict, verdict


def o(level, status):
    return Outcome(requirement="R", profile="p", level=level, target="t", check="c", status=status, summary="")


@pytest.mark.parametrize("outcomes, complete, expected", [
    ([o("SHALL", "passed"), o("SHOULD", "passed")], True, "conformant"),
    ([o("SHALL", "passed"), o("SHOULD", "failed")], True, "conformant-with-reservations"),
    ([o("SHALL", "passed"), o("MAY", "failed")], True, "conformant"),
    ([o("SHALL", "failed"), o("SHALL", "error")], True, "non-conformant"),
    ([o("SHALL", "error"), o("SHOULD", "failed")], True, "incomplete"),
    ([o("SHALL", "not_tested")], True, "incomplete"),
    ([o("SHALL", "passed"), o("SHALL", "not_applicable"), o("SHALL", "skipped")], True, "conformant"),
    ([o("SHALL", "passed")], False, "incomplete"),
    ([o("SHALL", "failed")], False, "non-conformant"),
])
def test_verdict(outcomes, complete, expected):
    assert verdict(outcomes, complete) == expected


def test_overall_is_the_worst():
    assert overall_verdict(["conformant", "incomplete", "conformant-with-reservations"]) == "incomplete"
    assert overall_verdict(["incomplete", "non-conformant"]) == "non-conformant"
    assert overall_verdict(["conformant"]) == "conformant"


def test_counts():
    assert counts([o("SHALL", "passed"), o("SHALL", "passed"), o("MAY", "error")])["passed"] == 2
