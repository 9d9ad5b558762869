"""A warehouse on a Spark cluster, reached through Spark Connect (`spark://host:port?schema=...`), run for real:
a Spark Connect server on loopback (vigie.fixtures.warehouse.sparkconnect) serves the reference warehouse's
Parquet tables as a database; vigie's checks give there what they give on the same tables read locally; a flaw
fails; a query past its time limit is cancelled in Spark through its tag; the grants a cluster keeps out of
Spark SQL's sight leave the role requirements `error`, never set aside as not applicable.

The server is one JVM for the module (20 to 40 s to start on a shared machine); every query is a Spark job."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_warehouse_spark import pyspark_or_skip, rules_and_identifiers
from vigie.fixtures.warehouse import build_reference

from vigie.load.process import free_port
from vigie.warehouse import privacy
from vigie.warehouse.catalogue import open_warehouse
from vigie.warehouse.measures import measures_of

START_S = 240


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pyspark_or_skip()
    folder = tmp_path_factory.mktemp("spark-connect")
    clean = build_reference(f"spark+local:///{folder / 'clean'}", persons=60, seed=11)
    build_reference(f"spark+local:///{folder / 'flawed'}", persons=60, seed=11, flaws=["nir-in-clear"])
    port, jobs = free_port(), folder / "jobs.txt"
    log = (folder / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "vigie.fixtures.warehouse.sparkconnect", "--port", str(port),
                             "--jobs", str(jobs), "--lifetime", "1500", f"clean={folder / 'clean'}",
                             f"flawed={folder / 'flawed'}"], stdout=subprocess.PIPE, stderr=log, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + START_S
        line = ""
        while time.monotonic() < deadline and proc.poll() is None and not line.startswith("ready"):
            line = proc.stdout.readline()
        if not line.startswith("ready"):
            pytest.fail(f"the Spark Connect server did not start: {(folder / 'server.log').read_text()[-2000:]}")
        yield {"url": f"spark://127.0.0.1:{port}", "local": clean, "jobs": jobs}
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _rules(url, kinds=tuple(privacy.KINDS)) -> dict:
    w = open_warehouse(url)
    try:
        m = measures_of(w.session, w.catalogue)
        found = rules_and_identifiers(m, kinds)
        cells = privacy.cells(m, {"k": 5}, "k")
        found["cells"] = (cells.violations, cells.checked)
        found["engine"] = (w.session.backend, w.session.conn.remote)
        return found
    finally:
        w.close()


def test_checks_through_spark_connect_give_what_a_local_session_gives(server):
    remote, local = _rules(f"{server['url']}?schema=clean"), _rules(server["local"])
    assert remote.pop("engine") == ("spark", True) and local.pop("engine") == ("spark", False)
    assert remote == local
    assert all(not v[0] and not v[2] for k, v in remote.items() if k != "cells"), remote
    assert remote["tables_present"][1] > 30   # the tables of the database were seen, not an empty schema


def test_a_flaw_fails_through_spark_connect(server):
    w = open_warehouse(f"{server['url']}?schema=flawed")
    try:
        m = measures_of(w.session, w.catalogue)
        others = [t for t in w.catalogue.tables if t != "person"]
        nir = privacy.identifiers(m, {"kind": "nir", "exclude_tables": others})
        assert nir.measurements["columns_with_identifiers"] == {"person.person_source_value": 60}
    finally:
        w.close()


def test_a_query_past_its_time_limit_is_cancelled_on_the_cluster(server):
    from vigie.warehouse.spark import SparkConnection, SparkQueryError
    conn = SparkConnection.connect(f"sc://127.0.0.1:{server['url'].rsplit(':', 1)[1]}", timeout_s=3)
    slow = "SELECT COUNT(*) FROM range(100000000) a CROSS JOIN range(100000000) b WHERE a.id + b.id = -1"
    started = time.monotonic()
    with pytest.raises(SparkQueryError, match="time limit"):
        conn.rows(slow)
    assert time.monotonic() - started < 30
    deadline, running = time.monotonic() + 30, "?"
    while time.monotonic() < deadline:
        time.sleep(0.6)
        running = server["jobs"].read_text().strip()
        if not running:
            break
    assert running == "", f"Spark still runs jobs {running} after the cancellation"
    assert conn.rows("SELECT 1") == [(1,)]   # the session goes on
    conn.close()


def test_a_campaign_through_spark_connect(server, tmp_path):
    """vigie run on spark://: the schema rules pass, the cluster's grants are not observed (error, with the
    reason), never not_applicable; the run is incomplete or non-conformant, never conformant on them."""
    out = tmp_path / "bundle"
    result = subprocess.run([sys.executable, "-m", "vigie", "run", "--warehouse", f"{server['url']}?schema=clean",
                             "--profile", "omop-cdm-5.4", "--profile", "eds-privacy", "--out", str(out)],
                            capture_output=True, text=True, timeout=900, check=False,
                            env={**os.environ, "NO_COLOR": "1"})
    report = json.loads((out / "report.json").read_text())
    status = {o["requirement"]: o for o in report["outcomes"]}
    assert result.returncode == 1, result.stdout[-3000:]   # 60 persons: small cells fail EDS-PRIV-06 (SHALL)
    assert all(status[f"OMOP-CDM-0{i}"]["status"] == "passed" for i in range(1, 7))
    for rid in ("EDS-PRIV-09", "EDS-PRIV-10"):
        assert status[rid]["status"] == "error", status[rid]
        assert "Spark Connect server shows no grants" in status[rid]["summary"]
    assert report["targets"][0]["url"].startswith("spark://127.0.0.1:")
    assert Path(out / "journal.ndjson").exists()
