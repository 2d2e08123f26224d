"""Package APIs imported on first use (PEP 562), so that importing a package (and building the command-line
parser) imports no runtime: ``__getattr__, __all__ = lazy_exports(__name__, {"module": ("Name", ...)})``."""
from __future__ import annotations

import importlib
from typing import Callable


def lazy_exports(package: str, api: dict[str, tuple[str, ...]]) -> tuple[Callable[[str], object], list[str]]:
    """A module ``__getattr__`` resolving each name from its module on first use, and the ``__all__`` list."""
    where = {name: module for module, names in api.items() for name in names}

    def __getattr__(name: str):
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module '{package}' has no attribute '{name}'")

    return __getattr__, sorted(where)
