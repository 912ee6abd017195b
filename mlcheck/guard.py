"""Calling untrusted model code: a time limit per call, and exits that are not verdicts.

Model code may call `sys.exit()`, raise `KeyboardInterrupt` or any other `BaseException`,
or never return. None of that may end a run with a pass (or with nothing written): the
engine turns each into the `error` of the check that called the model. Only a real
Ctrl-C (a SIGINT this process received) still interrupts the run.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

LONGEST_LIMIT = 30 * 86_400.0  # a longer model.timeout is no limit in practice


class ModelTimeout(BaseException):
    """A model call ran past its time limit. A BaseException, so that model code's own
    `except Exception:` cannot swallow it."""


_interrupted = threading.Event()


def interrupted() -> bool:
    """Whether this process received a real SIGINT while checks ran."""
    return _interrupted.is_set()


@contextmanager
def model_code() -> Iterator[None]:
    """Run model code: afterwards the working directory is what it was (outputs named
    relative to it must land where the user asked), and a real SIGINT is remembered, so
    a KeyboardInterrupt raised by model code can be told apart from the user pressing
    Ctrl-C (only the main thread can install handlers)."""
    cwd = os.getcwd()
    try:
        with _watch_interrupts():
            yield
    finally:
        if os.getcwd() != cwd:
            os.chdir(cwd)


@contextmanager
def _watch_interrupts() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _interrupted.clear()
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum: int, frame: object) -> None:
        if previous == signal.SIG_IGN:  # the parent asked to ignore Ctrl-C (nohup)
            return
        _interrupted.set()
        if callable(previous):
            previous(signum, frame)
        else:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def escaped_model_code(exc: BaseException) -> str | None:
    """Why a BaseException that reached a check is that check's error, or None when it
    must propagate (a real interrupt)."""
    if isinstance(exc, ModelTimeout):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt) and interrupted():
        return None
    detail = f": {exc}" if str(exc) else ""
    return (f"model code raised {type(exc).__name__}{detail} (an exit or interrupt from "
            "model code is not a verdict)")


@contextmanager
def time_limit(seconds: float | None, what: str) -> Iterator[None]:
    """Stop a model call that runs longer than `seconds` (no limit when None, or off the
    main thread, where signals cannot be delivered). The limit is checked between Python
    bytecodes, so a long call into compiled code stops when it returns to Python."""
    if not seconds or threading.current_thread() is not threading.main_thread() \
            or not hasattr(signal, "setitimer"):
        yield
        return
    seconds = min(seconds, LONGEST_LIMIT)  # timers and waits overflow past about 9e9 s
    started = time.perf_counter()
    returned = threading.Event()

    def expire(signum: int, frame: object) -> None:
        raise ModelTimeout(f"{what} exceeded the model time limit of {seconds:g} s (stopped "
                           f"after {time.perf_counter() - started:.1f} s); raise "
                           "`model.timeout` or --model-timeout if the model is this slow")

    def last_resort() -> None:
        """Model code that ignores SIGALRM or swallows the stop is never waited for: at
        twice the limit (plus a second) the process ends with exit 2, no verdict."""
        if not returned.wait(2 * seconds + 1):
            sys.stderr.write(f"mlcheck: {what} ran past the model time limit of {seconds:g} s "
                             "and did not stop when asked (the model ignores or catches the "
                             "stop); ending the run with exit status 2 and no verdict\n")
            sys.stderr.flush()
            os._exit(2)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    threading.Thread(target=last_resort, name="mlcheck-model-timeout", daemon=True).start()
    try:
        yield
    finally:
        returned.set()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
