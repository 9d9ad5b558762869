"""vigie's own processes facing a hostile end: the load process dies with vigie (issue 16, item 8)."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

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
    from fixtures.practice import start_practice
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
    import vigie.load.lifeline as lifeline
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
                             env={**os.environ, "VIGIE_LOAD_PARENT": str(os.getpid())})
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
