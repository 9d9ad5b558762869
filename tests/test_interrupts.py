"""Interruptions are interruptions: Ctrl-C (or SIGTERM) during a run stops it, keeps what was measured, reports
the run as interrupted with every requirement not reached not_tested, prints so and exits 130; the bundle is
written, and `vigie report` rebuilds the same report from the journal.

Each test starts vigie in its own process, as a user does, and signals it once the campaign is under way."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import practice_process

ROOT = Path(__file__).resolve().parent.parent
# the HTTP checks finish within a second or two; the load phase after them lasts far longer: a run signalled
# after its first outcome line is always interrupted before its end
PROFILES = ("--profile", "http-hardening", "--profile", "load-baseline")
WAIT_S = 120   # a bound on waiting for the run to reach a point, never an assertion on its speed


class Vigie:
    """`python -m vigie ARGS` with its output in a file that the test reads as it grows."""

    def __init__(self, tmp_path: Path, *args: str):
        self.log = tmp_path / "vigie.log"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "vigie", *args], stdout=out,
                                         stderr=subprocess.STDOUT, cwd=ROOT,
                                         env={**os.environ, "TMPDIR": str(tmp_path)})

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, condition, what: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not condition():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"{what} never came: {self.output()[-3000:]}")
            time.sleep(0.05)

    def signal(self, signum) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signum)

    def end(self) -> int:
        try:
            return self.proc.wait(timeout=WAIT_S)
        finally:
            self.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def demo(tmp_path):
    started = Vigie(tmp_path, "demo", *PROFILES, "--out", str(tmp_path / "bundle"))
    yield started
    started.stop()


def _report(bundle: Path) -> dict:
    return json.loads((bundle / "report.json").read_text(encoding="utf-8"))


def _journal(bundle: Path) -> list[dict]:
    return [json.loads(line) for line in (bundle / "journal.ndjson").read_text(encoding="utf-8").splitlines()]


def _vigie_report(bundle: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vigie", "report", str(bundle), *args], check=False,
                          capture_output=True, text=True, cwd=ROOT, timeout=WAIT_S)


def _outcome_line(vigie: Vigie) -> bool:
    return "@practice" in vigie.output()


def _assert_interrupted(bundle: Path, signame: str) -> dict:
    """report.json of a run that `signame` interrupted: every requirement has one outcome, those not reached
    are not_tested and say the run was interrupted, the verdict is incomplete."""
    report = _report(bundle)
    assert report["run"]["interrupted"] == signame
    assert report["run"]["complete"] is False
    assert report["verdict"] == "incomplete"
    cases = [tuple(c) for c in _journal(bundle)[0]["cases"]]
    assert sorted((o["requirement"], o["target"]) for o in report["outcomes"]) == sorted(cases)
    unreached = [o for o in report["outcomes"] if o["status"] == "not_tested"]
    assert unreached, "the run was interrupted before its end: some requirement was not reached"
    for o in unreached:
        assert f"interrupted ({signame})" in o["summary"], o
    # the run stops at once: no check after the one that was running when the signal came
    running = [o for o in unreached if "while this requirement was being checked" in o["summary"]]
    assert len(running) <= 1, running
    concluded = [o for o in report["outcomes"] if o["status"] != "not_tested"]
    assert [o for o in concluded if o["status"] != "passed"] == [], "the clean reference passes what was checked"
    return report


def test_ctrl_c_during_a_demo_reports_the_run_interrupted_and_exits_130(demo, tmp_path):
    demo.wait_for(lambda: _outcome_line(demo), "the first outcome")
    demo.signal(signal.SIGINT)
    code = demo.end()
    output = demo.output()
    assert code == 130, output[-3000:]
    assert "vigie: interrupted" in output
    assert "run interrupted (SIGINT)" in output   # under the verdict table
    bundle = tmp_path / "bundle"
    report = _assert_interrupted(bundle, "SIGINT")
    assert any(o["status"] == "passed" for o in report["outcomes"]), "what was measured before is kept"
    # the quick renderings say so, and the bundle is sealed
    assert "interrupted (SIGINT)" in (bundle / "summary.md").read_text(encoding="utf-8")
    assert (bundle / "manifest.json").is_file()
    assert not list(tmp_path.glob("vigie-demo-*")), "the demo's temporary folder (the server's key) is removed"

    # `vigie report` rebuilds the same report from the journal
    rebuilt = _vigie_report(bundle, "--format", "md", "--format", "html")
    assert rebuilt.returncode == 2, rebuilt.stderr
    assert "interrupted by SIGINT" in rebuilt.stdout
    assert "interrupted (SIGINT)" in (bundle / "report.html").read_text(encoding="utf-8")
    again = _assert_interrupted(bundle, "SIGINT")
    assert again["verdict"] == report["verdict"]
    assert [(o["requirement"], o["status"], o["summary"]) for o in again["outcomes"]] == \
        [(o["requirement"], o["status"], o["summary"]) for o in report["outcomes"]]


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            with contextlib.suppress(OSError):
                children = {int(c) for c in (task / "children").read_text().split()} - found
                todo.extend(children)
                found |= children
    return found


def _load_processes(pid: int) -> set[int]:
    found = set()
    for child in _descendants(pid):
        with contextlib.suppress(OSError):
            if b"vigie.load.driver" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.add(child)
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the load process in /proc")
def test_an_interrupt_during_the_load_phase_kills_the_load_process(demo, tmp_path):
    load = set()

    def loading() -> bool:
        load.update(_load_processes(demo.proc.pid))
        return bool(load)
    demo.wait_for(loading, "the load process")
    demo.signal(signal.SIGINT)
    assert demo.end() == 130, demo.output()[-3000:]
    assert not [pid for pid in load if _alive(pid)], "the load process outlived the interrupted run"
    report = _assert_interrupted(tmp_path / "bundle", "SIGINT")
    running = [o for o in report["outcomes"] if "while this requirement was being checked" in o["summary"]]
    assert [o["requirement"][:5] for o in running] == ["LOAD-"], running


def test_an_interrupt_inside_a_warehouse_query_stops_the_run_without_a_false_outcome(tmp_path):
    # DuckDB turns an interrupt that lands in a query into its own RuntimeError("Query interrupted"): the check
    # must not conclude on it, and the run must stop all the same
    bundle = tmp_path / "bundle"
    demo = Vigie(tmp_path, "demo", "--profile", "omop-dq", "--out", str(bundle))
    try:
        demo.wait_for(lambda: (bundle / "evidence" / "warehouse-catalogue").is_dir(), "the first warehouse check")
        demo.signal(signal.SIGINT)
        code = demo.end()
    finally:
        demo.stop()
    assert code == 130, demo.output()[-3000:]
    _assert_interrupted(bundle, "SIGINT")


def test_sigterm_ends_a_vigie_run_as_an_interrupt(tmp_path):
    with practice_process(tmp_path / "state") as state:
        run = Vigie(tmp_path, "run", "--config", str(state / "vigie.toml"), *PROFILES,
                    "--out", str(tmp_path / "bundle"))
        try:
            run.wait_for(lambda: "@fhir" in run.output() or "@practice" in run.output(), "the first outcome")
            run.signal(signal.SIGTERM)
            code = run.end()
        finally:
            run.stop()
    assert code == 130, run.output()[-3000:]
    assert "vigie: interrupted (SIGTERM)" in run.output()
    _assert_interrupted(tmp_path / "bundle", "SIGTERM")


def test_a_second_interrupt_while_the_bundle_is_written_ends_vigie_and_report_finishes_it(demo, tmp_path):
    bundle = tmp_path / "bundle"
    demo.wait_for(lambda: _outcome_line(demo), "the first outcome")
    demo.signal(signal.SIGINT)
    # report.json is written first, then the renderings: the second Ctrl-C lands while they are made
    demo.wait_for(lambda: (bundle / "report.json").is_file(), "the bundle")
    demo.signal(signal.SIGINT)
    assert demo.end() == 130, demo.output()[-3000:]
    assert "vigie: interrupted" in demo.output()
    assert _journal(bundle)[-1]["type"] == "interrupted"
    assert not list(tmp_path.glob("vigie-demo-*"))
    rebuilt = _vigie_report(bundle)
    assert rebuilt.returncode == 2, rebuilt.stderr
    _assert_interrupted(bundle, "SIGINT")
    assert (bundle / "manifest.json").is_file()


def test_the_journal_s_last_record_is_written_whole_whatever_is_pressed_meanwhile():
    from vigie.interrupts import shielded
    written, idle = [], threading.Event()
    # another thread, as in a demo (the reference server's): the kernel may hand it the signal, and Python then
    # runs the handler in the main thread all the same
    other = threading.Thread(target=idle.wait)
    other.start()
    time.sleep(0.1)   # until it waits
    try:
        with pytest.raises(KeyboardInterrupt), shielded():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)   # an fsync's wait: the other thread has long taken the signal
            written.append("the whole record")
    finally:
        idle.set()
        other.join()
    assert written == ["the whole record"]


def test_a_run_under_nohup_ignores_hangups():
    from vigie.interrupts import like_ctrl_c, pending, shielded, watched
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with like_ctrl_c(), watched(), shielded():
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.2)
            assert pending() is None
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)
