"""DisCo: distilled contrastive learning (Gao et al., ECCV 2022, arXiv 2104.09124)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from distill.losses.base import DistillLoss
from distill.losses.queue import EmbeddingQueue


class DisCoLoss(DistillLoss):
    """MoCo-v2 InfoNCE on the student plus MSE to the teacher on both views, at the official code's scale.

    With q1, q2 the normalised student embeddings of views 1 and 2, k2 the momentum key encoder's embedding of
    view 2, t1, t2 the teacher's (normalised), and B the batch of this process::

        L = c * (1/B) sum_b CE([q1_b.k2_b, q1_b.Q] / T, 0) + w * sum_b (|q1_b - t1_b|^2 + |q2_b - t2_b|^2)

    The cross-entropy is a batch mean and the squared distances a batch *sum* over dimensions and samples, as
    in Yuting-Gao/DisCo-pytorch ``main.py`` (``nn.CrossEntropyLoss()`` beside ``nn.MSELoss(reduction='sum')``
    on the per-GPU batch), so per sample the MSE weighs about B times the contrastive term. T = 0.2 (MoCo-v2),
    queue of student keys 65,536, w = 1; c = 1, or 0 with ``only_mse`` (the official ``--only-mse``). The
    student's projection must have the teacher's dimension; DisCo's finding is that a wide projection head
    (hidden 2048) matters for small students. Deviation: under torchrun B is this rank's share of the global
    batch, as the official per-GPU batch is.
    """

    views = 2
    momentum_views = (1,)

    def __init__(self, student_dim: int, teacher_dim: int, *, queue_size: int = 65536, temperature: float = 0.2,
                 mse_weight: float = 1.0, only_mse: bool = False, gather=None):
        super().__init__(gather)
        if student_dim != teacher_dim:
            raise ValueError(f"disco compares student and teacher directly: dims differ ({student_dim} vs "
                             f"{teacher_dim})")
        self.temperature, self.mse_weight, self.only_mse = temperature, mse_weight, bool(only_mse)
        self.queue = EmbeddingQueue(queue_size, student_dim)

    def forward(self, student, teacher, momentum=None):
        if momentum is None:
            raise ValueError("disco needs the momentum key encoder's embedding of view 2 (momentum_views = (1,))")
        q1, q2 = F.normalize(student[0], dim=1), F.normalize(student[1], dim=1)
        teacher = teacher.detach()
        t1, t2 = F.normalize(teacher[0], dim=1), F.normalize(teacher[1], dim=1)
        k2 = F.normalize(momentum[0].detach(), dim=1)
        logits = torch.cat([(q1 * k2).sum(1, keepdim=True), q1 @ self.queue.get().T], 1) / self.temperature
        labels = torch.zeros(q1.shape[0], dtype=torch.long, device=q1.device)
        contrastive = F.cross_entropy(logits, labels)
        mse = (q1 - t1).pow(2).sum() + (q2 - t2).pow(2).sum()  # reduction='sum' over batch and dimensions
        self.queue.push(self.gather(k2))
        return (0.0 if self.only_mse else 1.0) * contrastive + self.mse_weight * mse
