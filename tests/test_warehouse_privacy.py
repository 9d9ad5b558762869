"""eds-privacy on the warehouse's own engine (issue 18): identifier detection proven both ways on crafted
values (the identifier found, its look-alike left alone: UUIDs, disease eponyms, other numbers), every
NIR-shaped number of a value, names and identifiers in columns the CDM does not define, large columns
scanned by sample with the sample's size in the evidence; and vigie's own audit record never deciding a
vendor's requirement."""
import random
import uuid

import duckdb
import pytest
from checkcall import Outcome, conclude
from sqlalchemy.exc import OperationalError
from vigie.fixtures.warehouse import build_reference

from security import test_eds_privacy
from test_false_pass_warehouse import View, requirement


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return build_reference(f"duckdb:///{tmp_path_factory.mktemp('wh') / 'ref.duckdb'}", persons=60, seed=5)


# the audit log: vigie's own append ----------------------------------------------------------------------

def _poisoned(session):
    """The session as a timed-out statement left it: every write of vigie's own fails."""
    def refuse(sql, params=None):
        raise OperationalError(sql, params, Exception("Can't reconnect until invalid transaction is rolled back"))
    session.execute_unrecorded = refuse


@pytest.mark.partial_observation("privacy.audit-log")
def test_priv_audit_append_that_fails_leaves_the_audit_requirement_unverified(reference):
    """vigie's own append failing (the issue's poisoned session) says nothing of the warehouse: error with the
    reason, never failed; the same warehouse with a working session passes."""
    with View(reference) as w:
        _poisoned(w.session)
        outcome = Outcome()
        result = conclude(test_eds_privacy.test_audit_log_records_the_harness, requirement(wait_s=0), w, outcome)
    assert result.status == "error", (result.status, result.summary)
    assert "the harness's own append to the audit log failed" in result.summary
    assert "Can't reconnect" in result.summary
    with View(reference) as w:
        result = conclude(test_eds_privacy.test_audit_log_records_the_harness, requirement(wait_s=2), w, Outcome())
    assert result.status == "passed", result.summary


@pytest.mark.partial_observation("privacy.audit-log")
def test_priv_earlier_append_failures_are_not_a_violation(reference):
    """An append that failed earlier in the run (then the session recovered): the probe is recorded, the
    earlier gap is the harness's, so the requirement is not verified rather than failed."""
    with View(reference) as w:
        w.session.audit.append_errors, w.session.audit.last_error = 2, "statement timeout"
        result = conclude(test_eds_privacy.test_audit_log_records_the_harness, requirement(wait_s=2), w, Outcome())
    assert result.status == "error" and "(failures: 2; last: statement timeout)" in result.summary, result.summary
