"""Crash safety: `vigie run` killed (SIGKILL) at random points leaves a journal whose every line is a complete
record, and `vigie report` rebuilds from it an `incomplete` report holding every outcome the journal had."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from conftest import practice_process

KILLS = 8
SEED = int(os.environ.get("VIGIE_CRASH_SEED") or time.time())


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The reference practice system in its own process, with its vigie.toml."""
    with practice_process(tmp_path_factory.mktemp("practice")) as state:
        yield state / "vigie.toml"


def _records(journal) -> list[dict]:
    """Every line of the journal, each of which must be one complete JSON record."""
    data = journal.read_bytes()
    assert not data or data.endswith(b"\n"), f"torn last line: {data[-200:]!r}"
    records = [json.loads(line) for line in data.decode("utf-8").splitlines()]
    assert all(isinstance(r, dict) and "type" in r for r in records)
    return records


def test_killed_runs_rebuild_incomplete_reports(served, tmp_path):
    rng = random.Random(SEED)
    # from before the journal exists to the middle of the run (~15 s on an idle machine)
    delays = sorted(rng.uniform(0.5, 9) for _ in range(KILLS))
    seen_outcomes = 0
    for i, delay in enumerate(delays):
        out = tmp_path / f"killed-{i}"
        proc = subprocess.Popen([sys.executable, "-m", "vigie", "run", "--config", str(served), "--out", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "VIGIE_LOAD_DURATION": "1"})
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        why = f"seed {SEED}, kill {i} after {delay:.2f} s"
        journal = out / "journal.ndjson"
        result = subprocess.run([sys.executable, "-m", "vigie", "report", str(out), "--format", "md"],
                                capture_output=True, text=True, timeout=120, check=False)
        assert "Traceback" not in result.stderr, (why, result.stderr)
        if not journal.is_file() or not journal.read_bytes():
            assert result.returncode == 3 and len(result.stderr.strip().splitlines()) == 1, (why, result.stderr)
            continue
        records = _records(journal)
        assert records[0]["type"] == "run", why
        finished = {(r["requirement"], r["target"]): r for r in records if r["type"] == "outcome"}
        seen_outcomes += len(finished)
        complete = records[-1]["type"] == "end"   # killed after the end record: the report is whole
        report = json.loads((out / "report.json").read_text())
        assert report["run"]["complete"] is complete, why
        if not complete:
            assert result.returncode == 2 and report["verdict"] == "incomplete", (why, result.stdout)
        rebuilt = {(o["requirement"], o["target"]): o for o in report["outcomes"]}
        assert set(rebuilt) == {tuple(c) for c in records[0]["cases"]}, why
        for key, record in finished.items():
            assert (rebuilt[key]["status"], rebuilt[key]["summary"]) == (record["status"], record["summary"]), why
        for key in set(rebuilt) - set(finished):
            assert rebuilt[key]["status"] == "not_tested", why
    assert seen_outcomes, f"seed {SEED}: no kill happened after an outcome was journaled"
