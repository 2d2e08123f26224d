"""Regression to the teacher's embedding: SimReg (Navaneet et al., BMVC 2022, arXiv 2201.05131)."""
from __future__ import annotations

import torch.nn.functional as F

from distill.losses.base import DistillLoss


class RegressLoss(DistillLoss):
    """The student, through a deep prediction head (``--head mlp4``, :class:`distill.heads.SimRegHead`),
    regresses the teacher's embedding of the same image; both are L2-normalised::

        L = (1/B) sum_b |norm(s_b) - norm(t_b)|^2 = (1/B) sum_b (2 - 2 cos(s_b, t_b))

    as UCDvision/simreg ``simreg.py`` (its default: normalised MSE). No queue and no momentum encoder: each image
    is its own target. The student's projection must have the teacher's dimension.
    """

    def __init__(self, student_dim: int, teacher_dim: int, *, gather=None):
        super().__init__(gather)
        if student_dim != teacher_dim:
            raise ValueError(f"regress predicts teacher embeddings: dims differ ({student_dim} vs {teacher_dim})")

    def forward(self, student, teacher, momentum=None):
        s = F.normalize(student[0], dim=1)
        t = F.normalize(teacher[0].detach(), dim=1)
        return (2.0 - 2.0 * (s * t).sum(1)).mean()
