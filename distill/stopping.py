"""SIGINT/SIGTERM during training: finish the step in flight, save a checkpoint, then stop.

A job scheduler sends SIGTERM before it kills a job, and Ctrl-C sends SIGINT; either way the run should be
resumable from where it stopped, not from the last epoch end. :class:`StopSignals` only records the signal;
the training loop checks :attr:`received` between steps, saves, and raises :class:`TrainingInterrupted`.
"""
from __future__ import annotations

import signal
import threading

from distill.core.errors import EdgeDistillError


class TrainingInterrupted(EdgeDistillError):
    """Training stopped on a signal after saving a checkpoint; exit status 128 + the signal number."""

    label = ""  # "edgedistill: stopped by SIGTERM ...", as Ctrl-C's and SIGTERM's line for every other command

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class StopSignals:
    """Context manager: while active, SIGINT and SIGTERM set :attr:`received` (the signal number) instead of
    killing the process. A second SIGINT falls through to the default handler (an impatient user wins).
    Outside the main thread (where handlers cannot be installed) it does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.received == signal.SIGINT and signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
