"""Limits of a run: time per check and per run, requests, bytes and request rate per target; per warehouse
statement, its time and the memory and threads of the engine.

A hostile or broken target must not hang a run, fill the memory or receive more traffic than the user
allowed. The limits come from vigie.toml's [limits] table and the command line; they are recorded in
report.json (run.limits).

Time limits use SIGALRM in the main thread (where pytest runs the checks): a blocking read cannot be
interrupted any other way. Deadlines nest (a request inside a check inside a run); the timer is set to
the earliest one, and when it expires the error of that deadline is raised where the main thread is.
"""
from __future__ import annotations

import contextlib
import math
import re
import resource
import signal
import threading
import time
from dataclasses import asdict, dataclass, fields
from typing import ClassVar, Self

import pytest

from .errors import ObservationError, VigieError

KEYS = {"check_timeout": "check_timeout_s", "run_timeout": "run_timeout_s", "max_requests": "max_requests",
        "max_bytes": "max_bytes", "rate": "rate", "max_memory": "max_memory",
        "statement_timeout": "statement_timeout_s", "engine_memory": "engine_memory", "engine_threads": "engine_threads"}
SIZES = ("max_bytes", "max_memory", "engine_memory")
INTEGERS = ("max_requests", "engine_threads")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
STALL_AFTER = 3     # requests in a row without an answer in time, after which a target is not asked again


@dataclass(frozen=True)
class Limits:
    check_timeout_s: float = 300.0     # one check, its observations included (a TLS scan, a load run)
    run_timeout_s: float = 3600.0      # the whole run, its renderings included; requirements not reached
                                       # become not_tested, renderings not made in time are reported
    max_requests: int = 20_000         # per target, requests of the checks (the load phase has its own bounds)
    max_bytes: int = 1 << 30           # per target, response bodies received by the checks
    rate: float = 50.0                 # per target, requests per second of the checks
    request_timeout_s: float = 60.0    # one request, from connection to the last byte of its body
    max_memory: int = 4 << 30          # data of vigie's run process, and of its rendering process
    statement_timeout_s: float = 600.0  # one SQL statement on a warehouse, hence one DataQualityDashboard check
                                        # (whose checks are not bounded by check_timeout together)
    engine_memory: int = 1 << 30       # DuckDB's buffer pool, inside vigie's process (larger operators spill to
                                       # disk): 96 MB left 3 checks in error at 10M persons (an EDS's size), 1 GiB
                                       # none, at a peak of 1.5 GiB; a cap, not an allocation
    engine_threads: int | None = None  # DuckDB's threads, PostgreSQL's parallel workers + 1; None: the engine's

    def to_json(self) -> dict:
        return asdict(self)


def parse_size(value, what: str = "max_bytes") -> int:
    """A byte count: an integer, or a string such as "200M", "1GiB", "512k" (binary units)."""
    if isinstance(value, bool):
        raise VigieError(f"{what} must be a size such as 200M, not {value!r}")
    if isinstance(value, int):
        number = value
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise VigieError(f"{what} must be a size such as 200M or 1G, not {value!r}")
        number = int(float(match.group(1)) * _UNITS[(match.group(2) or "")[:1].lower()])
    if number <= 0:
        raise VigieError(f"{what} must be positive, not {value!r}")
    return number


