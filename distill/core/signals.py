"""How a command ends when its environment, not its input, fails: a signal, a full disk, a path it cannot create.

* SIGTERM (a scheduler, ``kill``, ``timeout``) is turned into :class:`Terminated`, a ``KeyboardInterrupt``, so
  the same clean-up runs as for Ctrl-C: every atomic write in flight removes its temporary file
  (:mod:`distill.core.atomic`), and the command exits ``128 + signal`` with one line. ``train`` installs its own
  handlers on top (:mod:`distill.stopping`) to save a checkpoint first.
* An ``OSError`` from the file system (no space, file too large, read-only, permission, a path through a file) is
  the user's to fix, so :func:`environment_error` words it as one line; any other ``OSError`` stays a bug.
"""
from __future__ import annotations

import errno
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from distill.core.errors import EdgeDistillError

_WRITE_ERRNOS = {
    errno.ENOSPC: "the disk is full; free space or choose another output folder",
    errno.EFBIG: "the file is larger than this process may write (file-size limit or file system); free space, "
                 "raise the limit (ulimit -f) or choose another output folder",
    errno.EDQUOT: "the disk quota is used up; free space or choose another output folder",
    errno.EROFS: "the file system is read-only; choose another output folder",
    errno.EACCES: "permission denied; choose a folder you can write or fix its permissions",
    errno.EPERM: "operation not permitted; choose a folder you can write or fix its permissions",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EISDIR: "the path is a folder where a file was expected; choose another path",
    errno.EEXIST: "something already exists at that path (a file where a folder is needed?); choose another path",
}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process was, like Ctrl-C's KeyboardInterrupt."""

    signum = signal.SIGTERM


def environment_error(exc: OSError) -> EdgeDistillError | None:
    """A one-line user error for a file-system failure the user can fix, else None (a bug: keep the traceback)."""
    hint = _WRITE_ERRNOS.get(exc.errno or -1)
    if hint is None:
        return None
    where = f" '{exc.filename}'" if exc.filename else ""
    return EdgeDistillError(f"cannot write{where}: {exc.strerror or exc}; {hint}")


def interrupt_message(exc: KeyboardInterrupt) -> tuple[str, int]:
    """The line and exit status for an interrupt: 130 for SIGINT, 143 for SIGTERM."""
    signum = getattr(exc, "signum", signal.SIGINT)
    if signum == signal.SIGTERM:
        return "stopped by SIGTERM; the files already written are intact, the one being written was not kept", 143
    return "interrupted; the files already written are intact, the one being written was not kept", 130


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While active (main thread only), SIGTERM raises :class:`Terminated` instead of killing the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
