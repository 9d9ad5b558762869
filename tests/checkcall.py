"""Calling a check directly, as the plugin would: its outcome comes from vigie's outcome API only."""
from types import SimpleNamespace

import pytest

from vigie import checks
from vigie.plugin import unconcluded


class Outcome:
    """What the plugin's `outcome` fixture records."""

    def __init__(self):
        self.measurements, self.messages, self.files = {}, [], {}

    def measure(self, **values):
        self.measurements.update(values)

    def message(self, text):
        self.messages.append(text)

    def evidence(self, name, data):
        self.files[name] = data
        return name

    def link(self, path):
        pass


def conclude(check, *args, **kwargs) -> SimpleNamespace:
    """The outcome of one call of a check: status, summary, details (messages) and measurements."""
    checks.begin()
    excinfo = None
    try:
        check(*args, **kwargs)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - every other way a check ends is an outcome
        excinfo = pytest.ExceptionInfo.from_exception(exc)
    made = checks.end()
    if made is not None:
        return SimpleNamespace(status=made.status, summary=made.summary, details=made.details,
                               measurements=made.measurements)
    status, summary = unconcluded(excinfo)
    return SimpleNamespace(status=status, summary=summary, details=[], measurements={})
