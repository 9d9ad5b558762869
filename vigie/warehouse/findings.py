"""What a warehouse rule found: violations as clear lines, measurements, capped samples."""
from __future__ import annotations

from dataclasses import dataclass, field

MESSAGE_CAP = 50


@dataclass
class Findings:
    checked: int = 0
    violations: list = field(default_factory=list)   # one line each, e.g. "person.person_id: 3 duplicate values"
    measurements: dict = field(default_factory=dict)
    samples: dict = field(default_factory=dict)      # "table.field" → up to SAMPLE_CAP values
    problems: list = field(default_factory=list)     # what could not be checked, and why
    unobserved: str = "nothing was observed"         # why nothing was checked, when nothing was
    seen: str = ""                                   # what a pass saw, when a count does not say it

    def violation(self, text: str) -> None:
        self.violations.append(text)

    def summary(self, what: str) -> str:
        if not self.violations:
            return self.seen or f"{self.checked} {what} checked, none violated"
        more = f" (and {len(self.violations) - 1} more)" if len(self.violations) > 1 else ""
        return self.violations[0] + more

    def report(self, outcome) -> None:
        """Puts the findings in the outcome being measured."""
        outcome.measure(checked=self.checked, violated=len(self.violations), **self.measurements)
        for line in self.violations[:MESSAGE_CAP]:
            outcome.message(line)
        if len(self.violations) > MESSAGE_CAP:
            outcome.message(f"... {len(self.violations) - MESSAGE_CAP} more in the measurements")
        for line in self.problems[:MESSAGE_CAP]:
            outcome.message(f"not checked: {line}")
        if self.samples:
            outcome.measure(samples=self.samples)

    def conclude(self, outcome, what: str) -> None:
        """Reports the findings, then ends the check: failed on a violation, error if something could not
        be checked or nothing was, passed otherwise."""
        from ..checks import failed, passed, undetermined
        self.report(outcome)
        if self.violations:
            failed(self.summary(what))
        if self.problems:
            undetermined(f"{len(self.problems)} {what} could not be checked: {self.problems[0]}")
        if not self.checked:
            undetermined(f"no {what} to check: {self.unobserved}")
        passed(self.summary(what))


def mask(value) -> str:
    """A sample of a personal identifier, shown without giving it away."""
    text = str(value)
    if len(text) <= 4:
        return "*" * len(text)
    return text[:2] + "*" * (len(text) - 4) + text[-2:]
