"""The pytest plugin: runs each check once per selected requirement and target, records outcomes.

Checks are ordinary pytest tests marked with @check("id"). The plugin parametrises them over the run's
cases (requirement, target) with ids such as `REQ-01@practice`, gives the fixtures a check needs, turns
the way each test ended into an outcome and appends it to the journal as soon as it is known.
"""
from __future__ import annotations

import contextlib
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from . import checks as conclusions
from .checks import Concluded
from .errors import ObservationError
from .evidence import safe_name
from .interrupts import pending, signal_name
from .limits import Deadline, TimeLimitExceeded
from .model import Outcome
from .suite import CHECK_DIRS, ROOT
from .writes import READ_ONLY_REASON, may_write, writes

# vigie's own code: the suite's folders and the engine (this package, wherever it is installed)
VIGIE_DIRS = tuple(f"{d}{os.sep}" for d in (*(ROOT / c for c in CHECK_DIRS), Path(__file__).resolve().parent))

RECORDER = pytest.StashKey()
DONE = pytest.StashKey()
TIMERS = pytest.StashKey()
CASE = "vigie_case"


class Recorder:
    """What a check records about its outcome besides its conclusion."""

    def __init__(self, store):
        self.store = store
        self.messages: list[str] = []
        self.measurements: dict = {}
        self.links: list[str] = []
        self.started = datetime.now(UTC).isoformat(timespec="seconds")
        self.clock = time.monotonic()

    def measure(self, **values) -> None:
        self.measurements.update(values)

    def message(self, text: str) -> None:
        self.messages.append(str(text))

    def link(self, path: str) -> None:
        if path and path not in self.links:
            self.links.append(path)

    def evidence(self, name: str, data) -> str:
        """Writes evidence/<name> (redacted) and links it to this outcome."""
        path = self.store.write_json(name, data)
        self.link(path)
        return path


def _where(excinfo, ours_only: bool) -> str:
    entries = [e for e in excinfo.traceback if str(e.path).startswith(VIGIE_DIRS)] if ours_only \
        else list(excinfo.traceback)
    if not entries:
        return ""
    path = Path(str(entries[-1].path))
    shown = path.relative_to(ROOT) if str(path).startswith(str(ROOT)) else path.name
    return f" (at {shown}:{entries[-1].lineno + 1})"


def unconcluded(excinfo) -> tuple[str, str]:
    """The outcome of a check that made no conclusion through vigie.checks: never passed."""
    if excinfo is None:
        return "error", "the check ended without a conclusion (a defect of vigie's suite: please report it)"
    exc = excinfo.value
    if isinstance(exc, Concluded):   # concluded outside a running check's bookkeeping
        return exc.status, exc.summary
    if isinstance(exc, pytest.skip.Exception):
        return "not_tested", exc.msg
    if isinstance(exc, ObservationError | TimeLimitExceeded):
        return "error", str(exc.msg if isinstance(exc, TimeLimitExceeded) else exc)
    if isinstance(exc, AssertionError):
        # an assertion concludes nothing: a library's own sanity check tripped by what a target sent, or
        # a bare assert that -O would have removed
        return "error", (f"internal assertion failed{_where(excinfo, False)}" + (f": {exc}" if str(exc) else "")
                         + " (not a conclusion: a library or vigie could not handle what it received)")
    if isinstance(exc, pytest.fail.Exception):
        return "error", f"{exc.msg}{_where(excinfo, True)}"
    # an unexpected exception is vigie's own defect, usually met on input no check foresaw: where it was
    # raised in vigie's code makes the report actionable
    return "error", f"{type(exc).__name__}: {exc}{_where(excinfo, True)}"


def interrupted_while_checked(signame: str) -> tuple[str, str]:
    return "not_tested", f"interrupted ({signame}) while this requirement was being checked"


