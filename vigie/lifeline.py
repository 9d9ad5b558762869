"""vigie's child processes (the load driver, the renderings) live only as long as the vigie that started them.

Each runs in its own session (so that vigie can kill its whole group at its deadline), which also shields it
from the signals that end vigie: after `kill -9` of vigie a load process would go on loading the target for
its whole planned duration. So each binds itself to its parent as it starts (the load driver: before locust
is imported):
- on Linux, the kernel's parent-death signal (prctl PR_SET_PDEATHSIG): SIGKILL as soon as the parent dies;
- everywhere, a watchdog thread that ends the process once its parent is gone (it is then re-parented, so
  its parent's pid changes), within WATCH_S.

Only the standard library is imported here: this runs before gevent patches the process, and the watchdog
keeps the real thread and sleep it found, so that it runs even while the load's event loop is busy.
"""
from __future__ import annotations

import _thread
import ctypes
import os
import signal
import sys
import time

PARENT_VARIABLE = "VIGIE_PARENT"   # the pid of the vigie process that started this one
WATCH_S = 0.5
ORPHANED_EXIT = 3
PR_SET_PDEATHSIG = 1   # <linux/prctl.h>

_sleep = time.sleep   # the real one: gevent replaces time.sleep when locust is imported


def _parent_death_signal() -> None:
    """Linux: the kernel kills this process when the thread that started it ends (that thread waits for it,
    so: when vigie ends). Nothing elsewhere: the watchdog covers it."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _orphaned(parent: int) -> bool:
    return os.getppid() != parent


def _watch(parent: int) -> None:
    while not _orphaned(parent):
        _sleep(WATCH_S)
    os._exit(ORPHANED_EXIT)


def bind_to_parent(parent: int | None = None) -> None:
    """Ends this process when `parent` (default: the pid in $VIGIE_LOAD_PARENT) is gone, now or later."""
    if parent is None:
        value = os.environ.pop(PARENT_VARIABLE, "")
        if not value.isdigit():
            return
        parent = int(value)
    _parent_death_signal()
    if _orphaned(parent):   # the parent died before the signal was asked for: the kernel will not send it
        os._exit(ORPHANED_EXIT)
    _thread.start_new_thread(_watch, (parent,))
