"""Distributed load on loopback: a locust master and two workers against the reference practice system.

The master's totals must be the merge of what each worker measured: every worker writes the sum of the
reports it sent, and the master's histograms must equal their sum, bucket by bucket.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from vigie.load.process import free_port
from vigie.loadrun import run_load

ROOT = Path(__file__).resolve().parent.parent
PRACTICE = ROOT / "load" / "locustfile_practice.py"
RUN = {"users": 4, "spawn_rate": 20, "duration_s": 2}


@pytest.fixture(scope="module")
def practice(tmp_path_factory):
    from vigie.fixtures.practice import start_practice
    workdir = tmp_path_factory.mktemp("practice")
    with start_practice(port=0, workdir=workdir) as system:
        system.config = system.write_state(workdir / "state")
        yield system


def _env(system) -> dict:
    return {"VIGIE_LOAD_CA_FILE": str(system.ca_file), "VIGIE_LOAD_TOKEN": system.token}


def _histograms(stats: dict) -> dict[str, Counter]:
    return {name: Counter(s["response_times"]) for name, s in
            [*stats["scenarios"].items(), ("Aggregated", stats["aggregated"])]}


def test_two_local_workers_are_merged_by_the_master(practice, tmp_path):
    result = run_load(PRACTICE, practice.url, env=_env(practice), out_dir=tmp_path, workers=2, **RUN)
    assert result.workers == 2 and result.aggregated.failures == 0, result.errors
    master = json.loads((tmp_path / "stats.json").read_text())
    workers = [json.loads((tmp_path / f"worker-{i}.json").read_text()) for i in (1, 2)]
    assert all(w["aggregated"]["count"] > 0 for w in workers)  # both workers carried part of the load
    merged: dict[str, Counter] = {}
    for w in workers:
        for name, hist in _histograms(w).items():
            merged.setdefault(name, Counter()).update(hist)
    assert merged == _histograms(master)
    assert result.aggregated.count == sum(w["aggregated"]["count"] for w in workers)
    assert result.aggregated.failures == sum(w["aggregated"]["failures"] for w in workers)
    # the workers' per-second histograms reach the master too: the charts cover the whole load
    assert sum(p["rps"] for p in result.timeseries) == result.aggregated.count


def test_remote_workers_join_a_master_through_the_command_line(practice, tmp_path):
    port = free_port()
    box = {}

    def master():
        try:
            box["result"] = run_load(PRACTICE, practice.url, env=_env(practice), out_dir=tmp_path / "master",
                                     master=f"127.0.0.1:{port}", expect_workers=2, timeout_s=90, **RUN)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            box["error"] = exc
    thread = threading.Thread(target=master)
    thread.start()
    workers = [subprocess.Popen([sys.executable, "-m", "vigie", "run", "--config", str(practice.config),
                                 "--profile", "load-baseline", "--worker", "--master-host", "127.0.0.1",
                                 "--master-port", str(port), "--out", str(tmp_path / f"w{i}")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (1, 2)]
    outputs = [w.communicate(timeout=120) for w in workers]
    thread.join(timeout=120)
    assert "error" not in box, box.get("error")
    assert [w.returncode for w in workers] == [0, 0], outputs
    made = [int(re.search(r"done: (\d+) requests", out).group(1)) for out, _ in outputs]
    result = box["result"]
    assert result.workers == 2 and all(n > 0 for n in made)
    assert result.aggregated.count == sum(made)
    assert practice.token not in "".join(out + err for out, err in outputs)


def test_master_without_its_workers_is_an_error_not_a_hang(practice, tmp_path, monkeypatch):
    from vigie.errors import ObservationError
    from vigie.load import process
    monkeypatch.setattr(process, "WAIT_REMOTE_WORKERS_S", 2.0)
    with pytest.raises(ObservationError, match="only 0 of 1 load workers joined"):
        run_load(PRACTICE, practice.url, env=_env(practice), out_dir=tmp_path, master=f"127.0.0.1:{free_port()}",
                 expect_workers=1, **RUN)
