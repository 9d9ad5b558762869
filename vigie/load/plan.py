"""The load plan of a run: which scenario file, how many users for how long, the mix, the distribution.

A profile declares its plan once, in its profile-level params (shared by every requirement of the profile):

    params:
      load: {scenario: practice, users: 5, spawn_rate: 5, duration_s: 5,
             mix: {patient-search-name: 4, slot-search: 2}}

`scenario` names load/locustfile_<scenario>.py (or is a path to a locustfile); `mix` sets task weights by
request name (0 switches a task off). The command line overrides users, duration and spawn rate
(`--load-users`, `--load-duration`, `--load-spawn-rate`, which set VIGIE_LOAD_USERS, VIGIE_LOAD_DURATION
and VIGIE_LOAD_SPAWN_RATE) and chooses how the load is generated: in one process, with local worker
processes (`--workers N`: VIGIE_LOAD_WORKERS), or as a master that remote `vigie run --worker` processes
join (`--master`: VIGIE_LOAD_MASTER=host:port, VIGIE_LOAD_EXPECT_WORKERS). Every run is bounded: at most
MAX_USERS users for at most MAX_DURATION_S seconds.
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import VigieError

MAX_USERS = 2000
MAX_DURATION_S = 3600.0
MAX_WORKERS = 64
DEFAULTS = {"scenario": "practice", "users": 5, "spawn_rate": 5.0, "duration_s": 5.0}
PLAN_KEYS = {"scenario", "users", "spawn_rate", "duration_s", "mix"}
DEFAULT_MASTER_PORT = 5557  # locust's own default


@dataclass
class LoadPlan:
    scenario: str = DEFAULTS["scenario"]
    users: int = DEFAULTS["users"]
    spawn_rate: float = DEFAULTS["spawn_rate"]
    duration_s: float = DEFAULTS["duration_s"]
    mix: dict = field(default_factory=dict)
    workers: int = 0  # local worker processes (0: a single local process)
    master: str | None = None  # "host:port" to bind as the master of remote workers
    expect_workers: int = 0  # remote workers the master waits for
    abort: list = field(default_factory=list)  # [(requirement id, params)] of targets with abort_on_fail
    targets: list = field(default_factory=list)  # [(requirement id, params)] of every target of the profile
    profile: str = ""

    def locustfile(self) -> Path:
        from ..suite import ROOT
        override = os.environ.get("VIGIE_LOAD_LOCUSTFILE")
        if override:
            return Path(override)
        if "/" in self.scenario or self.scenario.endswith(".py"):
            return Path(self.scenario)
        return ROOT / "load" / f"locustfile_{self.scenario}.py"

    def key(self) -> str:
        """What makes two plans the same run (the profile that asked does not)."""
        return json.dumps({k: v for k, v in asdict(self).items() if k not in ("abort", "targets", "profile")},
                          sort_keys=True)

    def to_json(self) -> dict:
        return {**{k: v for k, v in asdict(self).items() if k not in ("abort", "targets")},
                "abort_on_fail": [rid for rid, _ in self.abort], "locustfile": str(self.locustfile()),
                "key": self.key()}


def _number(name: str, raw, kind, low: float, high: float):
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise VigieError(f"{name} must be a number, not {raw!r}") from None
    if isinstance(raw, bool) or not low <= value <= high:
        raise VigieError(f"{name} must be between {low:g} and {high:g}, not {raw!r}")
    return value


def make_plan(block: dict | None, env=None, profile: str = "", abort=(), targets=()) -> LoadPlan:
    """A plan from a profile's `load` block, then the environment's overrides; refuses what is unbounded."""
    env = os.environ if env is None else env
    block = dict(block or {})
    unknown = sorted(set(block) - PLAN_KEYS)
    if unknown:
        raise VigieError(f"load plan: unknown key '{unknown[0]}' (allowed: {', '.join(sorted(PLAN_KEYS))})")
    merged = {**DEFAULTS, **block}
    for key, var in (("users", "VIGIE_LOAD_USERS"), ("duration_s", "VIGIE_LOAD_DURATION"),
                     ("spawn_rate", "VIGIE_LOAD_SPAWN_RATE")):
        if env.get(var):
            merged[key] = env[var]
    users = _number("load users", merged["users"], int, 1, MAX_USERS)
    duration = _number("load duration (s)", merged["duration_s"], float, 0.1, MAX_DURATION_S)
    spawn_rate = _number("load spawn rate", merged["spawn_rate"], float, 0.01, 10_000)
    mix = merged.get("mix") or {}
    if not isinstance(mix, dict) or not all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
                                            and v >= 0 for k, v in mix.items()):
        raise VigieError("load plan: mix maps request names to non-negative integer weights")
    if mix and not any(mix.values()):
        raise VigieError("load plan: the mix switches every task off")
    scenario = merged["scenario"]
    if not isinstance(scenario, str) or not scenario:
        raise VigieError("load plan: scenario must name a locustfile")
    workers = _number("load workers", env.get("VIGIE_LOAD_WORKERS") or 0, int, 0, MAX_WORKERS)
    master = env.get("VIGIE_LOAD_MASTER") or None
    expect = _number("expected load workers", env.get("VIGIE_LOAD_EXPECT_WORKERS") or 0, int, 0, MAX_WORKERS)
    if master:
        parse_address(master)
        if not expect:
            raise VigieError("a load master needs the number of workers to wait for (--expect-workers N)")
        if workers:
            raise VigieError("--workers (local workers) and --master (remote workers) exclude each other")
    return LoadPlan(scenario=scenario, users=users, spawn_rate=spawn_rate, duration_s=duration,
                    mix=dict(mix), workers=workers, master=master, expect_workers=expect if master else 0,
                    abort=list(abort), targets=list(targets), profile=profile)


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host:
        host, port = text, str(DEFAULT_MASTER_PORT)
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not host or not 0 < number < 65536:
        raise VigieError(f"load master address must be host:port, not {text!r}")
    return host, number


def plan_for(requirement) -> LoadPlan:
    """The plan of the requirement's profile: its `load` param, every sibling target (the run goes on until
    each can be judged, within a bound) and those that abort."""
    siblings = _siblings(requirement.profile, requirement.check) or [requirement]
    abort = [(r.id, r.params) for r in siblings if r.params.get("abort_on_fail")]
    return make_plan(requirement.params.get("load"), profile=requirement.profile, abort=abort,
                     targets=[(r.id, r.params) for r in siblings])


@functools.lru_cache(maxsize=32)
def _siblings(profile_id: str, check: str) -> list:
    """The requirements of a catalogue profile that share a check (a profile outside it has none)."""
    from ..catalogue import load_catalogue
    try:
        profile = load_catalogue().get(profile_id)
    except VigieError:
        return []
    return [r for r in profile.requirements if r.check == check] if profile else []
