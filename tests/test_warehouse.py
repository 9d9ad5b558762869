"""The warehouse engine on DuckDB and SQLite: the CDM catalogue against the official specification, URLs
and secrets, the reference warehouse, identifier detection proven both ways, read-only sessions, broken
targets, the DataQualityDashboard export."""
import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
import time

import duckdb
import pytest
from vigie.fixtures.warehouse import build_reference
from vigie.fixtures.warehouse.testing import OMOP_DATA

from vigie import identifiers
from vigie.campaign import make_target
from vigie.errors import ObservationError, VigieError
from vigie.warehouse import dq, privacy, schema
from vigie.warehouse.catalogue import open_warehouse
from vigie.warehouse.cdm import cdm54
from vigie.warehouse.dialect import compatible
from vigie.warehouse.measures import measures_of
from vigie.warehouse.url import check_url, public_url


def omop_data():
    """../shared/data/omop: CI has it (its absence fails there); a user without the folder gets a skip."""
    if not OMOP_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{OMOP_DATA} is missing: CI must have the OMOP reference data")
        pytest.skip(f"no OMOP reference data at {OMOP_DATA}")
    return OMOP_DATA


def read_csv(path):
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def vigie(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "vigie", *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("wh") / "ref.duckdb"
    return build_reference(f"duckdb:///{path}", persons=600, seed=7)


# the CDM catalogue ----------------------------------------------------------------------------------

def test_cdm_catalogue_matches_the_official_specification():
    data = omop_data()
    official = read_csv(data / "OMOP_CDMv5.4_Field_Level.csv")
    tables = {r["cdmTableName"].lower(): r for r in read_csv(data / "OMOP_CDMv5.4_Table_Level.csv")}
    ours = cdm54()
    assert set(ours) == set(tables) and len(ours) == 39
    assert sum(len(t.fields) for t in ours.values()) == len(official) == 432
    for row in official:
        table = ours[row["cdmTableName"].lower()]
        name = row["cdmFieldName"].lower().strip('"')   # the specification quotes the reserved word "offset"
        field = table.field(name)
        assert field is not None, name
        assert field.required == (row["isRequired"] == "Yes"), name
        assert field.type == row["cdmDatatype"].lower(), name
        assert field.pk == (row["isPrimaryKey"] == "Yes"), name
        fk = row["fkTableName"].lower() if row["isForeignKey"] == "Yes" and row["fkTableName"] != "NA" else None
        assert field.fk_table == fk, name
        assert table.required == (tables[table.name]["isRequired"] == "Yes")
        assert table.schema == tables[table.name]["schema"]


def test_dq_thresholds_match_data_quality_dashboard():
    data = omop_data()
    ours = {(c.name, c.table, c.field): c for c in dq.catalogue(()) if c.level == "FIELD"}
    fields = read_csv(data / "dqd_OMOP_CDMv5.4_Field_Level.csv")
    compared = 0
    for row in fields:
        for name in ("isRequired", "isPrimaryKey", "isForeignKey", "measureValueCompleteness",
                     "plausibleValueLow", "plausibleAfterBirth", "withinVisitDates", "plausibleTemporalAfter",
                     "plausibleDuringLife"):
            on = row[name] not in ("", "No", "NA")
            key = (name, row["cdmTableName"].lower(), row["cdmFieldName"].lower())
            assert (key in ours) == on, key
            if on:
                assert ours[key].threshold == float(row[f"{name}Threshold"] or 0), key
                compared += 1
    assert compared > 500
    # the three types 2.6.0 superseded are run and exported (2.8.4 runs them by default), judged by no requirement
    assert len(dq.TYPES) == 24 and set(dq.SUPERSEDED) == {"plausibleTemporalAfter", "plausibleDuringLife", "plausibleGender"}
    assert not set(dq.SUPERSEDED) & set(dq.TYPES)
    superseded = [c for c in dq.catalogue() if c.name in dq.SUPERSEDED]
    assert len(superseded) == 372 and sum(c.name == "plausibleGender" for c in superseded) == 287
    genders = read_csv(data / "dqd_OMOP_CDMv5.4_Concept_Level.csv")
    assert {(r["cdmTableName"].lower(), r["conceptId"], r["plausibleGender"]) for r in genders if r["plausibleGender"]} \
        == {(c.table, c.concept_id, c.arg) for c in superseded if c.name == "plausibleGender"}
    assert dq.DqCheck("FIELD", "isRequired", "person", "person_id").id == "field_isrequired_person_person_id"


def test_type_compatibility():
    assert compatible("integer", "BIGINT") and compatible("integer", "integer")
    assert compatible("varchar(50)", "character varying") and compatible("date", "TIMESTAMP")
    assert not compatible("integer", "VARCHAR") and not compatible("datetime", "DATE")
    assert not compatible("float", "INTEGER") and compatible("float", "double precision")


# URLs and secrets -----------------------------------------------------------------------------------

def test_warehouse_urls_are_checked_and_never_show_their_password():
    with pytest.raises(VigieError, match="unknown database scheme 'nosuchdb'"):
        check_url("nosuchdb://host/db")
    with pytest.raises(VigieError, match="names no database file"):
        check_url("duckdb://")
    with pytest.raises(VigieError, match="unknown database scheme"):
        make_target({"kind": "warehouse", "url": "nosuchdb://x/y"}, "--warehouse")
    url = "postgresql://reader:s3cret-pw@db.example.test:5432/cdm?schema=cdm"
    assert "s3cret-pw" not in public_url(url) and "reader@db.example.test" in public_url(url)
    target = make_target({"kind": "warehouse", "url": url}, "--warehouse")
    assert "s3cret-pw" in target.secrets() and "s3cret-pw" not in json.dumps(target.public())


def test_unknown_scheme_on_the_command_line_is_one_line(tmp_path):
    result = vigie("run", "--warehouse", "nosuchdb://x/y", "--out", str(tmp_path / "o"))
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "unknown database scheme" in result.stderr


def test_missing_database_gives_error_outcomes(tmp_path):
    result = vigie("run", "--warehouse", f"duckdb:///{tmp_path}/absent.duckdb", "--profile", "omop-cdm-5.4",
                   "--out", str(tmp_path / "o"))
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert {o["status"] for o in report["outcomes"]} == {"error"}
    assert all("no such DuckDB file" in o["summary"] for o in report["outcomes"])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert not (tmp_path / "absent.duckdb").exists(), "a missing database must not be created"


# the reference warehouse ----------------------------------------------------------------------------

def _digest(url):
    con = duckdb.connect(url.split(":///", 1)[1], read_only=True)
    try:
        return [con.execute(f"SELECT COUNT(*), SUM(hash(t)) FROM {t} AS t").fetchone()
                for t in ("person", "visit_occurrence", "drug_exposure", "measurement", "note", "death")]
    finally:
        con.close()


def test_reference_warehouse_is_deterministic(reference, tmp_path):
    again = build_reference(f"duckdb:///{tmp_path / 'again.duckdb'}", persons=600, seed=7)
    other = build_reference(f"duckdb:///{tmp_path / 'other.duckdb'}", persons=600, seed=8)
    assert _digest(reference) == _digest(again)
    assert _digest(reference) != _digest(other)
    assert _digest(reference)[0][0] == 600


def test_reference_warehouse_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="unknown flaw"):
        build_reference(f"duckdb:///{tmp_path / 'x.duckdb'}", flaws=["nope"])
    with pytest.raises(ValueError, match="needs roles"):
        build_reference(f"duckdb:///{tmp_path / 'x.duckdb'}", flaws=["writable-role"])
    result = vigie("reference", "warehouse", "sqlite:///x.db")
    assert result.returncode == 3 and "DuckDB, PostgreSQL or as Parquet tables" in result.stderr


