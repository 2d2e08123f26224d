"""The momentum (EMA) copy of the student: CompRess-2q's student bank and DisCo's MoCo key encoder."""
from __future__ import annotations

import copy

import torch
from torch import nn


class MomentumEncoder(nn.Module):
    """An exponential moving average of a model's parameters, ``p_ema <- m p_ema + (1 - m) p`` (MoCo, arXiv
    1911.05722), used without gradients.

    Its forward runs in eval mode except BatchNorm, as the official key encoders effectively do (MoCo's ResNets
    have no dropout; CompRess removes AlexNet's): dropout and other train-only layers are off when it writes
    anchors, while BatchNorm keeps using batch statistics, on a shuffled batch split into ``bn_splits`` parts:
    the single-process stand-in for MoCo's shuffling BN across GPUs, which keeps the key encoder's batch
    statistics from leaking which samples form a positive pair.
    """

    def __init__(self, model: nn.Module, momentum: float = 0.999, bn_splits: int = 2):
        super().__init__()
        self.model = copy.deepcopy(model)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.momentum, self.bn_splits = momentum, bn_splits

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        m = self.momentum
        for p_ema, p in zip(self.model.parameters(), model.parameters()):
            p_ema.mul_(m).add_(p.detach(), alpha=1.0 - m)

    def train(self, mode: bool = True) -> "MomentumEncoder":
        """Whatever mode is asked, the copy stays in eval mode with its BatchNorm layers in training mode."""
        super().train(mode)
        self.model.eval()
        for m in self.model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train()
        return self

    @torch.no_grad()
    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        self.train()
        b = x.shape[0]
        splits = self.bn_splits if b >= 2 * self.bn_splits else 1
        if splits == 1:
            return self.model(x)
        perm = torch.randperm(b, device=x.device, generator=generator)
        out = torch.cat([self.model(chunk) for chunk in x[perm].chunk(splits)])
        return out[torch.argsort(perm)]
