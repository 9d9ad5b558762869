"""vigie's own processes facing a hostile end (issue 16): the load process dies with vigie (item 8), the run time
limit and the memory ceiling bound the renderings (item 10), --out takes only a new or empty folder, or a previous
bundle with --force (item 11)."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from vigie.fixtures.hostile import engines

ROOT = Path(__file__).resolve().parent.parent


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a parent that does not reap it is not running)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                children = {int(c) for c in (task / "children").read_text().split()}
                todo.extend(children - found)
                found |= children
    return found


def _kill_all(pids) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def _counting_practice(tmp_path):
    """The reference practice system in this process, counting the requests it answers."""
    from vigie.fixtures.practice import start_practice
    system = start_practice(port=0, workdir=tmp_path / "practice")
    app, count, lock = system._app, [0], threading.Lock()
    answer = app.handle

    def counted(*args, **kwargs):
        with lock:
            count[0] += 1
        return answer(*args, **kwargs)
    app.handle = counted
    try:
        yield system, count
    finally:
        system.stop()


def _wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads process trees from /proc")
def test_the_load_stops_within_seconds_of_kill_9_of_vigie(tmp_path):
    with _counting_practice(tmp_path) as (system, count):
        config = system.write_state(tmp_path / "state")
        vigie = subprocess.Popen([sys.executable, "-m", "vigie", "run", "--config", str(config), "--profile",
                                  "load-baseline", "--load-duration", "300", "--out", str(tmp_path / "out")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = set()
        try:
            # the load is under way once requests arrive faster than the checks' own
            _wait_for(lambda: count[0] > 200, 90, "the load phase never started")
            started = _descendants(vigie.pid)
            assert started, "no load process under vigie"
            vigie.send_signal(signal.SIGKILL)
            vigie.wait()
            time.sleep(3)
            settled = count[0]
            time.sleep(3)
            assert count[0] == settled, f"{count[0] - settled} requests in the 3 s after vigie was killed"
            assert not [pid for pid in started if _alive(pid)], "a load process outlived vigie"
        finally:
            vigie.kill()
            vigie.wait()
            _kill_all(started)


WATCHED_CHILD = textwrap.dedent("""
    import vigie.lifeline as lifeline
    lifeline._parent_death_signal = lambda: None   # as on a platform without prctl: the watchdog alone
    lifeline.bind_to_parent()
    from gevent import monkey
    monkey.patch_all()                             # as locust does, after the binding
    while True:                                    # an event loop that never yields
        pass
""")

PARENT = textwrap.dedent("""
    import os, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], start_new_session=True,
                             env={**os.environ, "VIGIE_PARENT": str(os.getpid())})
    print(child.pid, flush=True)
    time.sleep(120)
