"""Interruptions of a run: which signal ended it, and the few writes a further signal must not cut.

Ctrl-C raises KeyboardInterrupt without arguments; vigie.cli turns SIGTERM and SIGHUP into a KeyboardInterrupt
that carries the signal's name, so that the report can say which signal stopped the run.
"""
from __future__ import annotations

import contextlib
import signal

STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def signal_name(exc: BaseException) -> str:
    """The name of the signal behind a KeyboardInterrupt: the one it carries, else Ctrl-C's."""
    args = getattr(exc, "args", ())
    named = args[0] if args and isinstance(args[0], str) else ""
    return named if named in {s.name for s in STOPPING_SIGNALS} else signal.SIGINT.name


@contextlib.contextmanager
def shielded():
    """Holds back the stopping signals (delivered when the block ends): a record that says how the run ended
    is written whole, whatever the user presses meanwhile."""
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING_SIGNALS)
    except (AttributeError, ValueError, OSError):   # no signal masks here, or not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
