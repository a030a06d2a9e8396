"""Stopping on a signal, the way ctrl+c stops: finish the step, write a checkpoint, end with Finished(stopped).

    SIGINT   ctrl+c; a second one aborts at once (KeyboardInterrupt)
    SIGTERM  `kill`, job schedulers, `timeout`, container shutdowns
    SIGHUP   a dropped SSH session closing the terminal (left ignored under nohup, which asks for that)

After a hangup the terminal is gone and every write to it would fail, so standard input, output and
error are pointed at /dev/null first: the run then finishes its step and saves without tripping over
its own progress display. Used by the command line and by promptgrad-tui.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

NAMES = {signal.SIGINT: "ctrl+c", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP (the terminal closed)"}


def detach_from_terminal() -> None:
    """Point stdin, stdout and stderr at /dev/null where they are a terminal that has gone away."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd):
                os.dup2(null, fd)
        except OSError:
            os.dup2(null, fd)  # the terminal is already unusable
    os.close(null)


@contextmanager
def stop_on_signals(stop: threading.Event, on_signal: Callable[[str], None] = lambda name: None,
                    abort_on_second_interrupt: bool = True) -> Iterator[None]:
    """While inside, SIGINT, SIGTERM and SIGHUP set `stop` (and call `on_signal` with the signal's name).
    Only the main thread may install handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if signum == signal.SIGHUP:
            detach_from_terminal()
        if signum == signal.SIGINT and stop.is_set() and abort_on_second_interrupt:
            raise KeyboardInterrupt
        first = not stop.is_set()
        stop.set()
        if first:
            on_signal(NAMES.get(signum, str(signum)))

    previous = {}
    for signum in NAMES:
        if signum == signal.SIGHUP and signal.getsignal(signum) == signal.SIG_IGN:
            continue  # nohup: a hangup must not stop the run
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
