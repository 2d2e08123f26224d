"""Parameters and FLOPs of a student (PyTorch's FlopCounterMode: multiply-adds count as 2 FLOPs)."""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_flops(model: torch.nn.Module, img_size: int) -> int:
    """FLOPs of one forward pass on one (1, 3, S, S) image."""
    model = model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, img_size, img_size))
    return int(counter.get_total_flops())


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
