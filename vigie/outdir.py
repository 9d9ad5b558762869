"""The folder a run writes its bundle to (`--out`): new, empty, or a previous vigie bundle replaced on request.

A bundle's manifest vouches for every file in its folder, and its renderings replace what they find (the
Allure results folder is emptied first): written into a folder that holds anything else (a project's `.env`,
`.git/`), a run would sign files nobody checked, or delete them. So a run takes only a folder that is new or
empty, or one holding nothing but a previous vigie bundle, whose files it replaces only with --force.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from .display import strip_control
from .errors import VigieError
from .journal import NAME as JOURNAL
from .rendering import FILES
from .signing import SEAL_FILES

ENTRIES = frozenset({JOURNAL, "report.json", "evidence", *FILES.values(), *SEAL_FILES})  # what vigie writes
SHOWN = 3   # foreign names quoted in an error line


def foreign_entries(folder: Path) -> list[str]:
    """The names in `folder` that are not part of a vigie bundle, sorted, made safe to print."""
    return sorted(strip_control(p.name) for p in Path(folder).iterdir() if p.name not in ENTRIES)


def is_bundle(folder: Path) -> bool:
    """A folder whose journal begins with a vigie run record, and which holds nothing vigie does not write."""
    journal = Path(folder) / JOURNAL
    if journal.is_symlink() or not journal.is_file() or foreign_entries(folder):
        return False
    with open(journal, "rb") as fh:
        first = fh.readline(4096)
    return first.startswith(b'{"type": "run"')


def claim(out: Path, replace: bool = False, create: bool = True) -> Path:
    """Makes `out` ready for a new bundle and returns it: created if new, taken as is if empty, emptied if it
    holds a previous vigie bundle and `replace` is set; anything else is one clear error. With create=False,
    only checks that it could (nothing is created or removed)."""
    out = Path(out)
    if out.is_symlink():
        raise VigieError(f"--out {strip_control(out)} is a symbolic link; vigie does not write through links")
    if not out.exists() and not create:
        # it will be created: the nearest folder that exists must be one (`--out afile/sub` is refused now)
        existing = next(p for p in out.absolute().parents if p.exists())
        if not existing.is_dir():
            raise VigieError(f"--out {strip_control(out)} cannot be created: {strip_control(existing)} is a file")
        return out
    try:
        out.mkdir(parents=True)
        return out
    except FileExistsError:
        pass
    except OSError as exc:
        raise VigieError(f"--out {strip_control(out)} cannot be created: {exc.strerror or exc}") from None
    if not out.is_dir():
        raise VigieError(f"--out {strip_control(out)} is not a folder")
    if not any(out.iterdir()):
        return out
    if not is_bundle(out):
        foreign = foreign_entries(out) or sorted(strip_control(p.name) for p in out.iterdir())
        raise VigieError(f"--out {strip_control(out)} is not empty ({', '.join(foreign[:SHOWN])}"
                         f"{', ...' if len(foreign) > SHOWN else ''}): give a new or empty folder")
    if not replace:
        raise VigieError(f"--out {strip_control(out)} holds a previous vigie bundle: give --force to replace it, "
                         f"or another folder")
    if not create:
        return out
    for entry in out.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return out
