"""A run: starts pytest in-process on the suite folders with the vigie plugin, then writes the bundle."""
from __future__ import annotations

import secrets as _secrets
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from . import __version__
from .bundle import build_bundle
from .errors import VigieError
from .evidence import EvidenceStore, Redactor
from .http import RecordingClient
from .interrupts import pending, shielded, signal_name, watched
from .journal import NAME as JOURNAL
from .journal import Journal
from .limits import Limits, memory_ceiling
from .limits import activate as activate_limits
from .observations import ObservationCache
from .outdir import claim as claim_output
from .plugin import VigiePlugin
from .rendering import DEFAULT_FORMATS, Bounds
from .suite import CHECK_DIRS, ROOT, suite_digest
from .writes import Cleanup, wrote
from .writes import begin as begin_writes
from .writes import clean as clean_writes

PYTEST_INI = Path(__file__).parent / "suite.ini"
# the renderings get what is left of the run time, and at least this: the quick ones (summary, JUnit) are
# written even when the checks used all of it
RENDER_FLOOR_S = 10.0
# after an interrupt, vigie ends within a couple of seconds: the renderings that take seconds on a large report
# (the HTML embeds every evidence excerpt) wait for `vigie report`, the others get at most this long
SLOW_FORMATS = ("html", "pdf")
INTERRUPTED_RENDER_S = 5.0


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + _secrets.token_hex(3)


# the distributions whose versions decide what a run observes and how it is reported
ENVIRONMENT_PACKAGES = ("vigie-sante", "pytest", "sslyze", "cryptography", "locust", "requests", "urllib3", "jinja2",
                        "jsonschema", "pyyaml", "weasyprint")


def environment() -> dict:
    """What another reviewer needs to reproduce the run: interpreter, platform, dependency versions."""
    import platform
    from importlib import metadata
    packages = {}
    for name in ENVIRONMENT_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {"python": platform.python_version(), "implementation": platform.python_implementation(),
            "platform": platform.platform(), "packages": packages}


def applicable_cases(profiles, targets) -> list[tuple]:
    """Every (requirement, target) pair the campaign selects: a profile applies to targets of its kinds."""
    return [(req, t) for p in profiles for req in p.requirements for t in targets if t.kind in p.applies_to]


