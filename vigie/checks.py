"""What a check imports: the marker that names its check id, and not_applicable()."""
from __future__ import annotations

import pytest


class NotApplicable(Exception):
    """The requirement does not apply to this target (the outcome is not_applicable)."""


def not_applicable(reason: str):
    raise NotApplicable(reason)


def check(check_id: str):
    """Marks a test function as the implementation of a check id."""
    return pytest.mark.vigie_check(check_id)