class VigiePlugin:
    def __init__(self, run):
        self.run = run            # vigie.runner.Run: cases, store, cache, journal, clients, callbacks
        self.checks: dict[str, str] = {}
        self.writes: dict[str, object] = {}   # check id -> its @check(writes=...)
        self.current = None       # the item being run: an interrupt concludes it

    def pytest_configure(self, config):
        config.addinivalue_line("markers", "vigie_check(id): the check id a test implements")

    def pytest_collectreport(self, report):
        if report.failed:
            last = (report.longreprtext.strip().splitlines() or ["collection failed"])[-1]
            self.run.suite_errors.append(f"{report.nodeid}: {last}")

    def pytest_generate_tests(self, metafunc):
        marker = metafunc.definition.get_closest_marker("vigie_check")
        if marker is None or CASE not in metafunc.fixturenames:
            return
        check_id = marker.args[0]
        owner = self.checks.setdefault(check_id, metafunc.definition.nodeid)
        if owner != metafunc.definition.nodeid:
            self.run.suite_errors.append(f"check '{check_id}' is implemented twice: {owner}, "
                                         f"{metafunc.definition.nodeid}")
            return
        self.writes[check_id] = marker.kwargs.get("writes", False)
        cases = [c for c in self.run.cases if c[0].check == check_id]
        metafunc.parametrize(CASE, cases, ids=[f"{r.id}@{t.id}" for r, t in cases])

    def pytest_collection_modifyitems(self, session, config, items):
        # keep only the checks that serve a selected requirement (no empty-parameter placeholders)
        items[:] = [i for i in items
                    if isinstance(getattr(getattr(i, "callspec", None), "params", {}).get(CASE), tuple)]

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item, nextitem):
        if pending() and not self.run.interrupted:
            # the user's interrupt was swallowed where Python drops exceptions (a finaliser): it stops the
            # run here, before the next check, as pytest stops on any interrupt
            raise KeyboardInterrupt(pending())
        params = getattr(getattr(item, "callspec", None), "params", {})
        if not isinstance(params.get(CASE), tuple):
            return None
        requirement = params[CASE][0]
        if time.monotonic() >= self.run.deadline:
            # past the run's time limit, the requirements not reached are not tested, and say why
            ended = ("not_tested", f"not run: the run time limit of {self.run.limits.run_timeout_s:g} s was reached")
        elif writes(self.writes.get(requirement.check, False), requirement.params):
            if not self.run.read_only:
                may_write()   # the run has something to delete at its end
                return None
            ended = ("not_tested", READ_ONLY_REASON)
        else:
            return None
        item.stash[RECORDER] = Recorder(self.run.store)
        item.stash[DONE] = True
        self._finish(item, params[CASE], None, ended=ended)
        return True

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item):
        self.current = item
        item.stash[RECORDER] = Recorder(self.run.store)
        conclusions.begin()
        for client in self.run.clients.values():
            client.take_exchanges()
        # from the first fixture (observations run there) to the end of the call
        limits = self.run.limits
        item.stash[TIMERS] = [
            Deadline(limits.check_timeout_s,
                     TimeLimitExceeded(f"time limit of {limits.check_timeout_s:g} s exceeded"), "check").start(),
            Deadline(max(self.run.deadline - time.monotonic(), 0),
                     TimeLimitExceeded(f"the run time limit of {limits.run_timeout_s:g} s was reached")).start()]

    @staticmethod
    def _stop_timers(item):
        for timer in item.stash.get(TIMERS, []):
            timer.cancel()
        item.stash[TIMERS] = []
        Deadline.release()   # nothing of this check is left to fall due

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_teardown(self, item):
        self._stop_timers(item)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        Deadline.release()   # inside pytest's guard of the call: what fell due since setup is raised here
        yield
        self._stop_timers(item)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        if call.when != "setup" or call.excinfo is not None:
            self._stop_timers(item)   # the check is over: nothing may interrupt the journal write
        else:
            Deadline.hold()   # pytest's own code runs until the call starts
        yield
        params = getattr(getattr(item, "callspec", None), "params", {})
        # an empty parametrisation leaves a NOTSET placeholder: not one of our cases
        if not isinstance(params.get(CASE), tuple) or item.stash.get(DONE, False):
            return
        if call.when == "call" or (call.when == "setup" and call.excinfo is not None):
            item.stash[DONE] = True
            self._finish(item, params[CASE], call.excinfo)

    def pytest_keyboard_interrupt(self, excinfo):
        # pytest's own Interrupted (a stop it decided on) and pytest.exit are not a signal from the user
        if type(excinfo.value) is not KeyboardInterrupt:
            return
        self.run.interrupted = signal_name(excinfo.value)
        item, self.current = self.current, None
        if item is None:
            return
        with contextlib.suppress(TimeLimitExceeded):   # a limit that fell due meanwhile: the interrupt wins
            self._stop_timers(item)
        params = getattr(getattr(item, "callspec", None), "params", {})
        if isinstance(params.get(CASE), tuple) and RECORDER in item.stash and not item.stash.get(DONE, False):
            # what the check had observed stays linked to its outcome; the report's other requirements not
            # reached are recorded when it is built
            item.stash[DONE] = True
            self._finish(item, params[CASE], None, ended=interrupted_while_checked(self.run.interrupted))

    def _finish(self, item, case, excinfo, ended=None):
        requirement, target = case
        recorder = item.stash[RECORDER]
        # the check's own conclusion, made through vigie.checks; anything else is never a pass
        conclusion = conclusions.end()
        details = []
        if not ended and pending():
            # the user's interrupt landed while this check ran, and a library turned it into an error of its own
            # (DuckDB: "Query interrupted"): what it concluded may rest on an observation cut short
            ended = interrupted_while_checked(pending())
        if ended:
            status, summary = ended
        elif conclusion is not None:
            status, summary, details = conclusion.status, conclusion.summary, conclusion.details
            recorder.measure(**conclusion.measurements)
        else:
            status, summary = unconcluded(excinfo)
        client = self.run.clients.get(target.id)
        exchanges = client.take_exchanges() if client else []
        if exchanges:
            recorder.link(self.run.store.write_json(
                f"http/{safe_name(requirement.id + '@' + target.id)}.json", exchanges))
        lines = (summary or "").strip().splitlines() or [requirement.title_in(self.run.lang)]
        # a summary of several lines keeps its first as the summary, the rest as messages
        messages = [*recorder.messages, *details, *(["\n".join(lines[1:])] if lines[1:] else [])]
        outcome = Outcome(
            requirement=requirement.id, profile=requirement.profile, level=requirement.level,
            target=target.id, check=requirement.check, status=status,
            summary=self.run.store.redact.text(lines[0][:500]),
            title=requirement.title, reference=requirement.reference,
            messages=[self.run.store.redact.text(m) for m in messages],
            measurements=self.run.store.redact.data(recorder.measurements),
            evidence=recorder.links, started=recorder.started,
            duration_s=round(time.monotonic() - recorder.clock, 3))
        self.run.record(outcome)

    # fixtures -----------------------------------------------------------------------------------

    @pytest.fixture
    def vigie_case(self):
        pytest.skip("not parametrised by the vigie plugin")

    @pytest.fixture
    def requirement(self, vigie_case):
        return vigie_case[0]

    @pytest.fixture
    def target(self, vigie_case):
        return vigie_case[1]

    @pytest.fixture
    def outcome(self, request):
        return request.node.stash[RECORDER]

    @pytest.fixture
    def http(self, target):
        return self.run.client(target)

    @pytest.fixture
    def observe(self, target, outcome):
        def get(name: str):
            value, error, path = self.run.cache.get(name, target)
            outcome.link(path)
            if error is not None:
                raise ObservationError(str(error))
            return value
        return get

    @pytest.fixture
    def tls_scan(self, observe):
        return observe("tls")

    @pytest.fixture
    def capability(self, observe):
        return observe("capability")

    @pytest.fixture
    def warehouse(self, observe, target, requirement, outcome):
        """The warehouse session shared by the run, recording this outcome's SQL queries as evidence."""
        from .warehouse.fixture import WarehouseView
        view = WarehouseView(observe("warehouse-catalogue"), outcome, f"{requirement.id}@{target.id}", target.id)
        yield view
        view.close()

    def pytest_sessionfinish(self, session):
        # observations holding a connection (the warehouse session) release it with the run
        self.run.cache.close()
