"""The one signature every distillation loss shares."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def identity_gather(x: torch.Tensor) -> torch.Tensor:
    return x


class DistillLoss(nn.Module):
    """Base class: ``loss(student, teacher, momentum=None) -> scalar``.

    * ``student``: (len(student_views), B, Ds) projected student embeddings of the augmented views listed in
      :attr:`student_views` (all V views when it is ``None``), with gradients;
    * ``teacher``: (V, B, Dt) teacher embeddings of the same views (no gradients);
    * ``momentum``: (len(momentum_views), B, Ds) embeddings of the momentum (EMA) student for the views
      listed in :attr:`momentum_views`, or ``None`` when the loss needs none.

    Queues are registered buffers. Distribution comes from outside: the trainer passes ``gather`` (all-gather
    across ranks, identity on one process) and every enqueued batch goes through it.
    """

    views: int = 1
    student_views: tuple[int, ...] | None = None  # views the student embeds (None: all); each is a BN batch share
    momentum_views: tuple[int, ...] = ()
    needs_teacher: bool = True  # False for the self-supervised baselines (edgedistill pretrain)

    def __init__(self, gather: Callable[[torch.Tensor], torch.Tensor] | None = None):
        super().__init__()
        self.gather = gather or identity_gather

    def forward(
        self, student: torch.Tensor, teacher: torch.Tensor, momentum: torch.Tensor | None = None
    ) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def zero_like(t: torch.Tensor) -> torch.Tensor:
        """A zero loss still connected to the graph (an empty queue gives no signal yet)."""
        return t.sum() * 0.0
