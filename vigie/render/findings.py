"""The findings a reviewer reads first: the outcomes that failed or could not be verified, most serious
first. One ordering for the HTML and the PDF, so that both open on the same list."""
from __future__ import annotations

# failed, then what could not be verified (error; skipped in reports before 0.2; not_tested)
FINDING_STATUSES = ("failed", "error", "skipped", "not_tested")
LEVEL_ORDER = ("SHALL", "SHOULD", "MAY")
REASON_MAX_CHARS = 200


def is_finding(outcome: dict) -> bool:
    return outcome.get("status") in FINDING_STATUSES


def findings(outcomes: list[dict]) -> list[dict]:
    """The findings of `outcomes`, in the order of their weight on the verdict: a SHALL failure makes a
    profile non-conformant, an unverified SHALL leaves it incomplete, then SHOULD (reservations), then MAY.
    Outcomes of one rank keep the report's order (profile by profile)."""
    return sorted((o for o in outcomes if is_finding(o)), key=lambda o: rank(o["status"], o.get("level")))


def rank(status: str, level: object) -> tuple[int, int]:
    """The sort key of a finding of `status` at `level` (an unknown level after MAY)."""
    level_rank = LEVEL_ORDER.index(level) if level in LEVEL_ORDER else len(LEVEL_ORDER)
    return level_rank, FINDING_STATUSES.index(status)


def one_line(text: object, limit: int = REASON_MAX_CHARS) -> str:
    """A reason on one line, cut at a word near `limit` (the whole text stays in the outcome's details)."""
    line = " ".join(str(text or "").split())
    if len(line) <= limit:
        return line
    cut = line[:limit].rsplit(" ", 1)[0] if " " in line[:limit] else line[:limit]
    return cut.rstrip(",;:") + " …"
