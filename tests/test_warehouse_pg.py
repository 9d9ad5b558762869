"""The warehouse engine on the machine's real PostgreSQL: the reference warehouse with its read-only role
and audit function, identifiers found by PostgreSQL's regular expressions, read-only sessions, no password
in the bundle. Each test builds its own schema and role (unique names) and drops them."""
import json
import subprocess
import sys
import time
import uuid

import pytest
from test_warehouse import CLEAN, EXPECTED, TEXTS
from vigie.fixtures.warehouse import build_reference
from vigie.fixtures.warehouse.postgres import connect, drop
from vigie.fixtures.warehouse.testing import POSTGRES, postgres_reachable

from vigie.errors import ObservationError
from vigie.warehouse import privacy
from vigie.warehouse.catalogue import open_warehouse
from vigie.warehouse.measures import measures_of


@pytest.fixture(scope="module")
def pg():
    why = postgres_reachable()
    if why:   # CI starts PostgreSQL (.ci/run): its absence is a failure, not a skip
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES}: {why}")
    return POSTGRES


@pytest.fixture
def schema_name(pg):
    name = f"vigie_t_{uuid.uuid4().hex[:10]}"
    yield name
    drop(pg, name)


def vigie(*args):
    return subprocess.run([sys.executable, "-m", "vigie", *args], capture_output=True, text=True, timeout=300,
                          check=False)


def test_reference_warehouse_in_postgres_is_conformant(pg, schema_name, tmp_path):
    reader = build_reference(f"{pg}?schema={schema_name}", persons=600, seed=3)
    assert reader.startswith(f"postgresql://{schema_name}_reader@") and f"schema={schema_name}" in reader
    # trust authentication ignores the password: it must still never reach the bundle
    with_password = reader.replace(f"{schema_name}_reader@", f"{schema_name}_reader:pw-{schema_name}@")
    out = tmp_path / "bundle"
    result = vigie("run", "--warehouse", with_password, "--out", str(out))
    report = json.loads((out / "report.json").read_text())
    # eds-privacy's attestations (SHOULD) are not verified by software: reservations, never a plain pass
    assert report["verdict"] == "conformant-with-reservations" and result.returncode == 0, result.stdout[-3000:]
    assert {p["id"]: p["verdict"] for p in report["profiles"] if p["verdict"] != "conformant"} == \
        {"eds-privacy": "conformant-with-reservations"}
    by_id = {o["requirement"]: o for o in report["outcomes"]}
    assert by_id["EDS-PRIV-09"]["status"] == by_id["EDS-PRIV-10"]["status"] == "passed"
    assert by_id["EDS-PRIV-08"]["measurements"]["recorded_user"] == f"{schema_name}_reader"
    text = "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
    assert f"pw-{schema_name}" not in text + result.stdout + result.stderr
    with connect(pg) as con:
        users = con.execute(f"SELECT DISTINCT db_user FROM {schema_name}.audit_log").fetchall()
        logged = con.execute(f"SELECT COUNT(*) FROM {schema_name}.audit_log").fetchone()[0]
    assert {u[0] for u in users} == {"etl", f"{schema_name}_reader"} and logged > 100


def test_session_is_read_only_even_for_a_writable_role(pg, schema_name):
    reader = build_reference(f"{pg}?schema={schema_name}", persons=30, flaws=["writable-role"])
    w = open_warehouse(reader)
    try:
        with pytest.raises(ObservationError, match="read-only transaction"):
            w.session.rows(f"DELETE FROM {schema_name}.person")
        findings = privacy.least_privilege(measures_of(w.session, w.catalogue), {})
        assert findings.violations and "may write" in findings.violations[0]
    finally:
        w.close()
    with connect(pg) as con:
        assert con.execute(f"SELECT COUNT(*) FROM {schema_name}.person").fetchone()[0] == 30


def test_identifiers_with_postgres_regular_expressions(pg, schema_name):
    with connect(pg) as con:
        con.execute(f"CREATE SCHEMA {schema_name}")
        con.execute(f"CREATE TABLE {schema_name}.note (note_id INTEGER, note_text TEXT)")
        with con.cursor() as cur:
            cur.executemany(f"INSERT INTO {schema_name}.note VALUES (%s, %s)",
                            list(enumerate([*TEXTS.values(), *CLEAN])))
    w = open_warehouse(f"{pg}?schema={schema_name}")
    try:
        m = measures_of(w.session, w.catalogue)
        for kind, n in EXPECTED.items():
            findings = privacy.identifiers(m, {"kind": kind})
            assert findings.measurements["columns_with_identifiers"] == {"note.note_text": n}, kind
            assert all("*" in s for s in findings.samples["note.note_text"]), kind
    finally:
        w.close()


def _running(pg, marker):
    """Statements of other sessions still running on the server whose text holds the marker."""
    with connect(pg) as con:
        return con.execute("SELECT pid, state, query FROM pg_stat_activity WHERE state <> 'idle' "
                           "AND pid <> pg_backend_pid() AND position(%s in query) > 0", (marker,)).fetchall()


