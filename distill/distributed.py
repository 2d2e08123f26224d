"""Data-parallel training under ``torchrun``: process-group set-up and the two collectives the trainer needs.

Nothing here runs unless the launcher set ``WORLD_SIZE`` > 1 (``torchrun --nproc_per_node N -m distill train
...``); a plain ``edgedistill train`` is one process and never touches ``torch.distributed``. NCCL is used on
CUDA and gloo on CPU. The queues of every loss are filled through :func:`gather_cat`, so each rank enqueues the
embeddings of the whole global batch, as SEED's and MoCo's official code do.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from distill.core.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context_from_env() -> DistContext:
    """Read torchrun's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (a single process when they are absent)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ConfigError("RANK/WORLD_SIZE/LOCAL_RANK must be integers; launch with torchrun") from None
    return DistContext(rank=rank, world_size=world, local_rank=local)


def init_distributed(ctx: DistContext, device: torch.device) -> torch.device:
    """Join the process group (NCCL on CUDA, gloo on CPU); returns this rank's device."""
    if not ctx.enabled:
        return device
    if device.type == "cuda":
        if torch.cuda.device_count() <= ctx.local_rank:
            raise ConfigError(f"rank {ctx.rank} needs GPU {ctx.local_rank} but {torch.cuda.device_count()} are "
                              "visible; use --nproc_per_node <= the GPU count")
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=ctx.rank,
                                world_size=ctx.world_size)
    return device


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@torch.no_grad()
def gather_cat(x: torch.Tensor) -> torch.Tensor:
    """(B, D) on each rank -> (world_size * B, D) on every rank, rank order (no gradients).

    Identity on one process. Every rank must pass the same B (the sampler pads the epoch so they do).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    x = x.contiguous()
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x)
    return torch.cat(parts)


def mean_across_ranks(value: float, device: torch.device) -> float:
    """The mean of a Python float over all ranks (for logging the global loss)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def min_across_ranks(value: int, device: torch.device) -> int:
    """The smallest of an integer over all ranks (e.g. the planned step count, which every rank must share)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any (e.g. a stop signal received by one process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
