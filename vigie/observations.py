"""Observations: what is seen of a target (a TLS scan, a capability statement, a load run).

Each is computed once per run and target, kept as evidence, and shared by every requirement that needs it.
Modules register with @observation; the registry maps a name to its module so that heavy dependencies
(sslyze, locust's driver) load only when a selected check needs them.
"""
from __future__ import annotations

import importlib

from .checks import Concluded, withdraw
from .errors import ObservationError
from .limits import TimeLimitExceeded

MODULES = {"tls": "vigie.tls", "load": "vigie.loadrun", "capability": "vigie.fhirrest",
           "fhir-packages": "vigie.fhirvalidation", "fuzz": "vigie.fuzz",
           "bandit": "vigie.source", "semgrep": "vigie.source", "sbom": "vigie.source", "pip-audit": "vigie.source",
           "warehouse-catalogue": "vigie.warehouse.catalogue", "cda-documents": "vigie.cda.observation"}
_REGISTRY: dict = {}


def observation(name: str, kinds=("fhir",)):
    def register(fn):
        _REGISTRY[name] = (fn, tuple(kinds))
        return fn
    return register


def lookup(name: str):
    if name not in _REGISTRY and name in MODULES:
        importlib.import_module(MODULES[name])
    if name not in _REGISTRY:
        raise KeyError(f"no observation named '{name}'")
    return _REGISTRY[name]


class ObservationCache:
    """Results (or the failure) of each observation per target; a failure is not retried."""

    def __init__(self, store):
        self.store = store
        self._results: dict = {}

    def get(self, name: str, target):
        key = (name, target.id)
        if key not in self._results:
            fn, kinds = lookup(name)
            if target.kind not in kinds:
                raise ObservationError(f"observation '{name}' does not apply to a {target.kind} target")
            try:
                value = fn(target, self.store)
                path = self.store.write_json(f"{name}/{target.id}.json", value.to_json()
                                             if hasattr(value, "to_json") else value)
                self._results[key] = (value, None, path)
            except ObservationError as exc:
                path = self.store.write_json(f"{name}/{target.id}.json", {"error": str(exc)})
                self._results[key] = (None, exc, path)
            except Concluded as exc:
                # an observation serves every check of the target: it observes, it never concludes for
                # the one that happened to run it first
                withdraw(exc)
                error = ObservationError(f"the {name} observation did not finish: {exc.summary}")
                path = self.store.write_json(f"{name}/{target.id}.json", {"error": str(error)})
                self._results[key] = (None, error, path)
            except (TimeLimitExceeded, Exception) as exc:
                # the check's time ran out, or the observation broke on what the target sent: every later
                # check would wait or break as long again, so the failure is kept like any other
                error = ObservationError(f"the {name} observation did not finish: "
                                         + (str(exc) if isinstance(exc, TimeLimitExceeded)
                                            else f"{type(exc).__name__}: {exc}"))
                path = self.store.write_json(f"{name}/{target.id}.json", {"error": str(error)})
                self._results[key] = (None, error, path)
                if isinstance(exc, TimeLimitExceeded):
                    raise
        value, error, path = self._results[key]
        return value, error, path

    def values(self, name: str) -> list:
        """The observations of that name that succeeded, one per target."""
        return list(self.by_target(name).values())

    def by_target(self, name: str) -> dict:
        """target id -> the observation of that name, for the targets where it succeeded."""
        return {target: value for (n, target), (value, error, _) in self._results.items()
                if n == name and error is None}

    def close(self) -> None:
        """Releases what observations hold open (a database connection), at the end of the run."""
        for value, _, _ in self._results.values():
            if hasattr(value, "close"):
                try:
                    value.close()
                except Exception:  # noqa: BLE001, S110 - closing must not mask the run's result
                    pass
