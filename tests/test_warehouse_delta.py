"""Delta tables on a local Spark warehouse (vigie.warehouse.delta): the reference warehouse written as Delta
tables, with the histories a real EDS's tables have (a table overwritten, its old file still on disk; one
appended to; partitioned ones, by integer, by date, with a null partition), is read at its current version: the schema rules and
the identifier scan give DuckDB's results on the same data, and a flaw the current version holds fails,
while a flaw only in a removed file does not. A table using a Delta feature vigie cannot honour (deletion
vectors, column mapping) is an error naming it, never read as bare Parquet."""
import json
import sys

import pytest
from test_warehouse_spark import RULES, pyspark_or_skip, rules_and_identifiers
from vigie.fixtures.warehouse import build_reference

from vigie.errors import ObservationError
from vigie.warehouse import privacy
from vigie.warehouse.catalogue import open_warehouse
from vigie.warehouse.measures import measures_of

PERSONS, SEED = 60, 11
RULE_KEYS = {r.__name__ for r in RULES} | {f"identifiers:{kind}" for kind in privacy.KINDS}


def to_delta(parquet, flawed, folder, current_person):
    """The Parquet warehouse `parquet` as Delta tables in `folder`: person written from the flawed build,
    then overwritten by `current_person`'s (the clean or the flawed build's), so that one of the two person
    files on disk is one the log removed; condition_occurrence in two appends; measurement partitioned by its
    unit and its operator (which no row has: the null partition), observation_period by its start date."""
    import pyarrow.parquet as pq
    from deltalake import write_deltalake
    for table in sorted(p for p in parquet.iterdir() if p.is_dir()):
        rows, target = pq.read_table(table), str(folder / table.name)
        if table.name == "person":
            write_deltalake(target, pq.read_table(flawed / "person"))
            write_deltalake(target, pq.read_table(current_person / "person"), mode="overwrite")
        elif table.name == "condition_occurrence":
            half = rows.num_rows // 2
            write_deltalake(target, rows.slice(0, half))
            write_deltalake(target, rows.slice(half), mode="append")
        elif table.name == "measurement":
            write_deltalake(target, rows, partition_by=["unit_concept_id", "operator_concept_id"])
        elif table.name == "observation_period":
            write_deltalake(target, rows, partition_by=["observation_period_start_date"])
        else:
            write_deltalake(target, rows)
    return f"spark+local:///{folder}"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    pyspark_or_skip()
    root = tmp_path_factory.mktemp("delta")
    duck = build_reference(f"duckdb:///{root / 'ref.duckdb'}", persons=PERSONS, seed=SEED)
    build_reference(f"spark+local:///{root / 'clean'}", persons=PERSONS, seed=SEED)
    build_reference(f"spark+local:///{root / 'flawed'}", persons=PERSONS, seed=SEED, flaws=["nir-in-clear"])
    clean, flawed = root / "clean", root / "flawed"
    return {"root": root, "duckdb": duck,
            "delta": to_delta(clean, flawed, root / "delta", current_person=clean),
            "delta-flawed": to_delta(clean, flawed, root / "delta-flawed", current_person=flawed)}


def rule_results(url) -> dict:
    w = open_warehouse(url)
    try:
        found = rules_and_identifiers(measures_of(w.session, w.catalogue))
        found["rows"] = {t: w.session.scalar(f"SELECT COUNT(*) FROM {t}") for t in
                         ("person", "condition_occurrence", "measurement", "observation_period")}
        found["partitions"] = w.session.rows("SELECT unit_concept_id, operator_concept_id, COUNT(*) FROM measurement "
                                             "GROUP BY 1, 2 ORDER BY 1")
        found["start dates"] = w.session.rows("SELECT observation_period_start_date, COUNT(*) FROM observation_period "
                                              "GROUP BY 1 ORDER BY 1")
        return found
    finally:
        w.close()


def test_delta_tables_are_read_at_their_current_version(built):
    from vigie.warehouse.spark import _local_session
    person = built["root"] / "delta" / "person"
    # the test means something: the folder holds both person files, and read as bare Parquet it has twice the rows
    assert len(list(person.glob("*.parquet"))) == 2
    assert _local_session().read.parquet(str(person)).count() == 2 * PERSONS
    measurement = built["root"] / "delta" / "measurement"
    assert any("__HIVE_DEFAULT_PARTITION__" in p.name for p in measurement.rglob("*"))
    on_duckdb, on_delta = rule_results(built["duckdb"]), rule_results(built["delta"])
    assert on_duckdb["rows"]["person"] == PERSONS and len(on_duckdb["partitions"]) == 2
    assert on_delta == on_duckdb, {k: (on_duckdb[k], on_delta[k]) for k in on_duckdb if on_duckdb[k] != on_delta[k]}
    assert all(not v[0] and not v[2] for k, v in on_delta.items() if k in RULE_KEYS), on_delta


def test_a_flaw_in_the_current_version_fails(built):
    w = open_warehouse(built["delta-flawed"])
    try:
        m = measures_of(w.session, w.catalogue)
        others = [t for t in w.catalogue.tables if t != "person"]
        nir = privacy.identifiers(m, {"kind": "nir", "exclude_tables": others})
        assert nir.measurements["columns_with_identifiers"] == {"person.person_source_value": PERSONS}
    finally:
        w.close()


def commit(table, number, *actions):
    (table / "_delta_log" / f"{number:020d}.json").write_text("".join(json.dumps(a) + "\n" for a in actions))