def test_clean_reference_passes_the_schema_rules_in_process(reference):
    w = open_warehouse(reference)
    try:
        m = measures_of(w.session, w.catalogue)
        for rule, _ in schema.RULES.values():
            findings = rule(m, {})
            assert not findings.violations and not findings.problems, (rule.__name__, findings.violations[:3])
        assert w.session.audit is not None and w.session.audit.mode == "table"
    finally:
        w.close()


def test_a_failed_one_pass_scan_is_measured_aggregate_by_aggregate_one_row_each(reference, monkeypatch):
    """At 10 million persons DuckDB's capped buffer pool refused visit_occurrence's one-pass scan; vigie then
    measures each aggregate alone. Each must still be one row: a constant registered as an aggregate
    (SELECT 0 FROM visit_occurrence) fetched the whole table into Python and ended in MemoryError."""
    w = open_warehouse(reference)
    try:
        m = measures_of(w.session, w.catalogue)
        whole = dict(m.scan("visit_occurrence"))
    finally:
        w.close()
    w = open_warehouse(reference)
    try:
        fetched = []
        rows = w.session.rows

        def refusing(sql, record=True):
            if sql.startswith("SELECT COUNT(*), ") and '"visit_occurrence"' in sql:
                raise ObservationError("Out of Memory Error: failed to allocate data (as the engine said at 10M)")
            found = rows(sql, record)
            fetched.append((len(found), sql))
            return found

        monkeypatch.setattr(w.session, "rows", refusing)
        m = measures_of(w.session, w.catalogue)
        alone = m.scan("visit_occurrence")
    finally:
        w.close()
    assert len(fetched) == len(whole) > 40   # every aggregate measured on its own
    assert [sql for n, sql in fetched if n != 1] == []
    assert alone == whole and not any(isinstance(v, Exception) for v in alone.values())


