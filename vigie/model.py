"""Statuses, levels, outcomes and the verdict rules."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

# "skipped" is read in reports written before 0.2 only (as not verified); no check concludes with it now
STATUSES = ("passed", "failed", "error", "skipped", "not_applicable", "not_tested")
LEVELS = ("SHALL", "SHOULD", "MAY")
VERDICTS = ("conformant", "conformant-with-reservations", "non-conformant", "incomplete", "not_applicable")
# statuses that mean "not verified": nothing was concluded about the requirement
UNVERIFIED = ("error", "not_tested", "skipped")

# a run with nothing applicable verified nothing: a CI gate must not take it for a pass
EXIT_CODES = {"conformant": 0, "conformant-with-reservations": 0, "non-conformant": 1, "incomplete": 2,
              "not_applicable": 2}


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
    """The README's verdict table, in one place:
    non-conformant: a SHALL failed;
    incomplete: no SHALL failed, but one was not verified (error, not tested), or the run did not finish;
    conformant-with-reservations: every SHALL passed or does not apply, a SHOULD failed or was not verified;
    not_applicable: nothing was observed to pass, and every requirement was found not to apply;
    conformant: every SHALL and SHOULD passed or does not apply, and at least one requirement passed.
    MAY requirements are informative, but a profile is never conformant on nothing observed."""
    shall = [o for o in outcomes if o.level == "SHALL"]
    should = [o for o in outcomes if o.level == "SHOULD"]
    if any(o.status == "failed" for o in shall):
        return "non-conformant"
    if not complete or any(o.status in UNVERIFIED for o in shall):
        return "incomplete"
    if any(o.status == "failed" or o.status in UNVERIFIED for o in should):
        return "conformant-with-reservations"
    if not any(o.status == "passed" for o in outcomes):
        return "not_applicable" if all(o.status == "not_applicable" for o in outcomes) else "incomplete"
    return "conformant"


def counts(outcomes: list[Outcome]) -> dict:
    result = dict.fromkeys(STATUSES, 0)
    for o in outcomes:
        result[o.status] += 1
    return result


def overall_verdict(verdicts: list[str]) -> str:
    """The worst profile verdict, in the order non-conformant > incomplete > reservations > conformant; a
    profile that does not apply weighs nothing, unless no profile applies."""
    for v in ("non-conformant", "incomplete", "conformant-with-reservations", "conformant"):
        if v in verdicts:
            return v
    return "not_applicable" if verdicts else "incomplete"
