"""The `warehouse` fixture's object: the shared session seen from one outcome, whose queries it keeps.

Every query run while the outcome is measured goes to evidence/sql/<requirement>@<target>.json (SQL, row
count, duration); every query of the run goes to evidence/sql/<target>.json. A rule whose numbers came
from a scan made for an earlier requirement shows no query of its own: the run-wide file holds it.
"""
from __future__ import annotations

from ..evidence import safe_name
from .measures import measures_of


class WarehouseView:
    def __init__(self, observation, outcome, case_name: str, target_id: str):
        self.observation = observation
        self.target_id = target_id
        self.session = observation.session
        self.catalogue = observation.catalogue
        self.measures = measures_of(self.session, self.catalogue)
        self.dialect = self.session.dialect
        self._outcome = outcome
        self._queries: list[dict] = []
        self._path = f"sql/{safe_name(case_name)}.json"
        self._run_path = f"sql/{safe_name(target_id)}.json"
        # written when the outcome ends (close), linked now: the outcome is recorded before teardown
        outcome.link(f"evidence/{self._path}")
        outcome.link(f"evidence/{self._run_path}")
        self.session.listeners.append(self._queries.append)

    def close(self) -> None:
        self.session.listeners.remove(self._queries.append)
        self.session.flush_audit()
        log = self.session.memo.setdefault("vigie-run-queries", [])
        log.extend(self._queries)
        store = self._outcome.store
        store.write_json(self._run_path, {"url": self.session.public_url, "queries": log})
        store.write_json(self._path, {"url": self.session.public_url, "queries": self._queries})
