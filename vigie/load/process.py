"""Starting the load driver: locust in subprocesses, killed at their deadline, their output read back.

`import locust` monkey-patches the whole process with gevent, so vigie never imports it: each role of
vigie.load.driver runs in a fresh interpreter that imports locust first.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..errors import ObservationError, VigieError
from ..lifeline import PARENT_VARIABLE
from ..messages import quote
from .driver import ERROR_MARK, extension_s
from .stats import LoadResult

STOP_TIMEOUT_S = 2.0  # users get this long to finish their current request once the run time is up
GRACE_S = 20.0  # interpreter start, locust import and stop, on top of the run time
WAIT_LOCAL_WORKERS_S = 30.0  # local worker processes start in a few seconds
WAIT_REMOTE_WORKERS_S = 120.0  # remote workers are started by hand
WORKER_IDLE_S = 600.0  # a remote worker gives up when no master ends its work within this time

# locust reads and decompresses every answer whole: a 200 MB body or a gzip bomb must fail the requests
# that meet it (MemoryError), not fill the machine. Data (heap) only: address space reserved by threads
# and allocator arenas is not counted.
MEMORY_LIMIT = 384 << 20
# A locustfile whose users run an engine inside the process (the warehouse scenario: one DuckDB per user)
# declares the room each user needs, `VIGIE_MEMORY_PER_USER_MB = N`; the ceiling grows by that per user.
PER_USER = re.compile(rb"^VIGIE_MEMORY_PER_USER_MB\s*=\s*(\d+)", re.MULTILINE)
REMOTE_WORKER_USERS = 10   # a remote worker learns its share of users from the master: room for this many
# the driver imports locust before anything else so that gevent patches the process first, once it is bound
# to vigie's life (vigie.lifeline); the spec travels in the environment: a command line is visible to
# every user of the machine
_BOOTSTRAP = ("from vigie.lifeline import bind_to_parent; bind_to_parent(); "
              "import os, resource; limit = int(os.environ.pop('VIGIE_LOAD_MEMORY')); "
              "resource.setrlimit(resource.RLIMIT_DATA, (limit, limit)); "
              "import locust, sys; from vigie.load.driver import drive; "
              "sys.exit(drive(os.environ.pop('VIGIE_LOAD_SPEC')))")


def memory_limit(spec: dict) -> int:
    """The data ceiling of one load process: MEMORY_LIMIT, and the room its locustfile asks for each user."""
    try:
        found = PER_USER.search(Path(spec["locustfile"]).read_bytes())
    except OSError:
        found = None
    users = spec["users"] or REMOTE_WORKER_USERS
    return MEMORY_LIMIT + (int(found.group(1)) << 20) * users if found else MEMORY_LIMIT


def _child_env(env: dict) -> dict:
    package_parent = str(Path(__file__).resolve().parent.parent.parent)
    return {**os.environ, **{k: str(v) for k, v in env.items()},
            "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))}


def _start(spec: dict, env: dict, cwd: Path, log_path: Path) -> subprocess.Popen:
    # -P: the working directory must not shadow stdlib modules (locust's own html.py does, inside its folder)
    cmd = [sys.executable, "-P", "-c", _BOOTSTRAP]
    with open(log_path, "wb") as log:
        return subprocess.Popen(cmd, cwd=cwd, env={**_child_env(env), "VIGIE_LOAD_SPEC": json.dumps(spec),
                                                   "VIGIE_LOAD_MEMORY": str(memory_limit(spec)),
                                                   PARENT_VARIABLE: str(os.getpid())},
                                stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: nothing else shares this group
    except (AttributeError, ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def _wait(proc: subprocess.Popen, timeout_s: float) -> int | None:
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None
    finally:
        _kill(proc)


def reason(log_path: Path) -> str:
    """One line from a driver's output: its own message, else the last exception line."""
    text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.is_file() else ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith(ERROR_MARK):
            return ln[len(ERROR_MARK):]
    for ln in reversed(lines):
        if re.match(r"^[\w.]+(Error|Exception|Exit|Interrupt)\b", ln):
            return ln[:300]
    return lines[-1][:300] if lines else "no output"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare(locustfile, out_dir) -> tuple[Path, Path]:
    """The locustfile (which must exist) as an absolute path, and the output folder, created."""
    locustfile = Path(locustfile).resolve()
    if not locustfile.is_file():
        raise VigieError(f"locustfile {locustfile} not found")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return locustfile, out_dir