def test_sessions_are_read_only_without_an_audit_log(tmp_path):
    url = build_reference(f"duckdb:///{tmp_path / 'na.duckdb'}", persons=50, flaws=["no-audit"])
    w = open_warehouse(url)
    try:
        assert w.session.read_only
        with pytest.raises(ObservationError):
            w.session.rows("DELETE FROM person")
    finally:
        w.close()
    assert duckdb.connect(url.split(":///", 1)[1]).execute("SELECT COUNT(*) FROM person").fetchone()[0] == 50


# identifiers, proven both ways ----------------------------------------------------------------------

def _nir(prefix13):
    return prefix13 + f"{identifiers.nir_key(prefix13):02d}"


TEXTS = {
    "nir": f"patient {_nir('1850575123456')} vu ce jour",
    "nir_spaced": "NIR " + " ".join([_nir('2690299123456')[:1], _nir('2690299123456')[1:3], _nir('2690299123456')[3:5],
                                      _nir('2690299123456')[5:7], _nir('2690299123456')[7:10],
                                      _nir('2690299123456')[10:13], _nir('2690299123456')[13:]]),
    "nir_corsica": f"né à Ajaccio {_nir('185052A123456')}",
    "nir_dotted": "n° de sécu " + ".".join([_nir('1841275123456')[:1], _nir('1841275123456')[1:3],
                                            _nir('1841275123456')[3:5], _nir('1841275123456')[5:7],
                                            _nir('1841275123456')[7:10], _nir('1841275123456')[10:13],
                                            _nir('1841275123456')[13:]]),
    "nir_dashed": f"assuré {_nir('2771033055042')[:1]}-{_nir('2771033055042')[1:5]}-{_nir('2771033055042')[5:]}",
    "email": "écrire à jeanne.doe@example.fr pour le suivi",
    "phone": "rappeler au 06 12 34 56 78 demain",
    "address": "domicile : 12 rue des Lilas, Lyon",
    "name": "vu par le patient Jean Dupont en consultation",
}
CLEAN = ["consultation de suivi, tension 130/80, poids 72 kg", "ordonnance n° 2023-0042 renouvelée",
         f"NIR à clé fausse {_nir('1850575123456')[:13]}{(identifiers.nir_key('1850575123456') + 1) % 97:02d}",
         "dossier 185057512345 (12 chiffres)", "martin-pêcheur observé au jardin",
         f"clé fausse aussi 1.85.05.75.123.456.{(identifiers.nir_key('1850575123456') + 1) % 97:02d}"]


