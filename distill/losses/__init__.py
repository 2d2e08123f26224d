"""Distillation losses behind one factory: ``create_loss(name, student_dim=..., teacher_dim=..., **options)``.

The names and classes come from the one list of methods, :data:`distill.methods.METHODS`.

Every loss has the signature of :class:`DistillLoss` and keeps its queues as registered buffers.
"""
from __future__ import annotations

import inspect

from distill.core.errors import ConfigError
from distill.losses.base import DistillLoss
from distill.losses.compress import CompRess1qLoss, CompRessLoss
from distill.losses.disco import DisCoLoss
from distill.losses.queue import EmbeddingQueue
from distill.losses.regress import RegressLoss
from distill.losses.seed import SEEDLoss
from distill.methods import DISTILL_METHODS, METHODS, PRETRAIN_METHODS

LOSSES: dict[str, type[DistillLoss]] = {name: m.loss_class() for name, m in METHODS.items()}  # distill.methods


def loss_options(name: str) -> dict[str, object]:
    """The keyword options of a loss and their defaults (beyond student_dim/teacher_dim/gather)."""
    sig = inspect.signature(LOSSES[name].__init__)
    return {k: p.default for k, p in sig.parameters.items()
            if p.kind is p.KEYWORD_ONLY and k != "gather"}


def create_loss(name: str, *, student_dim: int, teacher_dim: int, gather=None, **options) -> DistillLoss:
    """Build the loss registered as ``name``; unknown names and options raise :class:`ConfigError`."""
    if name not in LOSSES:
        raise ConfigError(f"unknown method '{name}'; valid methods: {', '.join(LOSSES)}")
    valid = loss_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"method '{name}' has no option {', '.join(unknown)}; its options: {', '.join(valid)}")
    try:
        return LOSSES[name](student_dim, teacher_dim, gather=gather, **options)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


__all__ = ["DistillLoss", "EmbeddingQueue", "LOSSES", "DISTILL_METHODS", "PRETRAIN_METHODS", "create_loss",
           "loss_options", "SEEDLoss", "CompRessLoss", "CompRess1qLoss", "DisCoLoss",
           "RegressLoss"]
