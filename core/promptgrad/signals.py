"""Stopping on a signal, the way ctrl+c stops: finish the step, write a checkpoint, end with Finished(stopped).

    SIGINT   ctrl+c; a second one aborts (KeyboardInterrupt), once a checkpoint being written is whole
    SIGTERM  `kill`, job schedulers, `timeout`, container shutdowns
    SIGHUP   a dropped SSH session closing the terminal (left ignored under nohup, which asks for that)

After a hangup the terminal is gone and every write to it would fail, so standard input, output and
error are pointed at /dev/null first: the run then finishes its step and saves without tripping over
its own progress display. Used by the command line and by promptgrad-tui.
"""

from __future__ import annotations

import os
import signal
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

NAMES = {signal.SIGINT: "ctrl+c", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP (the terminal closed)"}


def detach_from_terminal() -> None:
    """Point stdin, stdout and stderr at /dev/null where they are a terminal (a character device). A
    terminal that has hung up no longer says it is one (isatty fails with EIO), so the test is the file's
    kind: pipes and files (nohup's log, a test's capture) are kept."""
    null = os.open(os.devnull, os.O_RDWR)
    devnull = os.fstat(null).st_rdev
    for fd in (0, 1, 2):
        try:
            status = os.fstat(fd)
        except OSError:
            continue
        if stat.S_ISCHR(status.st_mode) and status.st_rdev != devnull:
            os.dup2(null, fd)
    os.close(null)


@contextmanager
def on_signals(callback: Callable[[int], None], signals: tuple[int, ...] = tuple(NAMES)) -> Iterator[None]:
    """While inside, each of `signals` calls `callback(signum)` on the main thread (a hangup first points
    the standard streams at /dev/null). The handlers stay until the block ends, so a repeated hangup
    (the shell that dies with the terminal sends another) never falls back to the default of dying.
    Only the main thread may install handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if signum == signal.SIGHUP:
            detach_from_terminal()
        callback(signum)

    previous = {}
    for signum in signals:
        if signum == signal.SIGHUP and signal.getsignal(signum) == signal.SIG_IGN:
            continue  # nohup: a hangup must not stop the run
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


HELD_OFF = {"depth": 0, "pending": False}  # a second ctrl+c that arrived inside `uninterrupted()`


@contextmanager
def uninterrupted() -> Iterator[None]:
    """A block that a second ctrl+c does not cut short (writing a checkpoint, its prompt and its record):
    the abort it asks for comes as soon as the block is done."""
    HELD_OFF["depth"] += 1
    try:
        yield
    finally:
        HELD_OFF["depth"] -= 1
        if HELD_OFF["depth"] == 0 and HELD_OFF["pending"]:
            HELD_OFF["pending"] = False
            raise KeyboardInterrupt


@contextmanager
def stop_on_signals(stop: threading.Event, on_signal: Callable[[str], None] = lambda name: None) -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP set `stop` (the first one also calls `on_signal` with its name); a
    second ctrl+c aborts with KeyboardInterrupt, at once or, inside `uninterrupted()`, once that is done."""

    def callback(signum: int) -> None:
        if signum == signal.SIGINT and stop.is_set():
            if HELD_OFF["depth"]:
                HELD_OFF["pending"] = True
                return
            raise KeyboardInterrupt
        if not stop.is_set():
            stop.set()
            on_signal(NAMES.get(signum, str(signum)))

    with on_signals(callback):
        yield