@pytest.fixture(params=["duckdb", "sqlite"])
def notes_db(request, tmp_path):
    rows = [(i, t) for i, t in enumerate([*TEXTS.values(), *CLEAN])]
    if request.param == "duckdb":
        con = duckdb.connect(str(tmp_path / "n.duckdb"))
        con.execute("CREATE TABLE note (note_id INTEGER, note_text VARCHAR)")
        con.executemany("INSERT INTO note VALUES (?, ?)", rows)
        con.close()
        return f"duckdb:///{tmp_path / 'n.duckdb'}"
    con = sqlite3.connect(tmp_path / "n.db")
    con.execute("CREATE TABLE note (note_id INTEGER, note_text VARCHAR(2000))")
    con.executemany("INSERT INTO note VALUES (?, ?)", rows)
    con.commit()
    con.close()
    return f"sqlite:///{tmp_path / 'n.db'}"


EXPECTED = {"nir": 5, "email": 1, "phone": 1, "address": 1, "name": 1}


def test_identifiers_found_and_clean_text_left_alone(notes_db):
    w = open_warehouse(notes_db)
    try:
        m = measures_of(w.session, w.catalogue)
        for kind, n in EXPECTED.items():
            findings = privacy.identifiers(m, {"kind": kind})
            assert findings.measurements["columns_with_identifiers"] == {"note.note_text": n}, kind
            assert findings.violations == [(f"note.note_text: {n} value{'s' if n > 1 else ''} with "
                                           f"{privacy.KINDS[kind]}")]
            sample = findings.samples["note.note_text"]
            assert sample and all("*" in s for s in sample), sample   # masked
            assert not any(_nir('1850575123456') in s for s in sample)
    finally:
        w.close()


def test_k_anonymity_and_small_cells(reference):
    w = open_warehouse(reference)
    try:
        m = measures_of(w.session, w.catalogue)
        qi = {"quasi_identifiers": ["year_of_birth", "gender_concept_id", "location_id"]}
        assert not privacy.cells(m, {**qi, "k": 5}, "k").violations
        assert not privacy.cells(m, {**qi, "threshold": 11}, "threshold").violations
        tight = privacy.cells(m, {**qi, "threshold": 100}, "threshold")
        assert tight.violations and tight.measurements["cells"] == 42
        assert tight.samples["cells_below"][0]["n"] < 100
        with pytest.raises(ObservationError, match="person.shoe_size"):
            privacy.cells(m, {"quasi_identifiers": ["shoe_size"], "k": 5}, "k")
    finally:
        w.close()


# the run, its evidence and its export ------------------------------------------------------------------

def test_run_on_the_reference_warehouse(reference, tmp_path):
    out = tmp_path / "bundle"
    result = vigie("run", "--warehouse", reference, "--out", str(out))
    report = json.loads((out / "report.json").read_text())
    # eds-privacy's attestations (SHOULD) are not verified by software: reservations, never a plain pass
    assert report["verdict"] == "conformant-with-reservations" and result.returncode == 0, result.stdout[-3000:]
    assert {p["id"]: p["verdict"] for p in report["profiles"] if p["verdict"] != "conformant"} == \
        {"eds-privacy": "conformant-with-reservations"}
    by_id = {o["requirement"]: o for o in report["outcomes"]}
    assert by_id["EDS-PRIV-09"]["status"] == "not_applicable" and "no roles" in by_id["EDS-PRIV-09"]["summary"]
    assert by_id["EDS-PRIV-11"]["status"] == "not_tested"
    assert by_id["EDS-PRIV-11"]["summary"] == "attestation: no vendor document was supplied"
    export = json.loads((out / "evidence" / "omop-dq" / "warehouse.json").read_text())
    assert {"startTimestamp", "endTimestamp", "executionTime", "CheckResults", "Metadata", "Overview"} <= set(export)
    assert export["Overview"]["countTotal"] == len(export["CheckResults"]) > 1000
    first = export["CheckResults"][0]
    assert {"checkId", "checkName", "checkLevel", "numViolatedRows", "pctViolatedRows", "numDenominatorRows",
            "thresholdValue", "failed", "passed", "notApplicable", "isError", "category", "context"} <= set(first)
    assert export["Metadata"][0]["cdmSourceAbbreviation"] == "VIGIE"
    queries = json.loads((out / "evidence" / "sql" / "warehouse.json").read_text())["queries"]
    assert queries and all("sql" in q and ("rows" in q or "error" in q) for q in queries)
    assert any(p.startswith("evidence/sql/") for p in by_id["OMOP-CDM-04"]["evidence"])
    # the harness's queries are in the warehouse's audit log
    con = duckdb.connect(reference.split(":///", 1)[1], read_only=True)
    logged = con.execute("SELECT COUNT(*) FROM audit_log WHERE db_user = 'vigie'").fetchone()[0]
    con.close()
    assert logged >= len(queries)


