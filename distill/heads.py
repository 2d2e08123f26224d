"""The projection heads trained on top of the student, and the student+head pair.

``create_head(kind, in_dim, hidden_dim, out_dim)`` builds one of :data:`HEADS`: ``mlp`` (SEED/DisCo's
two-layer head), ``mlp4`` (SimReg's four-layer prediction head), ``linear`` and ``none`` (the loss sees the
backbone feature itself, as the official CompRess does). Only the backbone is deployed.
"""
from __future__ import annotations

import torch
from torch import nn

from distill.methods import HEADS
from distill.students import Student


class ProjectionHead(nn.Module):
    """Linear -> BatchNorm -> ReLU -> Linear: (B, in_dim) -> (B, out_dim).

    The hidden width defaults to 2048: DisCo (arXiv 2104.09124) shows that a narrow head is a bottleneck for
    distilling into small students, and an independent SEED re-implementation gained 2.3 points from it.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim, bias=False),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SimRegHead(nn.Module):
    """SimReg's prediction MLP for CNN students (Navaneet et al., BMVC 2022; UCDvision/simreg ``mlp_arch.py``,
    ``n_mlp_layers = 4``): Linear(d, 2d) BN ReLU, Linear(2d, d), Linear(d, 2d) BN ReLU, Linear(2d, out):
    (B, d) -> (B, out), d the backbone width. No BN/ReLU after the second layer, as in the official code (there
    the projection part ends and the prediction part starts)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        d = in_dim
        self.net = nn.Sequential(
            nn.Linear(d, 2 * d), nn.BatchNorm1d(2 * d), nn.ReLU(inplace=True),
            nn.Linear(2 * d, d),
            nn.Linear(d, 2 * d), nn.BatchNorm1d(2 * d), nn.ReLU(inplace=True),
            nn.Linear(2 * d, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)




def create_head(kind: str, in_dim: int, hidden_dim: int, out_dim: int) -> nn.Module:
    """(B, in_dim) -> (B, out_dim) head of kind ``kind`` (one of :data:`HEADS`); ``none`` needs out_dim == in_dim."""
    if kind == "mlp":
        return ProjectionHead(in_dim, hidden_dim, out_dim)
    if kind == "mlp4":
        return SimRegHead(in_dim, out_dim)
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    if kind == "none":
        if out_dim != in_dim:
            raise ValueError(f"head 'none' keeps the backbone's {in_dim} dimensions, not {out_dim}")
        return nn.Identity()
    from distill.core.errors import ConfigError

    raise ConfigError(f"unknown head '{kind}'; valid heads: {', '.join(HEADS)}")


class StudentWithHead(nn.Module):
    """What training optimises: ``head(student(x))``. Only ``student`` is kept for deployment."""

    def __init__(self, student: Student, head: nn.Module):
        super().__init__()
        self.student, self.head = student, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.student(x))
