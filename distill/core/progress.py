"""Progress bars (tqdm on stderr) that stay quiet where nobody watches."""
from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    """Bars are shown unless ``EDGEDISTILL_PROGRESS=0``; on a non-terminal they update every 10 s."""
    return os.environ.get("EDGEDISTILL_PROGRESS", "1") != "0"


def progress(iterable: Iterable[T] | None = None, **kwargs) -> tqdm:
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("mininterval", 0.5 if sys.stderr.isatty() else 10.0)
    kwargs.setdefault("leave", False)
    kwargs["disable"] = kwargs.get("disable") or not progress_enabled()
    return tqdm(iterable, **kwargs)
