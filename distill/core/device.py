"""Which device a command runs on (``--device cpu|cuda[:N]|auto``)."""
from __future__ import annotations

from distill.core.errors import ConfigError


def check_device(name: str) -> str:
    """Validate a ``--device`` value without importing torch."""
    if name not in ("auto", "cpu") and not name.startswith("cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda[:N], got '{name}'")
    return name


def resolve_device(name: str):
    """``auto`` -> cuda when a GPU is visible, else cpu; cuda without a GPU is a user error."""
    import torch

    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu")
    return torch.device(name)