""")


def test_the_watchdog_ends_a_load_process_whose_parent_is_gone():
    parent = subprocess.Popen([sys.executable, "-c", PARENT, WATCHED_CHILD], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    child = int(parent.stdout.readline())
    try:
        time.sleep(2)
        assert _alive(child), "the watchdog ended a process whose parent is alive"
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        _wait_for(lambda: not _alive(child), 5, "the child outlived its parent")
    finally:
        parent.kill()
        parent.wait()
        _kill_all([child])


# ---- item 10: the run time limit and the memory ceiling bound the renderings ----------------------------

def _ig_package(path: Path, resources: int) -> Path:
    """An implementation guide whose CapabilityStatement makes one requirement per resource type."""
    statement = {"resourceType": "CapabilityStatement", "id": "Big", "kind": "requirements", "fhirVersion": "4.0.1",
                 "url": "https://ig.vigie.example/CapabilityStatement/Big",
                 "rest": [{"mode": "server", "resource": [{"type": f"Type{i:05d}", "interaction": [{"code": "read"}]}
                                                          for i in range(resources)]}]}
    manifest = {"name": "vigie.big.ig", "version": "0.1.0", "title": "Big IG", "canonical": "https://ig.vigie.example",
                "fhirVersions": ["4.0.1"], "dependencies": {}}
    return engines.package_tgz(path, manifest,
                               {"package/CapabilityStatement-Big.json": json.dumps(statement).encode()})


def vigie(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "vigie", *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


@pytest.fixture(scope="module")
def practice_config(tmp_path_factory):
    from vigie.fixtures.practice import start_practice
    work = tmp_path_factory.mktemp("practice")
    with start_practice(port=0, workdir=work / "system") as system:
        yield system.write_state(work / "state")


RUN_TIMEOUT_S = 5
# 1,500 outcomes: a PDF of many minutes on any machine; the checks reach a few hundred in the time allowed
BIG = 1500


@pytest.fixture(scope="module")
def cut_run(practice_config, tmp_path_factory):
    """A run of 1,500 requirements with --run-timeout 5: (the command's result, its duration, the bundle)."""
    work = tmp_path_factory.mktemp("cut")
    package = _ig_package(work / "big.tgz", BIG)
    started = time.monotonic()
    result = vigie("run", "--config", str(practice_config), "--profile", f"ig:{package}", "--run-timeout",
                   str(RUN_TIMEOUT_S), "--out", str(work / "bundle"), timeout=150)
    return result, time.monotonic() - started, work / "bundle"


def test_the_run_time_limit_bounds_the_renderings(cut_run):
    from vigie.runner import RENDER_FLOOR_S
    result, elapsed, bundle = cut_run
    # the checks' time, what the not reached take to be recorded, the renderings' least time, the start-up
    assert elapsed < RUN_TIMEOUT_S + RENDER_FLOOR_S + 45, elapsed
    assert result.returncode == 1, result.stderr   # the verdict measured: the renderings do not change it
    report = json.loads((bundle / "report.json").read_text())
    assert len(report["outcomes"]) == BIG
    renderings = {r["format"]: r for r in report["run"]["renderings"]}
    assert renderings["md"]["status"] == renderings["junit"]["status"] == "written"
    pdf = renderings["pdf"]
    assert pdf["status"] == "cut short" and pdf["reason"] == f"the run time limit of {RUN_TIMEOUT_S} s was reached"
    assert not (bundle / "report.pdf").exists() and (bundle / "summary.md").is_file()
    assert f"vigie: warning: report.pdf cut short: the run time limit of {RUN_TIMEOUT_S} s was reached; " \
           f"`vigie report {bundle} --format pdf` renders it again" in result.stderr
    assert vigie("verify", str(bundle), "--integrity-only").returncode == 0


def test_the_memory_ceiling_bounds_a_rendering(cut_run):
    _, _, bundle = cut_run
    started = time.monotonic()
    result = vigie("report", str(bundle), "--format", "md", "--format", "pdf", "--max-memory", "300M",
                   "--run-timeout", "120", timeout=150)
    assert time.monotonic() - started < 100
    assert result.returncode == 1, result.stderr
    renderings = {r["format"]: r for r in json.loads((bundle / "report.json").read_text())["run"]["renderings"]}
    assert renderings["md"]["status"] == "written"
    assert renderings["pdf"] == {"format": "pdf", "file": "report.pdf", "status": "failed",
                                 "reason": "the memory ceiling of 300 MiB was reached"}, renderings["pdf"]
    assert not (bundle / "report.pdf").exists()
    assert "vigie: warning: report.pdf failed: the memory ceiling of 300 MiB was reached" in result.stderr


# ---- item 11: --out is new or empty, or a previous bundle replaced with --force ---------------------------

def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def _small_run(config, out, *more):
    return vigie("run", "--config", str(config), "--profile", "http-hardening", "--format", "md", "--out", str(out),
                 *more)


def _refused(result, text):
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stderr.strip() == f"vigie: error: {text}", result.stderr


def test_out_must_be_new_or_empty(practice_config, tmp_path):
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / ".env").write_text("DB_PASSWORD=hunter2\n")
    (project / ".git" / "config").write_text("[core]\n")
    (project / "allure-results").mkdir()
    (project / "allure-results" / "mine.json").write_text("{}")
    before = _tree(project)
    for force in ((), ("--force",)):
        _refused(_small_run(practice_config, project, *force),
                 f"--out {project} is not empty (.env, .git): give a new or empty folder")
        assert _tree(project) == before
    (tmp_path / "empty").mkdir()
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "empty", target_is_directory=True)
    _refused(_small_run(practice_config, link), f"--out {link} is a symbolic link; vigie does not write through links")
    assert not any((tmp_path / "empty").iterdir())


def test_a_previous_bundle_is_replaced_only_with_force(practice_config, tmp_path):
    bundle = tmp_path / "bundle"
    assert _small_run(practice_config, bundle).returncode == 0
    first = json.loads((bundle / "report.json").read_text())["run"]["started"]
    before = _tree(bundle)
    _refused(_small_run(practice_config, bundle),
             f"--out {bundle} holds a previous vigie bundle: give --force to replace it, or another folder")
    assert _tree(bundle) == before
    # re-rendering a bundle in place goes on working
    again = vigie("report", str(bundle), "--format", "junit")
    assert again.returncode == 0 and (bundle / "junit.xml").is_file(), again.stderr
    replaced = _small_run(practice_config, bundle, "--force")
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads((bundle / "report.json").read_text())["run"]["started"] != first
    assert not (bundle / "junit.xml").exists(), "a file of the previous bundle was left in the new one"
    assert vigie("verify", str(bundle), "--integrity-only").returncode == 0
    # a bundle with a file vigie did not write is neither replaced nor sealed
    (bundle / ".env").write_text("DB_PASSWORD=hunter2\n")
    _refused(_small_run(practice_config, bundle, "--force"),
             f"--out {bundle} is not empty (.env): give a new or empty folder")
    _refused(vigie("report", str(bundle), "--format", "md"),
             f"{bundle}: holds files vigie did not write (.env); not sealed as a bundle")
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert ".env" not in {f["path"] for f in manifest["files"]}
