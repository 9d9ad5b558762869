"""Spark as a warehouse engine: the reference warehouse written as Parquet tables (one folder per table) and
read by a local pyspark session gives, check by check, the results DuckDB gives on the same data (omop-dq's
2,000 checks, omop-cdm-5.4's rules, eds-privacy's identifier scan and cells); a flaw fails on Spark too; every
Spark job has a time limit and is cancelled in Spark when it runs past it; without pyspark the requirements
are errors that say how to install it.

One local Spark session serves the module (the JVM starts once, 10 to 20 s; the omop-dq comparison takes
minutes on a shared 2-core machine: Spark pays a job per query)."""
import json
import os
import subprocess
import sys
import time

import pytest
from vigie.fixtures.warehouse import build_reference

from vigie.errors import ObservationError, VigieError
from vigie.warehouse import dq, privacy, schema
from vigie.warehouse.catalogue import open_warehouse
from vigie.warehouse.measures import measures_of
from vigie.warehouse.url import check_url

RULES = [schema.tables_present, schema.fields_present, schema.types_compatible, schema.required_filled,
         schema.keys_unique, schema.foreign_keys_resolve]
FLAWS = ["broken-fk", "nir-in-clear"]


def pyspark_or_skip():
    """CI installs vigie's spark extra (its absence fails there); a user without pyspark gets a skip."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("pyspark is missing: CI must install vigie's spark extra")
        pytest.skip("pyspark is not installed")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    pyspark_or_skip()
    folder = tmp_path_factory.mktemp("spark")
    return {"duckdb": build_reference(f"duckdb:///{folder / 'ref.duckdb'}", persons=60, seed=11),
            "spark": build_reference(f"spark+local:///{folder / 'ref'}", persons=60, seed=11),
            "flawed": build_reference(f"spark+local:///{folder / 'flawed'}", persons=60, seed=11, flaws=FLAWS)}


def rules_and_identifiers(m, kinds=tuple(privacy.KINDS)) -> dict:
    """The schema rules' and the identifier scan's results on the measures `m`, in comparable form."""
    found = {}
    for rule in RULES:
        f = rule(m, {})
        found[rule.__name__] = (f.violations, f.checked, f.problems)
    for kind in kinds:
        f = privacy.identifiers(m, {"kind": kind})
        found[f"identifiers:{kind}"] = (f.violations, f.checked, f.problems, f.measurements["rows_examined"])
    return found


def results(url) -> dict:
    """Every result of the three profiles' warehouse rules, in comparable form."""
    w = open_warehouse(url)
    try:
        m = measures_of(w.session, w.catalogue)
        found = {f"dq:{r.check.id}": (r.status, r.violated, r.denominator, r.ground) for r in dq.run_checks(m)}
        found.update(rules_and_identifiers(m))
        for floor, param in ((5, "k"), (11, "threshold")):
            f = privacy.cells(m, {param: floor}, param)
            found[f"cells:{param}"] = (f.violations, f.checked, f.measurements)
        found["engine"] = w.session.backend
        return found
    finally:
        w.close()


def test_clean_reference_on_spark_gives_duckdb_results(built):
    on_duckdb, on_spark = results(built["duckdb"]), results(built["spark"])
    assert on_duckdb.pop("engine") == "duckdb" and on_spark.pop("engine") == "spark"
    assert on_spark.keys() == on_duckdb.keys()
    differ = {k: (on_duckdb[k], on_spark[k]) for k in on_duckdb if on_duckdb[k] != on_spark[k]}
    assert not differ, list(differ.items())[:5]
    statuses = [v[0] for k, v in on_spark.items() if k.startswith("dq:")]
    assert len(statuses) > 2000 and statuses.count("passed") > 1000 and "failed" not in statuses
    # the clean reference's schema and identifiers pass (its cells need ~500 persons: not asserted at 60)
    assert all(not v[0] and not v[2] for k, v in on_spark.items() if k.split(":")[0] in
               ("identifiers", *(r.__name__ for r in RULES))), on_spark


def test_flaws_fail_on_spark(built):
    w = open_warehouse(built["flawed"])
    try:
        m = measures_of(w.session, w.catalogue)
        # the flawed tables only: the rules are the same, the whole run is what the clean comparison pays for
        fk = schema.foreign_keys_resolve(m, {"tables": ["drug_exposure"]})
        assert any(v.startswith("drug_exposure.visit_occurrence_id") for v in fk.violations), fk.violations
        others = [t for t in w.catalogue.tables if t != "person"]
        nir = privacy.identifiers(m, {"kind": "nir", "exclude_tables": others})
        assert nir.measurements["columns_with_identifiers"] == {"person.person_source_value": 60}
        assert all("*" in s for s in nir.samples["person.person_source_value"])   # masked
    finally:
        w.close()


def test_a_spark_job_past_its_time_limit_is_cancelled(built):
    from vigie.warehouse.spark import SparkConnection, SparkQueryError, _local_session
    conn = SparkConnection(_local_session(), remote=False, timeout_s=2)
    slow = "SELECT COUNT(*) FROM range(100000000) a CROSS JOIN range(100000000) b WHERE a.id + b.id = -1"
    started = time.monotonic()
    with pytest.raises(SparkQueryError, match="time limit"):
        conn.rows(slow)
    assert time.monotonic() - started < 30
    tracker = conn.spark.sparkContext.statusTracker()
    deadline = time.monotonic() + 20
    while tracker.getActiveJobsIds() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not tracker.getActiveJobsIds()   # cancelled in Spark, not only abandoned by Python
    assert conn.rows("SELECT 1") == [(1,)]   # the session goes on


