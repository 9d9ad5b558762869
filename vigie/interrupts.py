"""Interruptions of a run: which signal ended it, and the few writes a further signal must not cut.

During a run, Ctrl-C, SIGTERM and SIGHUP raise a KeyboardInterrupt that carries the signal's name, so that the
report can say which signal stopped the run; elsewhere Ctrl-C's KeyboardInterrupt has no name (SIGINT).
Each signal is also remembered: a KeyboardInterrupt raised while a finaliser runs (a socket or an HTTP
response collected as garbage) is printed and dropped by Python, and the run must stop all the same.
"""
from __future__ import annotations

import contextlib
import signal
import threading

STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_received: list[str] = []   # the stopping signals received during the run, first first


def _interrupt(signum, frame):
    name = signal.Signals(signum).name
    _received.append(name)
    raise KeyboardInterrupt(name)


@contextlib.contextmanager
def watched():
    """For the block, each stopping signal raises KeyboardInterrupt(its name) and is remembered (pending())."""
    _received.clear()
    if threading.current_thread() is not threading.main_thread():   # only the main thread takes signals
        yield
        return
    previous = _install(_interrupt)
    try:
        yield
    finally:
        _restore(previous)


def _install(handler) -> dict:
    """Puts `handler` on each stopping signal that is not ignored (`nohup` ignores SIGHUP: so does vigie)."""
    return {s: signal.signal(s, handler) for s in STOPPING_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN}


def _restore(previous: dict) -> None:
    for s, handler in previous.items():
        signal.signal(s, handler if handler is not None else signal.SIG_DFL)   # None: set outside Python


def pending() -> str | None:
    """The first stopping signal received in the watched block, whether or not its interrupt got through."""
    return _received[0] if _received else None


def signal_name(exc: BaseException) -> str:
    """The name of the signal behind a KeyboardInterrupt: the one it carries, else Ctrl-C's."""
    args = getattr(exc, "args", ())
    named = args[0] if args and isinstance(args[0], str) else ""
    return named if named in {s.name for s in STOPPING_SIGNALS} else signal.SIGINT.name


@contextlib.contextmanager
def shielded():
    """Holds back the stopping signals until the block ends, then delivers the first: a record that says how
    the run ended is written whole, whatever the user presses meanwhile. (Python runs signal handlers in the
    main thread whichever thread the kernel picked, so the handlers defer, not a signal mask.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    deferred: list[int] = []
    previous = _install(lambda signum, frame: deferred.append(signum))
    try:
        yield
    finally:
        _restore(previous)
        if deferred:
            signal.raise_signal(deferred[0])