def test_a_statement_past_its_limit_is_interrupted_in_duckdb_and_sqlite(tmp_path):
    """DuckDB and SQLite run inside vigie's process, where no signal reaches their C code: a watchdog
    interrupts the statement at its limit, and the session answers the next query."""
    from vigie.warehouse.session import Session, StatementTimeout
    sqlite3.connect(tmp_path / "w.db").close()
    duckdb.connect(str(tmp_path / "w.duckdb")).close()
    endless = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT COUNT(*) FROM r"
    for url, slow in ((f"duckdb:///{tmp_path / 'w.duckdb'}", "SELECT COUNT(*) FROM range(100000000000)"),
                      (f"sqlite:///{tmp_path / 'w.db'}", endless)):
        session = Session(url)
        session.statement_timeout_s = 0.3
        session.connect()
        try:
            with pytest.raises(StatementTimeout, match="the statement time limit of 0.3 s"):
                session.rows(slow)
            assert session.rows("SELECT 1") == [(1,)]
        finally:
            session.close()


def test_the_dq_checks_are_not_bounded_together_by_the_first_requirements_limit(reference):
    """Each DataQualityDashboard check has the statement's limit; the whole set runs once, for the first
    omop-dq requirement, and is not cut by that requirement's check_timeout (the run's limit still holds)."""
    from types import SimpleNamespace

    from checkcall import Outcome, conclude

    from conformance import test_omop_dq
    from vigie.limits import Deadline, TimeLimitExceeded
    w = open_warehouse(reference)
    try:
        view = SimpleNamespace(session=w.session, measures=measures_of(w.session, w.catalogue), target_id="warehouse")
        started = time.monotonic()
        with Deadline(0.2, TimeLimitExceeded("time limit of 0.2 s exceeded"), "check"):
            first = conclude(test_omop_dq.test_dq_check_type, SimpleNamespace(params={"check": "cdmTable"}), view,
                             Outcome())
        assert time.monotonic() - started > 0.2 and first.status == "passed", first.summary
    finally:
        w.close()
    w = open_warehouse(reference)
    try:   # the run's own deadline is not suspended
        view = SimpleNamespace(session=w.session, measures=measures_of(w.session, w.catalogue), target_id="warehouse")
        with pytest.raises(TimeLimitExceeded), Deadline(0.2, TimeLimitExceeded("run time limit"), "run"):
            test_omop_dq._results(view, Outcome(), ())
    finally:
        w.close()


@pytest.mark.parametrize("raised", ["RuntimeError", "InterruptException"])
def test_a_deadline_whose_signal_reaches_duckdb_mid_query_is_that_deadline(reference, monkeypatch, raised):
    """The run's deadline arriving while DuckDB runs a query: DuckDB's C code swallows the signal handler's
    error and raises its own (RuntimeError "Query interrupted", or InterruptException, which SQLAlchemy wraps),
    which a check would take for a failed query and go on past the deadline. It is the deadline's error. The
    engine's part is played here by a query that sleeps (DuckDB only sometimes sees the signal mid-query);
    the watchdog, which would otherwise stop the query first, is held off."""
    import duckdb
    from sqlalchemy.exc import OperationalError

    from vigie.limits import Deadline, TimeLimitExceeded
    from vigie.warehouse.session import Session
    monkeypatch.setattr(Session, "_interrupt", lambda self: None)
    w = open_warehouse(reference)
    real, calls = w.session.conn.exec_driver_sql, []

    def engine(sql, *args, **kwargs):
        calls.append(sql)
        if len(calls) > 1:
            return real(sql, *args, **kwargs)
        try:
            time.sleep(10)
        except TimeLimitExceeded:   # as DuckDB does with the handler's error
            pass
        if raised == "RuntimeError":
            raise RuntimeError("Query interrupted")
        raise OperationalError(sql, None, duckdb.InterruptException("INTERRUPT Error: Interrupted!"))

    monkeypatch.setattr(w.session.conn, "exec_driver_sql", engine)
    try:
        started = time.monotonic()
        with pytest.raises(TimeLimitExceeded, match="run time limit"), \
                Deadline(0.3, TimeLimitExceeded("run time limit"), "run"):
            w.session.rows("SELECT COUNT(*) FROM person")
        assert time.monotonic() - started < 5
        assert w.session.rows("SELECT 1") == [(1,)]   # and the session goes on
    finally:
        w.close()