def test_a_local_session_joins_by_shuffle_never_by_broadcast(built):
    """At 1M persons Spark broadcast measurement's person ids (its compressed Parquet looked small) and the
    local session's small driver ran out of memory: OMOP-DQ-02, -09, -22 and OMOP-CDM-06 were errors on the
    clean warehouse. A local session plans a sort-merge join, which spills to disk."""
    w = open_warehouse(built["spark"])
    try:
        plan = w.session.conn.spark.sql("EXPLAIN SELECT COUNT(*) FROM person p WHERE NOT EXISTS "
                                        "(SELECT 1 FROM measurement x WHERE x.person_id = p.person_id)").collect()[0][0]
    finally:
        w.close()
    assert "SortMergeJoin" in plan and "Broadcast" not in plan, plan


def test_an_error_of_the_jvm_is_told_by_its_root_cause(built):
    """py4j's first line names only the call ("An error occurred while calling o261.collectToPython."): at 1M
    persons every failed join said that and nothing else. The root cause of the Java exception is told."""
    from py4j.protocol import Py4JJavaError

    from vigie.warehouse.spark import _line, _local_session
    jvm = _local_session().sparkContext._jvm
    failed = jvm.java.util.concurrent.CompletableFuture.failedFuture(jvm.java.lang.IllegalStateException("the cause"))
    with pytest.raises(Py4JJavaError) as raised:
        failed.get()   # an ExecutionException caused by the IllegalStateException
    assert str(raised.value).startswith("An error occurred while calling")
    assert _line(raised.value) == "java.lang.IllegalStateException: the cause"
    assert _line(ValueError("[TABLE_OR_VIEW_NOT_FOUND] nope\nmore")) == "[TABLE_OR_VIEW_NOT_FOUND] nope"


def test_spark_urls(tmp_path):
    assert check_url("spark://spark.example.test:15002") and check_url(f"spark+local:///{tmp_path}")
    for bad, why in (("spark+local://", "names no folder"), ("spark://", "no Spark Connect host"),
                     ("spark+yarn://x", "unknown Spark scheme")):
        with pytest.raises(VigieError, match=why):
            check_url(bad)
    with pytest.raises(ObservationError, match="no such folder of tables"):
        open_warehouse(f"spark+local:///{tmp_path / 'nowhere'}")


def test_without_pyspark_the_requirements_say_how_to_install_it(tmp_path):
    """A machine without pyspark: the warehouse's requirements are errors naming the install line."""
    hide = tmp_path / "hide"
    (hide / "pyspark").mkdir(parents=True)
    (hide / "pyspark" / "__init__.py").write_text("raise ImportError('pyspark hidden by the test')\n")
    (tmp_path / "tables" / "person").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hide), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "bundle"
    result = subprocess.run([sys.executable, "-m", "vigie", "run", "--warehouse", f"spark+local:///{tmp_path / 'tables'}",
                             "--profile", "omop-cdm-5.4", "--out", str(out)], capture_output=True, text=True,
                            env=env, timeout=300, check=False)
    report = json.loads((out / "report.json").read_text())
    assert result.returncode == 2, result.stdout[-2000:]
    assert {o["status"] for o in report["outcomes"]} == {"error"}
    assert all("pip install 'vigie-sante[spark]'" in o["summary"] for o in report["outcomes"])


def test_a_local_session_whose_jvm_stopped_says_so_and_exits_quietly(monkeypatch):
    """The JVM gone (at 10M persons the 768 MB driver ran out of memory): each query says so and how to give it
    more, rather than py4j's "Connection refused"; stopping at exit prints no traceback."""
    from types import SimpleNamespace

    from vigie.warehouse import spark as sparkmod

    def refused(_sql):
        raise ConnectionRefusedError(111, "Connection refused")
    gone = SimpleNamespace(sql=refused, sparkContext=SimpleNamespace(setJobGroup=lambda *a, **k: None),
                           stop=lambda: refused(""))
    conn = sparkmod.SparkConnection(gone, remote=False, timeout_s=5)
    monkeypatch.setenv("SPARK_DRIVER_MEMORY", "3g")
    with pytest.raises(sparkmod.SparkQueryError, match="JVM has stopped .*driver had 3g.*SPARK_DRIVER_MEMORY"):
        conn.rows("SELECT 1")
    sparkmod._stop(gone)   # no exception escapes to the interpreter's exit
    monkeypatch.delenv("SPARK_DRIVER_MEMORY")
    assert sparkmod.driver_memory() == sparkmod.DRIVER_MEMORY


def test_the_local_jvm_does_not_inherit_the_data_ceiling_of_vigie():
    """vigie caps its own data (limits.memory_ceiling); the JVM it starts for a local session is bounded by its
    driver memory instead (inheriting vigie's 4 GiB ceiling, it died at 10M persons), and vigie's ceiling stays."""
    pyspark_or_skip()
    script = (
        "import resource\n"
        "from vigie.limits import memory_ceiling\n"
        "from vigie.warehouse.spark import _local_session\n"
        "with memory_ceiling(3 << 30):\n"
        "    spark = _local_session()\n"
        "    pid = spark.sparkContext._gateway.proc.pid\n"
        "    jvm = [l for l in open(f'/proc/{pid}/limits') if l.startswith('Max data size')][0].split()[3]\n"
        "    print(jvm, resource.getrlimit(resource.RLIMIT_DATA)[0])\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    jvm, mine = done.stdout.split()[-2:]
    assert jvm != str(3 << 30) and mine == str(3 << 30), done.stdout