def test_a_timeout_stops_the_statement_on_the_server_and_the_session_recovers(pg):
    from vigie.limits import Deadline, Limits, TimeLimitExceeded, activate
    from vigie.warehouse.session import Session, StatementTimeout
    activate(Limits(statement_timeout_s=0.5, engine_threads=1))   # as [limits] in vigie.toml sets them
    try:
        session = Session(pg).connect()
    finally:
        activate(Limits())
    try:
        assert session.rows("SHOW max_parallel_workers_per_gather") == [("0",)]
        # the statement limit: PostgreSQL stops the statement itself
        marker = f"vigie-{uuid.uuid4().hex}"
        with pytest.raises(StatementTimeout, match="stopped after .* s, the statement time limit of 0.5 s"):
            session.rows(f"SELECT pg_sleep(30) /* {marker} */")
        assert _running(pg, marker) == [] and session.rows("SELECT 1") == [(1,)]
        # a deadline of the run raised while the query waits: cancelled on the server, a new connection
        session.statement_timeout_s = 60
        session.connect()
        marker = f"vigie-{uuid.uuid4().hex}"
        with pytest.raises(TimeLimitExceeded), Deadline(0.5, TimeLimitExceeded("check deadline")):
            session.rows(f"SELECT pg_sleep(30) /* {marker} */")
        deadline = time.monotonic() + 5
        while _running(pg, marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _running(pg, marker) == []
        assert session.rows("SELECT 2") == [(2,)]
    finally:
        session.close()


def test_a_dq_check_that_times_out_is_an_error_and_the_next_checks_run(pg, schema_name):
    from vigie.warehouse import dq
    reader = build_reference(f"{pg}?schema={schema_name}", persons=30, seed=3)
    with connect(pg) as con:   # the note table behind a view that takes 3 s to read
        con.execute(f"ALTER TABLE {schema_name}.note RENAME TO note_data")
        con.execute(f"CREATE VIEW {schema_name}.note AS SELECT n.* FROM {schema_name}.note_data n "
                    "CROSS JOIN (SELECT pg_sleep(3)) AS slow")
        con.execute(f"GRANT SELECT ON {schema_name}.note TO {schema_name}_reader")
    w = open_warehouse(reader)
    try:
        w.session.statement_timeout_s = 0.5
        w.session.connect()
        results = {r.check.id: r for r in dq.run_checks(measures_of(w.session, w.catalogue))}
        note = [r for r in results.values() if r.check.table == "note" and r.check.name not in ("cdmTable", "cdmField")]
        assert note and all(r.status == "error" and "statement time limit of 0.5 s" in r.reason for r in note)
        assert results["field_isrequired_person_person_id"].status == "passed"
        assert results["field_isforeignkey_visit_occurrence_person_id"].status == "passed"
        assert _running(pg, "pg_sleep") == [] and w.session.rows("SELECT 1") == [(1,)]
        w.session.flush_audit()
        assert w.session.audit.append_errors == 0
    finally:
        w.close()


def test_statement_timeout_from_vigie_toml_ends_only_the_slow_checks(pg, schema_name, tmp_path):
    """`vigie run` with [limits] statement_timeout: the checks of a table that takes too long to read end as
    error, the statement is stopped on the server, and every later check runs on a usable session."""
    reader = build_reference(f"{pg}?schema={schema_name}", persons=30, seed=3)
    with connect(pg) as con:
        con.execute(f"ALTER TABLE {schema_name}.note RENAME TO note_data")
        con.execute(f"CREATE VIEW {schema_name}.note AS SELECT n.* FROM {schema_name}.note_data n "
                    "CROSS JOIN (SELECT pg_sleep(3)) AS slow")
        con.execute(f"GRANT SELECT ON {schema_name}.note TO {schema_name}_reader")
    config = tmp_path / "vigie.toml"
    config.write_text(f"[[targets]]\nkind = 'warehouse'\nurl = '{reader}'\n\n[limits]\nstatement_timeout = 0.5\n")
    out = tmp_path / "bundle"
    result = vigie("run", "--config", str(config), "--profile", "omop-dq", "--out", str(out))
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["limits"]["statement_timeout_s"] == 0.5, result.stderr[-2000:]
    by_id = {o["requirement"]: o for o in report["outcomes"]}
    export = json.loads((out / "evidence" / "omop-dq" / "warehouse.json").read_text())
    timed_out = [c for c in export["CheckResults"] if c["isError"] and "statement time limit of 0.5 s" in c["error"]]
    assert timed_out and {c["cdmTableName"] for c in timed_out} == {"NOTE"}
    assert by_id["OMOP-DQ-06"]["status"] == "error" and "statement time limit" in by_id["OMOP-DQ-06"]["summary"]
    assert by_id["OMOP-DQ-24"]["status"] in ("passed", "not_applicable"), by_id["OMOP-DQ-24"]["summary"]
    assert by_id["OMOP-DQ-04"]["status"] == "passed"
    assert _running(pg, "pg_sleep") == []
