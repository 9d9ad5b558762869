"""Where the suite lives (checks and profiles) and its digest."""
from __future__ import annotations

import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECK_DIRS = ("conformance", "security", "load")
PROFILE_DIR = ROOT / "profiles"


def suite_files() -> list[Path]:
    files = sorted(PROFILE_DIR.glob("*.yaml"))
    for d in CHECK_DIRS:
        files += sorted(p for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts)
    return files


def suite_digest() -> str:
    """sha256 over the relative path and bytes of every check and profile: names the suite a run used."""
    h = hashlib.sha256()
    for f in suite_files():
        h.update(f.relative_to(ROOT).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return "sha256:" + h.hexdigest()
