"""Where the suite lives (checks and profiles) and its digest."""
from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
# where a built wheel carries the suite: the repository's folders, same layout (setup.py maps them there)
BUNDLED = PACKAGE / "bundled"


def suite_root() -> Path:
    """The folder holding the suite: profiles/, the check folders and fixtures/ (the reference systems).
    An installed wheel carries them in vigie/bundled/; a checkout (editable install) has them at its root."""
    return BUNDLED if BUNDLED.is_dir() else PACKAGE.parent


ROOT = suite_root()
# the suite's folders; each is also the family of the checks it holds (what a check is about)
CHECK_DIRS = ("conformance", "security", "load")
PROFILE_DIR = ROOT / "profiles"
FIXTURES_DIR = ROOT / "fixtures"


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


@functools.cache
def check_families() -> dict[str, str]:
    """Every check id of the suite and its family: the folder (of CHECK_DIRS) whose module marks a test with
    @check("id"). Read from the source, not by importing it (the load checks' imports patch the process)."""
    families: dict[str, str] = {}
    for folder in CHECK_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (OSError, SyntaxError, ValueError):
                continue   # a module that cannot be read is the runner's to report (a suite error)
            for node in ast.walk(tree):
                for mark in getattr(node, "decorator_list", []):
                    check_id = _check_mark(mark)
                    if check_id:
                        families.setdefault(check_id, folder)
    return families


def _check_mark(node: ast.expr) -> str | None:
    """The check id of a @check("id") decorator, else None."""
    if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
        return None
    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
    return node.args[0].value if name == "check" and isinstance(node.args[0].value, str) else None
