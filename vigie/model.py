"""Statuses, levels, outcomes and the verdict rules."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

STATUSES = ("passed", "failed", "error", "skipped", "not_applicable", "not_tested")
LEVELS = ("SHALL", "SHOULD", "MAY")
VERDICTS = ("conformant", "conformant-with-reservations", "non-conformant", "incomplete")

EXIT_CODES = {"conformant": 0, "conformant-with-reservations": 0, "non-conformant": 1, "incomplete": 2}


@dataclass
class Outcome:
    requirement: str
    profile: str
    level: str
    target: str
    check: str
    status: str
    summary: str
    title: dict = field(default_factory=dict)
    reference: str = ""
    messages: list = field(default_factory=list)
    measurements: dict = field(default_factory=dict)
    evidence: list = field(default_factory=list)
    started: str | None = None
    duration_s: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Outcome:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def verdict(outcomes: list[Outcome], complete: bool = True) -> str:
    """A failed SHALL makes it non-conformant; otherwise an unverified SHALL (error, not tested)
    or an unfinished run makes it incomplete; a failed SHOULD only adds reservations."""
    shall = [o for o in outcomes if o.level == "SHALL"]
    if any(o.status == "failed" for o in shall):
        return "non-conformant"
    if not complete or any(o.status in ("error", "not_tested") for o in shall):
        return "incomplete"
    if any(o.status in ("failed", "error") for o in outcomes if o.level == "SHOULD"):
        return "conformant-with-reservations"
    return "conformant"


def counts(outcomes: list[Outcome]) -> dict:
    result = dict.fromkeys(STATUSES, 0)
    for o in outcomes:
        result[o.status] += 1
    return result


def overall_verdict(verdicts: list[str]) -> str:
    """The worst profile verdict, in the order non-conformant > incomplete > reservations > conformant."""
    for v in ("non-conformant", "incomplete", "conformant-with-reservations"):
        if v in verdicts:
            return v
    return "conformant"