@pytest.mark.parametrize("feature", ["deletion vectors", "column mapping"])
def test_a_delta_feature_vigie_cannot_honour_is_an_error(built, tmp_path, feature):
    """Deletion vectors hide rows that are still in the files; column mapping renames the files' columns: read
    as Parquet, both would give other rows than the table's, so the warehouse is not read."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake
    table = tmp_path / "tables" / "person"
    write_deltalake(str(table), pa.table({"person_id": pa.array([1, 2], pa.int64())}))
    if feature == "deletion vectors":
        commit(table, 1, {"protocol": {"minReaderVersion": 3, "minWriterVersion": 7,
                                       "readerFeatures": ["deletionVectors"], "writerFeatures": ["deletionVectors"]}})
        expected = "deletionVectors"
    else:
        meta = DeltaTable(str(table)).metadata()
        schema = {"type": "struct", "fields": [{"name": "person_id", "type": "long", "nullable": True, "metadata": {
            "delta.columnMapping.id": 1, "delta.columnMapping.physicalName": "col-1"}}]}
        commit(table, 1, {"protocol": {"minReaderVersion": 2, "minWriterVersion": 5}},
               {"metaData": {"id": meta.id, "format": {"provider": "parquet", "options": {}},
                             "schemaString": json.dumps(schema), "partitionColumns": [],
                             "configuration": {"delta.columnMapping.mode": "name", "delta.columnMapping.maxColumnId": "1"},
                             "createdTime": 0}})
        expected = r"column mapping \(name\)"
    with pytest.raises(ObservationError, match=f"person is a Delta table using {expected}.*not read"):
        open_warehouse(f"spark+local:///{tmp_path / 'tables'}")


def test_a_broken_delta_log_is_an_error(built, tmp_path):
    import pyarrow as pa
    from deltalake import write_deltalake
    table = tmp_path / "tables" / "person"
    write_deltalake(str(table), pa.table({"person_id": pa.array([1, 2], pa.int64())}))
    (table / "_delta_log" / f"{0:020d}.json").write_text("{not json\n")
    with pytest.raises(ObservationError, match="cannot read the Delta log of person"):
        open_warehouse(f"spark+local:///{tmp_path / 'tables'}")


def test_without_deltalake_a_delta_table_says_how_to_install_it(built, tmp_path, monkeypatch):
    import pyarrow as pa
    from deltalake import write_deltalake
    write_deltalake(str(tmp_path / "tables" / "person"), pa.table({"person_id": pa.array([1], pa.int64())}))
    monkeypatch.setitem(sys.modules, "deltalake", None)   # import deltalake raises ImportError
    with pytest.raises(ObservationError, match=r"person is a Delta table and deltalake is not installed .*pip install"):
        open_warehouse(f"spark+local:///{tmp_path / 'tables'}")


def test_partition_values_that_look_like_globs_or_urls_name_their_own_files(built, tmp_path):
    """Spark reads a path as a glob (the warehouse's folder "eds[1]" here) and the log holds it URL-encoded: each
    partition's rows, no other's."""
    import pyarrow as pa
    from deltalake import write_deltalake
    names = ["a b", "x[1]", "x1", "c%d", "{y}", "*", "é/è", None]
    rows = pa.table({"person_id": pa.array(range(len(names)), pa.int64()), "person_source_value": names})
    write_deltalake(str(tmp_path / "tables" / "person"), rows, partition_by=["person_source_value"])
    (tmp_path / "tables").rename(tmp_path / "eds[1]")   # delta-rs writes no such path; a user's folder may be one
    (tmp_path / "eds1").mkdir()   # what the glob would name
    w = open_warehouse(f"spark+local:///{tmp_path / 'eds[1]'}")
    try:
        read = w.session.rows("SELECT person_id, person_source_value FROM person ORDER BY person_id")
    finally:
        w.close()
    assert read == list(enumerate(names))


def test_partition_values_come_from_the_log_whatever_the_folders_say(built, tmp_path):
    """Delta does not require name=value folders: files elsewhere, or in a folder whose name says another
    value than the log, hold the log's partition values (read one partition at a time)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    table = tmp_path / "tables" / "visit_occurrence"
    (table / "_delta_log").mkdir(parents=True)
    layout = {"visit_start_date=1999-12-31/a.parquet": ("2020-01-01", [1, 2]),   # the folder's name is wrong
              "b/c.parquet": ("2020-01-02", [3]), "d.parquet": (None, [4])}
    schema = {"type": "struct", "fields": [
        {"name": "visit_occurrence_id", "type": "long", "nullable": True, "metadata": {}},
        {"name": "visit_start_date", "type": "date", "nullable": True, "metadata": {}}]}
    actions = [{"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}},
               {"metaData": {"id": "6f1d3c8e-0000-4000-8000-000000000001", "format": {"provider": "parquet", "options": {}},
                             "schemaString": json.dumps(schema), "partitionColumns": ["visit_start_date"],
                             "configuration": {}, "createdTime": 0}}]
    for path, (day, ids) in layout.items():
        (table / path).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"visit_occurrence_id": pa.array(ids, pa.int64())}), table / path)
        actions.append({"add": {"path": path, "partitionValues": {"visit_start_date": day},
                                "size": (table / path).stat().st_size, "modificationTime": 0, "dataChange": True}})
    commit(table, 0, *actions)
    w = open_warehouse(f"spark+local:///{tmp_path / 'tables'}")
    try:
        read = w.session.rows("SELECT visit_occurrence_id, CAST(visit_start_date AS VARCHAR) FROM visit_occurrence "
                              "ORDER BY 1")
    finally:
        w.close()
    assert read == [(1, "2020-01-01"), (2, "2020-01-01"), (3, "2020-01-02"), (4, None)]
