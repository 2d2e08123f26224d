"""Optional dependencies: import lazily, fail with the name of the extra that provides them."""
from __future__ import annotations

import importlib
import importlib.util
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


def available(module: str) -> bool:
    """Whether ``module`` is installed (found without importing it: asking costs no torch import)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# Which extra brings a module, for an import that fails deep inside a command (its own check not reached): the
# deploy install has no torch, and `train`, `export` and the rest of the training side need it.
EXTRAS = {"torch": "train", "torchvision": "train", "timm": "train", "onnx": "train", "scipy": "train",
          "openvino": "openvino", "nncf": "openvino", "tensorrt": "tensorrt", "fastapi": "demo", "uvicorn": "demo"}


def missing_extra(exc: ImportError, what: str) -> MissingDependencyError | None:
    """The one-line error for ``what`` (e.g. "edgedistill train") failing on a module of an extra; None when the
    missing module is not one of them (a bug: the caller keeps its traceback)."""
    name = (getattr(exc, "name", None) or "").split(".")[0]
    if not isinstance(exc, ModuleNotFoundError) or name not in EXTRAS:
        return None
    extra = EXTRAS[name]
    stack = "the training stack" if extra == "train" else f"the {extra} extra"
    return MissingDependencyError(f"{what} needs {stack} ('{name}' is not installed here): "
                                  f"pip install 'edgedistill[{extra}]'")