def _positive(value, what: str, kind=float):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise VigieError(f"{what} must be a positive number, not {value!r}")
    try:
        number = kind(value)
    except (ValueError, OverflowError):
        raise VigieError(f"{what} must be a positive number, not {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise VigieError(f"{what} must be a positive number, not {value!r}")
    return number


def _whole(value, what: str) -> int:
    number = _positive(value, what)
    if number != int(number):
        raise VigieError(f"{what} must be a whole number, not {value!r}")
    return int(number)


def make_limits(settings: dict | None, where: str = "limits") -> Limits:
    """Limits from a [limits] table or flags ({"check_timeout": 10, "max_bytes": "200M", ...}); unset
    values keep their defaults."""
    settings = {k: v for k, v in (settings or {}).items() if v is not None}
    unknown = set(settings) - set(KEYS)
    if unknown:
        raise VigieError(f"{where}: unknown key '{min(unknown)}' (allowed: {', '.join(sorted(KEYS))})")
    values = {}
    for key, value in settings.items():
        label = f"{where}: {key}"
        if key in SIZES:
            values[KEYS[key]] = parse_size(value, label)
        elif key in INTEGERS:
            values[KEYS[key]] = _whole(value, label)
        else:
            values[KEYS[key]] = _positive(value, label)
    return Limits(**values)


def merge(base: Limits, overrides: dict) -> Limits:
    """base with the flags that were given (overrides as for make_limits)."""
    given = make_limits(overrides, "command line")
    chosen = {KEYS[k] for k, v in overrides.items() if v is not None}
    return Limits(**{f.name: getattr(given if f.name in chosen else base, f.name) for f in fields(Limits)})


@contextlib.contextmanager
def memory_ceiling(limit: int):
    """Caps the data this process may allocate (RLIMIT_DATA, soft) while the block runs: what meets the ceiling
    gets a MemoryError (a check that does ends as error) instead of the machine's memory. A lower ceiling
    already set stays; the previous one is put back afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    ceiling = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    if soft != resource.RLIM_INFINITY:
        ceiling = min(ceiling, soft)
    resource.setrlimit(resource.RLIMIT_DATA, (ceiling, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


# ---- per-target budget: requests, bytes, rate -----------------------------------------------------------

class Budget:
    """What the checks may still send to and receive from one target. Shared by every client of the
    target (the checks' client, the observations' own clients)."""

    def __init__(self, limits: Limits, clock=time.monotonic, sleep=time.sleep):
        self.limits = limits
        self.requests = 0
        self.bytes = 0
        self.stalled = 0    # requests in a row that timed out
        self._clock, self._sleep = clock, sleep
        self._tokens = max(1.0, limits.rate)     # a burst of one second's worth
        self._refilled = clock()
        self._lock = threading.Lock()

    def take_request(self, what: str) -> None:
        """Counts one request, after waiting for the rate limit; refuses it beyond the caps."""
        with self._lock:
            if self.requests >= self.limits.max_requests:
                raise ObservationError(f"{what} not sent: the limit of {self.limits.max_requests} requests "
                                       f"per target was reached")
            if self.bytes >= self.limits.max_bytes:
                raise ObservationError(f"{what} not sent: the limit of {self.limits.max_bytes} bytes "
                                       f"per target was reached")
            if self.stalled >= STALL_AFTER:
                raise ObservationError(f"{what} not sent: the target answered none of the last {STALL_AFTER} "
                                       f"requests in time")
            now = self._clock()
            capacity = max(1.0, self.limits.rate)
            self._tokens = min(capacity, self._tokens + (now - self._refilled) * self.limits.rate)
            self._refilled = now
            self._tokens -= 1
            wait = -self._tokens / self.limits.rate if self._tokens < 0 else 0.0
            self.requests += 1
        if wait > 0:
            self._sleep(wait)

    def answered(self, in_time: bool) -> None:
        """Notes whether a request got its answer in time: a target that lets STALL_AFTER requests in a row
        wait out their timeouts is not asked again (each would wait as long, check after check)."""
        with self._lock:
            self.stalled = 0 if in_time else self.stalled + 1

    def bytes_left(self) -> int:
        return max(0, self.limits.max_bytes - self.bytes)

    def spend_bytes(self, count: int) -> None:
        with self._lock:
            self.bytes += count


# One run per process: observations create their own HTTP clients, and each must draw on the same budget
# as the checks' client of that target, so the budgets live here rather than in any one client.
_budgets: dict[str, Budget] = {}
_limits = Limits()


def activate(limits: Limits) -> None:
    """Starts a run's budgets afresh with its limits."""
    global _limits
    _limits = limits
    _budgets.clear()


def current() -> Limits:
    """The limits of the run under way (the defaults outside a run)."""
    return _limits


def budget_for(target) -> Budget:
    if target.id not in _budgets:
        _budgets[target.id] = Budget(_limits)
    return _budgets[target.id]


# ---- time limits ------------------------------------------------------------------------------------------

class TimeLimitExceeded(pytest.fail.Exception):
    """A check (or the run) outlived its time limit. Not an Exception, so that a check's own `except
    Exception` cannot swallow it; one of pytest's outcomes, so that pytest still tidies the fixtures it
    interrupts (any other BaseException there leaves them half set up for the next check)."""

    def __init__(self, message: str):
        super().__init__(message, pytrace=False)


class Deadline:
    """Raises `error` in the main thread once `seconds` have passed, unless cancelled first. Outside the
    main thread (or with seconds None) it does nothing: only the main thread can be interrupted."""

    _active: ClassVar[list[Deadline]] = []
    _saved: ClassVar[tuple] = (None, 0.0, 0.0)   # the SIGALRM handler and timer in place before the first deadline
    _held = False    # between two steps of a check: an expiry waits for release()
    _due = False

    def __init__(self, seconds: float | None, error: BaseException, scope: str = ""):
        self.seconds, self.error, self.scope = seconds, error, scope
        self.expires: float | None = None
        self.fired = False

    def start(self) -> Self:
        if self.seconds is None or threading.current_thread() is not threading.main_thread():
            return self
        if not Deadline._active:
            # someone else's timer (pytest-timeout's, when vigie runs inside a test) is put back afterwards
            Deadline._saved = (signal.signal(signal.SIGALRM, Deadline._expire),
                               signal.getitimer(signal.ITIMER_REAL)[0], time.monotonic())
        self.expires = time.monotonic() + max(self.seconds, 0.0)
        Deadline._active.append(self)
        Deadline._arm()
        return self

    def cancel(self) -> None:
        if self not in Deadline._active:
            return
        Deadline._active.remove(self)
        if Deadline._active:
            Deadline._arm()
            return
        handler, remaining, saved_at = Deadline._saved
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, handler if handler is not None else signal.SIG_DFL)
        if remaining:
            signal.setitimer(signal.ITIMER_REAL, max(remaining - (time.monotonic() - saved_at), 0.001))

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cancel()

    @classmethod
    def remaining(cls) -> float | None:
        """Seconds until the earliest active deadline falls due (None without one): what a wait that signals
        cannot interrupt (a query inside an engine's C code) must stop within."""
        pending = [d.expires for d in cls._active if not d.fired and d.expires != math.inf]
        return max(min(pending) - time.monotonic(), 0.0) if pending else None

    @classmethod
    def fired_error(cls) -> BaseException | None:
        """The error of an active deadline that has fired, which a C extension may have replaced by its own
        when the signal reached it mid-call (DuckDB raises RuntimeError "Query interrupted" or its
        InterruptException)."""
        fired = [d for d in cls._active if d.fired]
        return fired[0].error if fired else None

    @classmethod
    @contextlib.contextmanager
    def suspended(cls, scope: str):
        """The active deadlines of `scope` stop running while the block runs and resume with the time they
        had left: work shared by many checks (every DataQualityDashboard check, run by the first omop-dq
        requirement) is bounded by its own limits, not charged to the check that happens to start it."""
        now = time.monotonic()
        paused = [(d, d.expires - now) for d in cls._active if d.scope == scope and not d.fired
                  and d.expires != math.inf]
        for d, _ in paused:
            d.expires = math.inf
        cls._arm()
        try:
            yield
        finally:
            now = time.monotonic()
            for d, left in paused:
                d.expires = now + left
            if cls._active:
                cls._arm()

    @classmethod
    def _arm(cls) -> None:
        pending = [d.expires for d in cls._active if not d.fired and d.expires != math.inf]
        if not pending:
            signal.setitimer(signal.ITIMER_REAL, 0)
            return
        signal.setitimer(signal.ITIMER_REAL, max(min(pending) - time.monotonic(), 0.001))

    @classmethod
    def hold(cls) -> None:
        """Defers expiries: the code about to run (pytest's own, between a check's setup and its call)
        must not be interrupted. release() raises what fell due meanwhile."""
        cls._held = True

    @classmethod
    def release(cls) -> None:
        cls._held = False
        if cls._due:
            cls._due = False
            cls._expire(signal.SIGALRM, None)

    @classmethod
    def _expire(cls, signum, frame) -> None:
        if cls._held:
            cls._due = True
            return
        now = time.monotonic()
        due = [d for d in cls._active if not d.fired and d.expires <= now]
        if not due:   # early by a hair, or the deadline was cancelled meanwhile
            cls._arm()
            return
        first = min(due, key=lambda d: d.expires)
        first.fired = True
        cls._arm()
        raise first.error
