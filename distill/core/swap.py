"""Multi-file artifacts made visible in one step: the new generation is written into a sibling folder and
switched into place whole.

A retrieval index (index.faiss, embeddings.npy, paths.json, files.json, manifest.json) or a teacher cache
written file by file over the old one leaves a mix when it is interrupted (a full disk, Ctrl-C, a crash): some
files new, some old, and a reader that only compares counts answers wrongly with exit 0. Here the whole new
folder is built beside the old one, then exchanged with it by one ``renameat2(RENAME_EXCHANGE)`` (Linux 3.15+,
glibc 2.28+; ext4, xfs, btrfs, tmpfs): a reader sees the whole old folder or the whole new one. Where the
exchange is not available (another OS, a file system without it) two renames are used, and for the instant
between them the folder is absent (a reader then says it is missing; it never sees a mix).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from distill.core.atomic import current_umask

RENAME_EXCHANGE = 2  # linux/fs.h
AT_FDCWD = -100


def _renameat2():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths; False where the system cannot (the caller falls back)."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: not supported here
        return False
    raise OSError(err, os.strerror(err), str(b))


def switch_into_place(new: Path, out: Path) -> None:
    """Make the complete folder ``new`` (a sibling of ``out``) the folder ``out``, replacing any old one whole."""
    if not out.exists():
        os.replace(new, out)
        return
    if exchange(new, out):
        shutil.rmtree(new, ignore_errors=True)  # ``new`` now holds the old generation
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.replace(out, old / "x")
    os.replace(new, out)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """A fresh sibling folder to write the new generation of ``out`` into; switched into place when the block ends
    normally, removed (``out`` untouched) when it raises, whatever the reason."""
    out.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".new", dir=out.parent))
    try:
        yield new
        os.chmod(new, 0o777 & ~current_umask())
        switch_into_place(new, out)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
