"""BatchNorm over the global batch under torchrun: SyncBatchNorm on CUDA, an all-reduce version elsewhere.

Without it each rank normalises with the statistics of its own share of the batch, so N processes with a
global batch B train a different model from one process with B (the per-rank batch is B / N). torch's
``nn.SyncBatchNorm`` is CUDA-only; on other devices every BatchNorm layer is switched in place to a subclass
(:class:`AllReduceBatchNormMixin`) whose training statistics are sums all-reduced through
``torch.distributed.nn`` (which carries gradients). The switch keeps parameter names, so checkpoints are
unchanged, and it keeps timm's fused ``BatchNormAct2d`` activation, so gloo tests can check that 1 and 2
processes train the same model.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class AllReduceBatchNormMixin:
    """Put in front of a BatchNorm class: in training under a process group, normalise (N, C, ...) input with
    the mean and variance of the global batch, update the running statistics with them, then apply the
    layer's own trailing ``drop``/``act`` where it has them (timm's BatchNormAct2d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not (dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        c = x.shape[1]
        count = torch.full((1,), x.numel() / c, dtype=x.dtype, device=x.device)
        sums = dist_nn.all_reduce(torch.cat([x.sum(dims), count]))  # two passes: E[x^2] - E[x]^2 cancels badly
        n = sums[-1]
        mean = sums[:c] / n
        shape = [1, c] + [1] * (x.dim() - 2)
        centred = x - mean.view(shape)
        var = dist_nn.all_reduce((centred * centred).sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1).clamp_min(1), alpha=m)
                self.num_batches_tracked.add_(1)
        y = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if hasattr(self, "drop"):
            y = self.drop(y)
        if hasattr(self, "act"):
            y = self.act(y)
        return y


_SUBCLASSES: dict[type, type] = {}


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm of ``model`` made global: SyncBatchNorm on CUDA (timm's converter, which keeps fused
    activations), the all-reduce switch in place elsewhere."""
    if device.type == "cuda":
        from timm.layers import convert_sync_batchnorm as timm_convert

        return timm_convert(model)
    for module in model.modules():
        cls = type(module)
        if isinstance(module, _BatchNorm) and not isinstance(module, AllReduceBatchNormMixin):
            if cls not in _SUBCLASSES:
                _SUBCLASSES[cls] = type(f"AllReduce{cls.__name__}", (AllReduceBatchNormMixin, cls), {})
            module.__class__ = _SUBCLASSES[cls]
    return model
