"""SEED: self-supervised distillation by soft cross-entropy over a queue (Fang et al., ICLR 2021, arXiv 2101.04731)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from distill.losses.base import DistillLoss
from distill.losses.queue import EmbeddingQueue


class SEEDLoss(DistillLoss):
    """Student and teacher embeddings are L2-normalised and scored against a FIFO queue of teacher embeddings,
    with the teacher's own embedding prepended as the positive::

        p_T = softmax([t.t, t.Q] / tau_t),  p_S = softmax([s.t, s.Q] / tau_s),  L = -sum p_T log p_S

    Defaults tau_s = 0.2, tau_t = 0.01 (the official code goes as low as 1e-4), queue 65,536. The student's
    projected embedding must have the teacher's dimension.
    """

    def __init__(self, student_dim: int, teacher_dim: int, *, queue_size: int = 65536, tau_s: float = 0.2,
                 tau_t: float = 0.01, gather=None):
        super().__init__(gather)
        if student_dim != teacher_dim:
            raise ValueError(f"seed scores the student against teacher embeddings: dims differ ({student_dim} vs "
                             f"{teacher_dim})")
        self.tau_s, self.tau_t = tau_s, tau_t
        self.queue = EmbeddingQueue(queue_size, teacher_dim)

    def forward(self, student, teacher, momentum=None):
        s = F.normalize(student[0], dim=1)
        t = F.normalize(teacher[0].detach(), dim=1)
        q = self.queue.get()
        logits_s = torch.cat([(s * t).sum(1, keepdim=True), s @ q.T], 1) / self.tau_s
        logits_t = torch.cat([(t * t).sum(1, keepdim=True), t @ q.T], 1) / self.tau_t
        loss = -(F.softmax(logits_t, 1) * F.log_softmax(logits_s, 1)).sum(1).mean()
        self.queue.push(self.gather(t))
        return loss
