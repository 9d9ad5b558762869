"""The run journal: one JSON object per line, flushed and fsynced, so a killed run loses nothing finished.

Records: {"type": "run", ...} first (the campaign), then one {"type": "outcome", ...} per finished
outcome, then {"type": "end", "finished": ...} when the run ended normally.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import VigieError

NAME = "journal.ndjson"


class Journal:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - open for the whole run, closed by close()

    def append(self, record: dict, sync: bool = True) -> None:
        # one write of a whole line: after SIGKILL each line is complete or absent; fsync, unless told not to,
        # so that a power cut loses nothing finished either (the next fsync syncs the lines written before)
        self._fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._fh.flush()
        if sync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def read_journal(path: Path) -> list[dict]:
    """Every complete record; a torn last line (killed mid-write) is ignored."""
    path = Path(path)
    if not path.is_file():
        raise VigieError(f"{path}: no journal here (expected {NAME} in the bundle)")
    records = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            if not line.endswith("\n"):
                break
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):  # not JSON, numbers out of range, nesting too deep
                raise VigieError(f"{path}, line {number}: not a JSON record") from None
            if not isinstance(record, dict) or "type" not in record:
                raise VigieError(f"{path}, line {number}: not a journal record")
            records.append(record)
    if not records or records[0]["type"] != "run":
        raise VigieError(f"{path}: the journal does not start with a run record")
    return records
