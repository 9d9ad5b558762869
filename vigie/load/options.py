"""The load flags of `vigie run` and `vigie demo`, and the worker side of a distributed load run.

The flags override the profile's load plan for this run; they travel to the load observation in the
environment variables that vigie.load.plan reads (the same ones a CI job may set directly).
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import click

from ..errors import VigieError
from .plan import DEFAULT_MASTER_PORT

FLAGS = (
    ("--load-users", "load_users", {"type": click.IntRange(1)}, "Concurrent users of the load phase."),
    ("--load-duration", "load_duration", {"type": click.FloatRange(min=0.1)}, "Seconds the load phase lasts."),
    ("--load-spawn-rate", "load_spawn_rate", {"type": click.FloatRange(min=0.01)}, "Load users started per second."),
    ("--workers", "workers", {"type": click.IntRange(0)}, "Generate the load with N local worker processes."),
    ("--master", "master", {"is_flag": True}, "Be the load master of --expect-workers remote workers."),
    ("--expect-workers", "expect_workers", {"type": click.IntRange(1)}, "Remote load workers the master waits for."),
    ("--worker", "worker", {"is_flag": True}, "Only lend this machine's load to the master at --master-host."),
    ("--master-host", "master_host", {}, "Host of the load master (with --worker)."),
    ("--master-port", "master_port", {"type": click.IntRange(1, 65535)},
     f"Port of the load master (default {DEFAULT_MASTER_PORT})."),
)
ENV = {"load_users": "VIGIE_LOAD_USERS", "load_duration": "VIGIE_LOAD_DURATION",
       "load_spawn_rate": "VIGIE_LOAD_SPAWN_RATE", "workers": "VIGIE_LOAD_WORKERS",
       "expect_workers": "VIGIE_LOAD_EXPECT_WORKERS"}


def load_options(fn):
    """Adds the load flags; the command receives them as one dict, `load_flags`."""
    @functools.wraps(fn)
    def command(*args, **kwargs):
        flags = {key: kwargs.pop(key) for _, key, _, _ in FLAGS}
        return fn(*args, load_flags=flags, **kwargs)
    for flag, key, kind, text in reversed(FLAGS):
        command = click.option(flag, key, default=None, help=text, **kind)(command)
    return command


def apply(load_flags: dict | None) -> str | None:
    """Sets the environment the load observation reads and checks the resulting plan up front (a bad value
    is a usage error now, not an error outcome after the other checks). Returns the master's address when
    this process is to be a --worker, else None."""
    from .plan import make_plan
    flags = dict(load_flags or {})
    port = flags.get("master_port") or DEFAULT_MASTER_PORT
    if flags.get("worker"):
        if not flags.get("master_host"):
            raise VigieError("--worker needs --master-host HOST")
        if flags.get("master") or flags.get("workers"):
            raise VigieError("--worker excludes --master and --workers")
        return f"{flags['master_host']}:{port}"
    if flags.get("master_host"):
        raise VigieError("--master-host goes with --worker")
    if flags.get("expect_workers") and not flags.get("master"):
        raise VigieError("--expect-workers goes with --master")
    for key, var in ENV.items():
        if flags.get(key) is not None:
            os.environ[var] = str(flags[key])
    if flags.get("master"):
        os.environ["VIGIE_LOAD_MASTER"] = f"*:{port}"
    make_plan(None)
    return None


def serve_worker(targets, profiles, master: str, out_dir: Path) -> int:
    """`vigie run --worker --master-host H`: lends this machine's load to a master, for the campaign's target."""
    from ..loadrun import target_env
    from .plan import plan_for
    from .process import run_worker
    loads = [(r, t) for p in profiles for r in p.requirements if r.check == "load.target"
             for t in targets if t.kind in p.applies_to]
    if not loads:
        raise VigieError("no load requirement applies to the targets: nothing for a load worker to do")
    requirement, target = loads[0]
    plan = plan_for(requirement)
    env = {**target_env(target), "VIGIE_LOAD_MIX": json.dumps(plan.mix)}
    click.echo(f"load worker for {target.id} ({plan.locustfile().name}) joining the master at {master}")
    made = run_worker(plan.locustfile(), master, env, out_dir)
    click.echo(f"load worker done: {made} requests sent to {target.url}")
    return 0