def test_engine_limits_from_the_configuration(tmp_path):
    from vigie.limits import Limits, activate, make_limits
    from vigie.warehouse.session import Session
    limits = make_limits({"statement_timeout": 30, "engine_memory": "200M", "engine_threads": 1})
    assert (limits.statement_timeout_s, limits.engine_memory, limits.engine_threads) == (30, 200 << 20, 1)
    assert (Limits().statement_timeout_s, Limits().engine_memory, Limits().engine_threads) == (600, 1 << 30, None)
    for key, bad in (("statement_timeout", "soon"), ("statement_timeout", 0), ("engine_memory", "lots"),
                     ("engine_threads", 1.5), ("engine_threads", -2), ("engine_threads", True)):
        with pytest.raises(VigieError, match=f"limits: {key} must be"):
            make_limits({key: bad})
    duckdb.connect(str(tmp_path / "w.duckdb")).close()
    activate(limits)
    try:
        session = Session(f"duckdb:///{tmp_path / 'w.duckdb'}").connect()
        memory, threads = session.rows("SELECT current_setting('memory_limit'), current_setting('threads')")[0]
        session.close()
    finally:
        activate(Limits())
    assert (memory, threads) == ("200.0 MiB", 1)
    # a bad value in vigie.toml: one line, exit 3, before anything runs
    (tmp_path / "vigie.toml").write_text(f"[[targets]]\nkind = 'warehouse'\nurl = 'duckdb:///{tmp_path / 'w.duckdb'}'\n"
                                         "[limits]\nengine_memory = 'a lot'\n")
    result = vigie("run", "--config", str(tmp_path / "vigie.toml"), "--out", str(tmp_path / "out"))
    assert result.returncode == 3 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "[limits]: engine_memory must be a size such as 200M" in result.stderr and "Traceback" not in result.stderr


def test_duckdb_out_of_its_memory_says_which_limit_to_raise(tmp_path):
    """A query past the pool vigie gives DuckDB is an error that names [limits] engine_memory (at 10M persons the
    default pool held neither measurement's distinct keys nor its join to the visits)."""
    from vigie.limits import Limits, activate, make_limits
    from vigie.warehouse.session import Session
    duckdb.connect(str(tmp_path / "w.duckdb")).close()
    activate(make_limits({"engine_memory": "8M", "engine_threads": 1}))
    try:
        session = Session(f"duckdb:///{tmp_path / 'w.duckdb'}").connect()
        with pytest.raises(ObservationError) as caught:
            session.rows("SELECT COUNT(DISTINCT i::VARCHAR || 'x') FROM range(20000000) t(i)")
        session.close()
    finally:
        activate(Limits())
    assert "Out of Memory" in str(caught.value) and "raise [limits] engine_memory" in str(caught.value)
    assert "capped at 8 MB" in str(caught.value)


