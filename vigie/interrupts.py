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


def watched():
    """For the block, each stopping signal raises KeyboardInterrupt(its name) and is remembered (pending())."""
    _received.clear()
    return _handled(_interrupt)


def like_ctrl_c():
    """For the block, SIGTERM and SIGHUP raise KeyboardInterrupt(their name), as Ctrl-C raises one."""
    return _handled(_interrupt, (signal.SIGTERM, signal.SIGHUP))


@contextlib.contextmanager
def shielded():
    """Holds back the stopping signals until the block ends, then delivers the first: a record that says how
    the run ended is written whole, whatever the user presses meanwhile. (Python runs signal handlers in the
    main thread whichever thread the kernel picked, so the handlers defer, not a signal mask.)"""
    deferred: list[int] = []
    with _handled(lambda signum, frame: deferred.append(signum)):
        yield
    if deferred:
        signal.raise_signal(deferred[0])


@contextlib.contextmanager
def _handled(handler, signals=STOPPING_SIGNALS):
    """For the block, `handler` takes each of `signals` that is not ignored (`nohup` ignores SIGHUP: so does
    vigie). Only the main thread may set handlers, and only it runs them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in signals if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for s, before in previous.items():
            signal.signal(s, before if before is not None else signal.SIG_DFL)   # None: set outside Python


def pending() -> str | None:
    """The first stopping signal received in the watched block, whether or not its interrupt got through."""
    return _received[0] if _received else None


def signal_name(exc: BaseException) -> str:
    """The name of the signal behind a KeyboardInterrupt: the one it carries, else Ctrl-C's."""
    args = getattr(exc, "args", ())
    named = args[0] if args and isinstance(args[0], str) else ""
    return named if named in {s.name for s in STOPPING_SIGNALS} else signal.SIGINT.name