class Run:
    """The state a run shares with the plugin."""

    def __init__(self, profiles, targets, out: Path, lang: str, command: str, on_outcome=None, sign_key=None,
                 limits: Limits | None = None, formats=None, product: dict | None = None, replace_out=False,
                 read_only: bool = False):
        self.formats = tuple(formats) if formats else None   # renderings besides report.json; None: all
        # absolute: subprocesses (the load driver) run in other working directories
        self.profiles, self.targets, self.out, self.lang = profiles, targets, Path(out).absolute(), lang
        self.sign_key = sign_key
        self.product = product
        self.limits = limits or Limits()
        self.deadline = time.monotonic() + self.limits.run_timeout_s
        activate_limits(self.limits)
        self.id = self.out.name
        self.read_only = read_only
        self.cleanup: list[Cleanup] = []   # what became of each FHIR target's writes, after the checks
        self.cases = applicable_cases(profiles, targets)
        if not self.cases:
            kinds = sorted({k for p in profiles for k in p.applies_to})
            raise VigieError(f"no target for the selected profiles (they apply to: {', '.join(kinds)})")
        # new or empty (or a previous bundle, replaced): the manifest will vouch for everything in it
        claim_output(self.out, replace=replace_out)
        self.store = EvidenceStore(self.out, Redactor([s for t in targets for s in t.secrets()]))
        self.cache = ObservationCache(self.store)
        self.clients: dict[str, RecordingClient] = {}
        self.suite_errors: list[str] = []
        self.on_outcome = on_outcome
        self.interrupted: str | None = None   # the name of the signal that stopped the run
        self.journal = Journal(self.out / JOURNAL)
        begin_writes(self.id, read_only)   # the run's tag on what it creates, and its policy, for the load too
        self.journal.append({
            "type": "run", "id": self.id, "started": now(), "tool_version": __version__,
            "suite_digest": suite_digest(), "lang": lang, "command": self.store.redact.text(command),
            "environment": environment(), "fhir_packages": [], "limits": self.limits.to_json(),
            "product": self.store.redact.data(product) if product else None,
            "patient_data": "masked" if self.store.redact.mask_patients else "as sent", "read_only": read_only,
            "targets": [t.public() for t in targets],
            "profiles": [{**p.summary(), "requirements": [
                {"id": r.id, "level": r.level, "title": r.title, "reference": r.reference, "check": r.check}
                for r in p.requirements]} for p in profiles],
            "cases": [[r.id, t.id] for r, t in self.cases]})

    def client(self, target) -> RecordingClient:
        if target.id not in self.clients:
            self.clients[target.id] = RecordingClient(target)
        return self.clients[target.id]

    def record(self, outcome) -> None:
        # past the run time limit, the requirements not reached are recorded by the thousand: without a sync
        # each (a power cut loses none of them: a rebuilt report says them not run either), so that the run
        # ends near its limit
        self.journal.append({"type": "outcome", **outcome.to_json()}, sync=time.monotonic() < self.deadline)
        if self.on_outcome:
            self.on_outcome(outcome)

    def execute(self) -> dict:
        with memory_ceiling(self.limits.max_memory):
            with watched():
                self.run_checks()
            if self.interrupted:
                # the user asked to stop: the quick renderings only, in a few seconds (a further interrupt ends
                # vigie at once); `vigie report` makes the others from the journal
                formats = [f for f in self.formats or DEFAULT_FORMATS if f not in SLOW_FORMATS]
                bounds = Bounds(seconds=INTERRUPTED_RENDER_S, memory=self.limits.max_memory,
                                why=f"the run was interrupted ({self.interrupted})")
                return build_bundle(self.out, formats=formats, sign_key=self.sign_key, bounds=bounds)
            return build_bundle(self.out, formats=self.formats, sign_key=self.sign_key, bounds=self.render_bounds())

    def render_bounds(self) -> Bounds:
        """The renderings get what is left of the run time (at least RENDER_FLOOR_S) and the memory ceiling."""
        return Bounds(seconds=max(self.deadline - time.monotonic(), RENDER_FLOOR_S), memory=self.limits.max_memory,
                      why=f"the run time limit of {self.limits.run_timeout_s:g} s was reached")

    def run_checks(self) -> None:
        """Runs the checks, then closes the journal with its last record: the end of the run, or its
        interruption (Ctrl-C, SIGTERM, SIGHUP) with the signal's name."""
        # a check module that cannot be imported costs its own requirements (not_tested, with the suite
        # error in the report), not every requirement of the run. Plain assertions: every check's assert
        # carries the message that becomes the outcome's summary, and pytest's rewritten asserts would need
        # the terminal plugin (pytest 9.0 fails a comparison's explanation without it). No unraisable-exception
        # plugin: nothing reads its warnings, and its garbage collection at the session's end took half a
        # second after an interrupt and dropped a second one (raised inside a finaliser). Plugins the machine
        # happens to have are not the suite's: xdist and pytest-benchmark read a calling pytest's environment
        # (PYTEST_XDIST_WORKER) and warn on vigie's stderr.
        args = ["-c", str(PYTEST_INI), "--rootdir", str(ROOT), "-p", "no:locust", "-p", "no:cacheprovider",
                "-p", "no:terminal", "-p", "no:unraisableexception", "-p", "no:xdist", "-p", "no:benchmark",
                "--assert=plain",
                "--continue-on-collection-errors", *[str(ROOT / d) for d in CHECK_DIRS if (ROOT / d).is_dir()]]
        end = None
        try:
            try:
                # pytest catches an interrupt that lands in a check: the plugin names its signal in
                # self.interrupted, and pytest returns at once
                code = pytest.main(args, plugins=[VigiePlugin(self)])
                if not self.interrupted and not pending() and time.monotonic() < self.deadline:
                    self._clean()
            finally:
                for client in self.clients.values():
                    client.close()
            if code in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR):
                self.suite_errors.append(f"pytest ended with {code.name}")
            # an interrupt that a library swallowed in the last check still stops the run
            self.interrupted = self.interrupted or pending()
            if not self.interrupted:
                end = {"type": "end", "finished": now(), "software": self._software(),
                       "cleanup": [c.to_json() for c in self.cleanup]}
        except KeyboardInterrupt as exc:
            # outside a check (pytest starting, the CapabilityStatement read for the product's name), or a
            # second interrupt while pytest winds down: that one ends vigie at once, the journal closed first
            second = self.interrupted is not None
            self.interrupted = self.interrupted or signal_name(exc)
            self._close_journal(None)
            if second:
                raise
            return
        self._close_journal(end)

    def _close_journal(self, end: dict | None) -> None:
        """Appends the run's last record (`end`, or the interruption when None) and closes the journal."""
        from .fhirvalidation import packages_used
        last = end or {"type": "interrupted", "signal": self.interrupted, "finished": now()}
        with shielded():
            self.journal.append({**last, "suite_errors": self.suite_errors,
                                 "fhir_packages": packages_used(self.cache.values("fhir-packages"))})
            self.journal.close()

    def _clean(self) -> None:
        """Deletes what the run created on each FHIR target, where the server allows (vigie.writes); the
        exchanges are kept as evidence (evidence/cleanup/<target>.json)."""
        if self.read_only or not wrote():
            return
        from .evidence import safe_name
        for target in self.targets:
            if target.kind != "fhir":
                continue
            capability, error, _ = self.cache.get("capability", target)
            if error is not None:
                continue
            types = [t for t in capability.types_with("create") if t in capability.types_with("search-type")]
            client = self.client(target)
            client.take_exchanges()
            self.cleanup.append(clean_writes(client, types, self.id, target.id))
            exchanges = client.take_exchanges()
            if exchanges:
                self.store.write_json(f"cleanup/{safe_name(target.id)}.json", exchanges)

    def _software(self) -> dict:
        """target id -> what its CapabilityStatement says of the software (name, version, releaseDate)."""
        found = {}
        if not self.product:   # not declared: name it as the server does, whether or not a check read it
            for target in self.targets:
                if target.kind == "fhir":
                    self.cache.get("capability", target)
        for target, capability in self.cache.by_target("capability").items():
            software = capability.statement.get("software")
            if isinstance(software, dict):
                kept = {k: software[k][:200] for k in ("name", "version", "releaseDate")
                        if isinstance(software.get(k), str)}
                if kept:
                    found[target] = self.store.redact.data(kept)
        return found


def run_campaign(profiles, targets, out: Path, lang: str, command: str, on_outcome=None, sign_key=None,
                 limits=None, formats=None, product=None, replace_out=False, read_only=False) -> dict:
    return Run(profiles, targets, out, lang, command, on_outcome, sign_key, limits, formats, product,
               replace_out, read_only).execute()