def test_dq_export_query_text_reproduces_each_count_and_overview_as_dqd(tmp_path):
    """Each check's queryText runs by hand and gives its numbers; plausibleStartBeforeEnd counts, as
    DataQualityDashboard does, the records holding both dates; Overview.countPassed is every check that did
    not fail."""
    url = build_reference(f"duckdb:///{tmp_path / 'w.duckdb'}", persons=60, seed=5, flaws=["implausible-dates"])
    con = duckdb.connect(url.split(":///", 1)[1])
    con.execute("UPDATE condition_occurrence SET condition_end_date = condition_start_date - 1 "
                "WHERE condition_occurrence_id % 5 = 0")
    con.execute("UPDATE condition_occurrence SET condition_end_date = NULL WHERE condition_occurrence_id % 3 = 0")
    con.close()
    w = open_warehouse(url)
    try:
        m = measures_of(w.session, w.catalogue)
        results = dq.run_checks(m)
        export = dq.dqd_export(m, results, "2026-01-01 00:00:00", 1.0)
        counted = [r for r in results if r.status in ("passed", "failed") and r.check.name not in ("cdmTable", "cdmField")]
        for r in counted[::7] + [r for r in counted if r.status == "failed"]:
            values = set()
            for statement in r.sql:
                for row in w.session.rows(statement, record=False):
                    values |= {v for v in row if isinstance(v, int)}
            derived = {a - b for a in values for b in values}   # isRequired: rows - values, isPrimaryKey...
            assert r.denominator in values and r.violated in values | derived, (r.check.id, r.sql)
        conditions = w.session.rows("SELECT COUNT(*), COUNT(condition_end_date), SUM(CASE WHEN condition_start_date "
                                    "> condition_end_date THEN 1 ELSE 0 END) FROM condition_occurrence", record=False)[0]
    finally:
        w.close()
    by_id = {r.check.id: r for r in results}
    start_end = by_id["field_plausiblestartbeforeend_condition_occurrence_condition_start_date"]
    assert conditions[1] < conditions[0] and (start_end.violated, start_end.denominator) == conditions[2:0:-1]
    checks = export["CheckResults"]
    assert all(ch["queryText"] for ch in checks if ch["passed"] or ch["failed"] and not ch["isError"])
    overview = export["Overview"]
    failed = sum(ch["failed"] for ch in checks)
    assert failed and overview["countPassed"] == len(checks) - failed == overview["countTotal"] - overview["countOverallFailed"]
    assert overview["countPassed"] > sum(ch["passed"] for ch in checks)   # not applicable checks count as passed
    assert overview["percentPassed"] == round(100 * overview["countPassed"] / len(checks), 2)


