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
                     "plausibleValueLow", "plausibleAfterBirth", "withinVisitDates"):
            on = row[name] not in ("", "No", "NA")
            key = (name, row["cdmTableName"].lower(), row["cdmFieldName"].lower())
            assert (key in ours) == on, key
            if on:
                assert ours[key].threshold == float(row[f"{name}Threshold"] or 0), key
                compared += 1
    assert compared > 500
    assert len(dq.TYPES) == 24
    assert not {"plausibleTemporalAfter", "plausibleDuringLife", "plausibleGender"} & set(dq.TYPES)
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
