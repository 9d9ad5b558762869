"""The outcome API: what a check imports to name its check id and to conclude.

A check concludes only by calling one of `passed`, `failed`, `undetermined`, `not_applicable` or
`not_tested`. Each records the conclusion for the running check, then ends it. A check that returns without
concluding ends as `error`, and so does a bare `assert`, whatever Python's `-O` or pytest's assertion
rewriting do: no outcome depends on how an exception was raised or where.

`passed` is a claim to a regulator that the requirement was observed and met: call it only after the check
has seen what it needs (its preconditions), and say what was seen in the summary.
"""
from __future__ import annotations

from typing import NoReturn

import pytest

# the statuses a check may conclude with (see vigie.model for their meanings)
CONCLUSIONS = ("passed", "failed", "error", "not_applicable", "not_tested")


class Concluded(pytest.fail.Exception):
    """Ends a check once it has concluded. One of pytest's outcome exceptions, so that pytest still tidies
    the fixtures it unwinds, and a BaseException, so that a check's own `except Exception` cannot swallow
    it. The conclusion is also kept by `record`, and the first one made is the one that counts."""

    def __init__(self, status: str, summary: str, details=(), measurements=None):
        super().__init__(summary, pytrace=False)
        self.status, self.summary = status, summary
        self.details = [str(d) for d in details]
        self.measurements = dict(measurements or {})


# the conclusions made by the check that runs now (the plugin opens and reads it around each check)
_made: list[Concluded] | None = None


def begin() -> None:
    global _made
    _made = []


def end() -> Concluded | None:
    """The first conclusion the running check made, if any."""
    global _made
    made, _made = _made, None
    return made[0] if made else None


def withdraw(conclusion: Concluded) -> None:
    """Forgets a conclusion made by code that must not conclude (an observation shared by many checks)."""
    if _made is not None and conclusion in _made:
        _made.remove(conclusion)


def _conclude(status: str, summary: str, details=(), measurements=None) -> NoReturn:
    conclusion = Concluded(status, str(summary), details, measurements)
    if _made is not None:
        _made.append(conclusion)
    raise conclusion


def passed(summary: str, **measurements) -> NoReturn:
    """Observed and compliant: the summary says what was seen."""
    _conclude("passed", summary, (), measurements)


def failed(summary: str, *details: str, **measurements) -> NoReturn:
    """Observed a violation: the summary names it, each detail becomes a message of the outcome."""
    _conclude("failed", summary, details, measurements)


def undetermined(reason: str, *details: str, **measurements) -> NoReturn:
    """Could not observe what the requirement needs (outcome `error`): the reason says what was missing."""
    text = str(reason)
    _conclude("error", text if text.startswith("undetermined") else f"undetermined: {text}", details,
              measurements)


def not_applicable(reason: str, **measurements) -> NoReturn:
    """An observed reason that the requirement does not concern this target (the reason says what)."""
    _conclude("not_applicable", reason, (), measurements)


def not_tested(reason: str, **measurements) -> NoReturn:
    """Not checked, for a reason on vigie's side (missing configuration, such as a token role)."""
    _conclude("not_tested", reason, (), measurements)


def check(check_id: str, writes=False):
    """Marks a test function as the implementation of a check id. `writes`: the check creates or changes
    data on the target (True, or a predicate of the requirement's params): with --read-only it is not run
    and its requirements are not_tested."""
    return pytest.mark.vigie_check(check_id, writes=writes)