def test_the_checks_dqd_superseded_count_as_dqd_does(tmp_path):
    """plausibleTemporalAfter, plausibleDuringLife and plausibleGender, each counted against SQL written here
    from DataQualityDashboard's definitions."""
    url = build_reference(f"duckdb:///{tmp_path / 'w.duckdb'}", persons=60, seed=5,
                          flaws=["implausible-dates", "mothers-records-on-children"])
    male_only = next(c for c in dq.catalogue() if c.name == "plausibleGender" and c.arg == "Male"
                     and c.table == "condition_occurrence")
    con = duckdb.connect(url.split(":///", 1)[1])
    # a male-only condition recorded for two women and a man; visits of the dead 61 and 90 days after death
    con.execute(f"UPDATE condition_occurrence SET condition_concept_id = {male_only.concept_id} WHERE person_id IN "
                "(SELECT person_id FROM person WHERE gender_concept_id = 8532 ORDER BY person_id LIMIT 2) "
                "OR person_id = (SELECT MIN(person_id) FROM person WHERE gender_concept_id = 8507)")
    con.execute("UPDATE visit_occurrence v SET visit_start_date = d.death_date + 61, visit_end_date = d.death_date + 90 "
                "FROM death d WHERE d.person_id = v.person_id AND v.visit_occurrence_id % 2 = 0")
    expected = {
        "field_plausibletemporalafter_visit_occurrence_visit_end_date": con.execute(
            "SELECT SUM(CASE WHEN visit_start_date > visit_end_date THEN 1 ELSE 0 END), COUNT(*) "
            "FROM visit_occurrence").fetchone(),
        "field_plausibletemporalafter_measurement_measurement_date": (con.execute(
            "SELECT COUNT(*) FROM measurement m JOIN person p ON p.person_id = m.person_id WHERE "
            "COALESCE(CAST(p.birth_datetime AS DATE), make_date(p.year_of_birth, 6, 1)) > m.measurement_date").fetchone()[0],
            con.execute("SELECT COUNT(*) FROM measurement").fetchone()[0]),
        "field_plausibleduringlife_visit_occurrence_visit_start_date": (con.execute(
            "SELECT COUNT(*) FROM visit_occurrence v JOIN death d ON d.person_id = v.person_id "
            "WHERE v.visit_start_date > d.death_date + 60").fetchone()[0], con.execute(
            "SELECT COUNT(*) FROM visit_occurrence WHERE person_id IN (SELECT person_id FROM death)").fetchone()[0]),
        f"concept_plausiblegender_condition_occurrence_condition_concept_id_{male_only.concept_id}": (con.execute(
            f"SELECT COUNT(*) FROM condition_occurrence c JOIN person p ON p.person_id = c.person_id WHERE "
            f"condition_concept_id = {male_only.concept_id} AND p.gender_concept_id <> 8507").fetchone()[0], con.execute(
            f"SELECT COUNT(*) FROM condition_occurrence WHERE condition_concept_id = {male_only.concept_id}").fetchone()[0]),
    }
    con.execute("CHECKPOINT")
    con.close()
    w = open_warehouse(url)
    try:
        m = measures_of(w.session, w.catalogue)
        results = {r.check.id: r for r in dq.run_checks(m)}
        export = dq.dqd_export(m, list(results.values()), "2026-01-01 00:00:00", 1.0)
    finally:
        w.close()
    for check_id, (violated, denominator) in expected.items():
        r = results[check_id]
        assert violated > 0 and (r.violated, r.denominator) == (violated, denominator), check_id
        assert r.status == ("failed" if 100 * violated / denominator > r.check.threshold else "passed"), check_id
    other_gender = [r for r in results.values() if r.check.name == "plausibleGender" and r.check != male_only]
    assert other_gender and {r.status for r in other_gender} == {"not_applicable"}
    assert "no record of concept" in other_gender[0].reason
    assert export["Overview"]["countTotal"] == len(dq.catalogue()) == 2376
    exported = {ch["checkId"]: ch for ch in export["CheckResults"]}
    assert exported[f"concept_plausiblegender_condition_occurrence_condition_concept_id_{male_only.concept_id}"][
        "category"] == "Plausibility"


def test_a_repeated_key_does_not_multiply_the_rows_that_point_to_it(tmp_path):
    """References are resolved by joins: to the key as it is when the target's scan found it unique, to its
    distinct values when it is not (a person loaded twice must not double the visits counted)."""
    url = build_reference(f"duckdb:///{tmp_path / 'w.duckdb'}", persons=40, seed=5)
    con = duckdb.connect(url.split(":///", 1)[1])
    con.execute("INSERT INTO person SELECT * FROM person WHERE person_id IN (SELECT MIN(person_id) FROM person)")
    con.execute("DELETE FROM provider WHERE provider_id IN (SELECT MIN(provider_id) FROM provider)")
    visits, orphans = con.execute("SELECT COUNT(*), SUM(CASE WHEN provider_id IS NOT NULL AND provider_id NOT IN "
                                  "(SELECT provider_id FROM provider) THEN 1 ELSE 0 END) FROM visit_occurrence").fetchone()
    con.execute("CHECKPOINT")
    con.close()
    w = open_warehouse(url)
    try:
        m = measures_of(w.session, w.catalogue)
        assert not m.unique("person", "person_id") and m.unique("provider", "provider_id")
        to_person, to_provider = m.foreign_key("visit_occurrence", "person_id"), m.foreign_key("visit_occurrence", "provider_id")
        results = {r.check.id: r for r in dq.run_checks(m)}
    finally:
        w.close()
    assert to_person["rows"] == visits and to_person["orphans"] == 0
    assert orphans > 0 and to_provider["orphans"] == orphans
    person = results["table_measurepersoncompleteness_visit_occurrence"]
    assert (person.violated, person.denominator) == (0, 41)
