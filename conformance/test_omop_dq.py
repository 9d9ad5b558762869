"""OHDSI DataQualityDashboard check types, run as SQL in the warehouse; the whole set is exported once in
DataQualityDashboard's JSON layout (evidence/omop-dq/<target>.json), which its viewer reads."""
import time
from datetime import UTC, datetime

from vigie.checks import check, failed, not_applicable, passed, undetermined
from vigie.errors import ObservationError
from vigie.limits import Deadline
from vigie.warehouse import dq

FAILURES_SHOWN = 50


def _results(warehouse, outcome, exclude):
    """Every check of the catalogue, run once per run; the export is written by the first requirement. Each
    DataQualityDashboard check has its own limit (the statement's, [limits] statement_timeout: one that
    exceeds it is that check's error), so the whole set does not count against the time limit of the
    requirement that happens to run it first; the run's time limit still holds."""
    memo = warehouse.session.memo
    key = ("dq-export", tuple(exclude))
    if key not in memo:
        started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        clock = time.monotonic()
        with Deadline.suspended("check"):
            results = dq.run_checks(warehouse.measures, exclude)
            export = dq.dqd_export(warehouse.measures, results, started, time.monotonic() - clock)
            exports = memo.setdefault("dq-exports", [])
            suffix = f"-{len(exports)}" if exports else ""
            exports.append(key)
            memo[key] = (results, outcome.evidence(f"omop-dq/{warehouse.target_id}{suffix}.json", export))
    results, path = memo[key]
    outcome.link(path)
    return results


@check("omop.dq")
def test_dq_check_type(requirement, warehouse, outcome):
    name = requirement.params["check"]
    if name not in dq.TYPES and name not in dq.SUPERSEDED:
        raise ObservationError(f"unknown DataQualityDashboard check type '{name}'")
    exclude = requirement.params.get("exclude_tables", list(dq.VOCABULARY_TABLES))
    mine = [r for r in _results(warehouse, outcome, exclude) if r.check.name == name]
    failed_checks = [r for r in mine if r.status == "failed"]
    errors = [r for r in mine if r.status == "error"]
    applicable = [r for r in mine if r.status != "not_applicable"]
    outcome.measure(check_type=name, checks=len(mine), passed=sum(r.status == "passed" for r in mine),
                    failed=len(failed_checks), errors=len(errors), not_applicable=len(mine) - len(applicable),
                    failures=[{"check_id": r.check.id, "violated": r.violated, "of": r.denominator,
                               "pct": round(100 * r.pct, 2), "threshold": r.check.threshold}
                              for r in failed_checks[:FAILURES_SHOWN]])
    for r in failed_checks[:FAILURES_SHOWN]:
        outcome.message(f"{r.check.id}: {r.violated} of {r.denominator} ({100 * r.pct:.2f} % > "
                        f"{r.check.threshold:g} %): {r.check.describe()}")
    for r in errors[:FAILURES_SHOWN]:
        outcome.message(f"{r.check.id}: error: {r.reason}")
    if not mine:
        undetermined(f"no {name} check to run: every table of its catalogue is left out")
    if not applicable:
        _none_applies(name, mine)
    if failed_checks:
        first = failed_checks[0]
        failed(f"{len(failed_checks)} of {len(applicable)} {name} checks fail, e.g. {first.check.id}: "
               f"{first.violated} of {first.denominator} rows ({100 * first.pct:.2f} % > "
               f"{first.check.threshold:g} %)")
    if errors:
        undetermined(f"{len(errors)} {name} checks could not run, e.g. {errors[0].check.id}: {errors[0].reason}")
    passed(f"{len(applicable)} {name} checks pass" + _left_out(mine))


def _left_out(results) -> str:
    """What the passing checks leave out, so that a pass says on what it rests."""
    na = [r for r in results if r.status == "not_applicable"]
    empty = sum(r.ground == "empty" for r in na)
    return (f" ({len(na)} not applicable" + (f", {empty} of them on tables without rows" if empty else "") + ")"
            if na else "")


def _none_applies(name, results):
    """No check of the type applies. A table without rows is no evidence of quality: the requirement is not
    applicable only when rows were examined and none concerned it, or when the tables and fields it concerns
    are all absent (optional ones, reported by cdmTable and cdmField); otherwise it is not verified."""
    grounds = {r.ground for r in results}
    if "empty" in grounds and "rows" not in grounds:
        undetermined(f"none of the {len(results)} {name} checks has rows to examine: "
                     + _reasons(r for r in results if r.ground == "empty"))
    not_applicable(f"none of the {len(results)} {name} checks applies: " + _reasons(results))


def _reasons(results) -> str:
    reasons = sorted({r.reason for r in results})
    return "; ".join(reasons[:3]) + (f" (and {len(reasons) - 3} other reasons)" if len(reasons) > 3 else "")