def run_load(locustfile: Path, host: str, users: int, spawn_rate: float, duration_s: float, env: dict,
             out_dir: Path, timeout_s: float | None = None, *, workers: int = 0, master: str | None = None,
             expect_workers: int = 0, abort=(), targets=(), plan: dict | None = None) -> LoadResult:
    """Runs locustfile against host, writes out_dir/stats.json and out_dir/locust.log, and returns the result.

    workers > 0 starts that many local worker processes under a master on loopback (their own totals go
    to out_dir/worker-<i>.json); master="host:port" binds a master there and waits for expect_workers
    remote workers. The run goes on past duration_s while one of `targets` cannot be judged yet (too few
    responses), at most extension_s(duration_s) more. Every process is killed if it outlives timeout_s. Settings for the locustfile travel
    in `env` (never argv, which other users of the machine can read)."""
    from .plan import parse_address
    locustfile, out_dir = _prepare(locustfile, out_dir)
    stats_path, log_path = out_dir / "stats.json", out_dir / "locust.log"
    stats_path.unlink(missing_ok=True)
    spec = {"locustfile": str(locustfile), "host": host, "users": int(users), "spawn_rate": float(spawn_rate),
            "duration_s": float(duration_s), "stop_timeout": STOP_TIMEOUT_S, "out": str(stats_path),
            "abort": [list(a) for a in abort], "targets": [list(t) for t in targets], "plan": plan or {},
            "role": "local"}
    wait_workers = 0.0
    if workers:
        spec.update(role="master", bind_host="127.0.0.1", bind_port=free_port(), expect_workers=workers,
                    wait_workers_s=WAIT_LOCAL_WORKERS_S)
        wait_workers = WAIT_LOCAL_WORKERS_S
    elif master:
        bind_host, bind_port = parse_address(master)
        spec.update(role="master", bind_host=bind_host, bind_port=bind_port, expect_workers=expect_workers,
                    wait_workers_s=WAIT_REMOTE_WORKERS_S)
        wait_workers = WAIT_REMOTE_WORKERS_S
    if timeout_s is None:
        timeout_s = duration_s + (extension_s(duration_s) if targets else 0) + STOP_TIMEOUT_S + GRACE_S + wait_workers
    procs = [_start(spec, env, out_dir, log_path)]
    for i in range(workers):
        worker = {**spec, "role": "worker", "master_host": "127.0.0.1", "master_port": spec["bind_port"],
                  "out": str(out_dir / f"worker-{i + 1}.json")}
        procs.append(_start(worker, env, out_dir, out_dir / f"worker-{i + 1}.log"))
    try:
        rc = _wait(procs[0], timeout_s)
        deadline = time.monotonic() + (10 if rc == 0 else 0)
        for proc in procs[1:]:  # the master told them to quit: give them a moment to write their totals
            _wait(proc, max(0.0, deadline - time.monotonic()))
    finally:
        for proc in procs:
            _kill(proc)
    if rc is None:
        raise ObservationError(f"load run did not end within {timeout_s:.0f} s and was killed")
    if rc != 0 or not stats_path.is_file():
        how = f"killed by signal {-rc}" if rc < 0 else f"exit {rc}"
        raise ObservationError(f"load run failed ({how}): {reason(log_path)}")
    result = LoadResult.from_json(json.loads(stats_path.read_text(encoding="utf-8")))
    # the driver's counts, completed with what is computed from them (percentiles, rates): one document
    stats_path.write_text(json.dumps(result.to_json(), indent=1), encoding="utf-8")
    require_traffic(result)
    return result


def run_worker(locustfile: Path, master: str, env: dict, out_dir: Path, idle_s: float = WORKER_IDLE_S) -> int:
    """A remote worker: joins the master at host:port and runs what it is told until the master quits.
    Returns the number of requests this worker made; bounded by idle_s."""
    from .plan import parse_address
    host, port = parse_address(master)
    locustfile, out_dir = _prepare(locustfile, out_dir)
    out, log = out_dir / "worker.json", out_dir / "worker.log"
    out.unlink(missing_ok=True)
    spec = {"locustfile": str(locustfile), "host": "", "users": 0, "spawn_rate": 0, "duration_s": 0,
            "stop_timeout": STOP_TIMEOUT_S, "abort": [], "targets": [], "role": "worker", "master_host": host,
            "master_port": port, "out": str(out)}
    rc = _wait(_start(spec, env, out_dir, log), idle_s)
    if rc is None:
        raise VigieError(f"the load worker got no complete run from {master} within {idle_s:.0f} s")
    if rc != 0 or not out.is_file():
        raise VigieError(f"the load worker failed: {reason(log)}")
    return json.loads(out.read_text(encoding="utf-8"))["requests"]


def require_traffic(result: LoadResult) -> None:
    """A run without one HTTP response observed nothing of the target: that is an error, not a measurement."""
    agg = result.aggregated
    top = max(result.errors.items(), key=lambda kv: kv[1])[0] if result.errors else "no error recorded"
    if agg.count == 0:
        raise ObservationError(f"the load run made no request ({top})")
    if result.http_responses == 0 and agg.failures == agg.count:
        raise ObservationError(f"no HTTP response from {result.host} in {agg.count} requests: {quote(top)}")
    if agg.failures == agg.count and set(result.status_codes) - {0} and set(result.status_codes) <= {0, 401, 403}:
        # the load observed the authorisation layer, not the service: a configuration problem, not a measure
        codes = ", ".join(f"HTTP {c} x{n}" for c, n in sorted(result.status_codes.items()) if c)
        raise ObservationError(f"every load request was refused ({codes}): check the target's token")

