"""Optional dependencies: import lazily, fail with the name of the extra that provides them."""
from __future__ import annotations

import importlib
from types import ModuleType

from distill.core.errors import MissingDependencyError


def require(module: str, extra: str, what: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``pip install 'edgedistill[extra]'``.

    Nothing is ever installed automatically.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # ImportError covers a missing module and a broken shared library
        purpose = f" for {what}" if what else ""
        raise MissingDependencyError(
            f"'{module}' is needed{purpose} but cannot be imported ({exc.__class__.__name__}: {exc}); "
            f"install it with: pip install 'edgedistill[{extra}]'"
        ) from None
