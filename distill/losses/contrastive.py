"""Self-supervised baselines with no teacher: MoCo-v2 and SimCLR (what `edgedistill pretrain` trains).

They share :class:`DistillLoss`'s signature and ignore ``teacher`` (``needs_teacher = False``), so the same
trainer, data pipeline, checkpoints and evaluation serve distillation and its from-scratch baseline.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from distill.losses.base import DistillLoss
from distill.losses.queue import EmbeddingQueue


class MoCoV2Loss(DistillLoss):
    """MoCo-v2 (Chen et al., arXiv 2003.04297): InfoNCE of the query (view 1) against its momentum key (view 2)
    and a queue of past keys::

        L = CE([q.k, q.Q] / T, 0),  T = 0.2, queue 65,536 (4,096 suits CIFAR-sized data)

    As in facebookresearch/moco ``builder.py``, the student (encoder_q) sees the query view alone, so its
    BatchNorm statistics are the query batch's; the key view goes through the momentum encoder only.
    """

    views = 2
    student_views = (0,)
    momentum_views = (1,)
    needs_teacher = False

    def __init__(self, student_dim: int, teacher_dim: int = 0, *, queue_size: int = 65536, temperature: float = 0.2,
                 gather=None):
        super().__init__(gather)
        self.temperature = temperature
        self.queue = EmbeddingQueue(queue_size, student_dim)

    def forward(self, student, teacher=None, momentum=None):
        if momentum is None:
            raise ValueError("mocov2 needs the momentum key encoder's embedding of view 2 (momentum_views = (1,))")
        q = F.normalize(student[0], dim=1)
        k = F.normalize(momentum[0].detach(), dim=1)
        logits = torch.cat([(q * k).sum(1, keepdim=True), q @ self.queue.get().T], 1) / self.temperature
        loss = F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))
        self.queue.push(self.gather(k))
        return loss


class SimCLRLoss(DistillLoss):
    """SimCLR's NT-Xent (Chen et al., arXiv 2002.05709) over the 2B embeddings of a batch's two views: each
    view's positive is the other view of its image, its negatives the other 2B - 2 embeddings of the same
    process's batch (under torchrun the negatives stay per rank). T = 0.5 (the paper's CIFAR-10 value)."""

    views = 2
    needs_teacher = False

    def __init__(self, student_dim: int, teacher_dim: int = 0, *, temperature: float = 0.5, gather=None):
        super().__init__(gather)
        self.temperature = temperature

    def forward(self, student, teacher=None, momentum=None):
        z = F.normalize(torch.cat([student[0], student[1]]), dim=1)  # (2B, D)
        b = student.shape[1]
        logits = (z @ z.T / self.temperature).fill_diagonal_(float("-inf"))
        targets = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
        return F.cross_entropy(logits, targets)
