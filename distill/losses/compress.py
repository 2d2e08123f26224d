"""CompRess: compressing representations by matching anchor similarities (Abbasi Koohpayegani et al.,
NeurIPS 2020, arXiv 2010.14713)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from distill.losses.base import DistillLoss
from distill.losses.queue import EmbeddingQueue


def kl_teacher_student(logits_t: torch.Tensor, logits_s: torch.Tensor) -> torch.Tensor:
    """KL(softmax(logits_t) || softmax(logits_s)), averaged over the batch."""
    return F.kl_div(F.log_softmax(logits_s, 1), F.log_softmax(logits_t, 1), reduction="batchmean", log_target=True)


class CompRessLoss(DistillLoss):
    """CompRess-2q. A teacher queue and a student queue filled by the momentum (EMA, m = 0.999) student, both
    written at the same ring index, so slot i holds the same image in both::

        p_T = softmax(t . Q_T / tau),  p_S = softmax(s . Q_S / tau),  L = KL(p_T || p_S)

    tau = 0.04 on both sides, bank 128,000 (the paper's defaults). The anchors are the queued images only (no
    positive), as in the official code. The first step, with empty queues, only fills them. The official code
    computes the loss on the backbone feature (no head): that is ``--head none``, the default for this method.
    """

    momentum_views = (0,)

    def __init__(self, student_dim: int, teacher_dim: int, *, queue_size: int = 128000, tau: float = 0.04, gather=None):
        super().__init__(gather)
        self.tau = tau
        self.teacher_queue = EmbeddingQueue(queue_size, teacher_dim)
        self.student_queue = EmbeddingQueue(queue_size, student_dim)

    def forward(self, student, teacher, momentum=None):
        if momentum is None:
            raise ValueError("compress needs the momentum student's embeddings (momentum_views = (0,))")
        s = F.normalize(student[0], dim=1)
        t = F.normalize(teacher[0].detach(), dim=1)
        k = F.normalize(momentum[0].detach(), dim=1)
        if int(self.teacher_queue.filled) == 0:
            loss = self.zero_like(s)
        else:
            loss = kl_teacher_student(t @ self.teacher_queue.get().T / self.tau,
                                      s @ self.student_queue.get().T / self.tau)
        self.teacher_queue.push(self.gather(t))
        self.student_queue.push(self.gather(k))
        return loss


class CompRess1qLoss(DistillLoss):
    """CompRess-1q. One queue of teacher embeddings; the student is mapped into the teacher's space by a learned
    linear layer with bias (student_dim -> teacher_dim, as UCDvision/CompRess maps the backbone feature) and
    compared with the same anchors::

        p_T = softmax(t . Q_T / tau),  p_S = softmax(norm(W s + b) . Q_T / tau),  L = KL(p_T || p_S)

    With ``--head none`` (the default, official form) ``s`` is the backbone feature itself.
    """

    def __init__(self, student_dim: int, teacher_dim: int, *, queue_size: int = 128000, tau: float = 0.04, gather=None):
        super().__init__(gather)
        self.tau = tau
        self.proj = nn.Linear(student_dim, teacher_dim)
        self.teacher_queue = EmbeddingQueue(queue_size, teacher_dim)

    def forward(self, student, teacher, momentum=None):
        s = F.normalize(self.proj(student[0]), dim=1)
        t = F.normalize(teacher[0].detach(), dim=1)
        if int(self.teacher_queue.filled) == 0:
            loss = self.zero_like(s)
        else:
            q = self.teacher_queue.get()
            loss = kl_teacher_student(t @ q.T / self.tau, s @ q.T / self.tau)
        self.teacher_queue.push(self.gather(t))
        return loss
