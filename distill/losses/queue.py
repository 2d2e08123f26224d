"""A FIFO ring buffer of embeddings, held as registered buffers (moves with ``.to()``, saved in state dicts)."""
from __future__ import annotations

import torch
from torch import nn


class EmbeddingQueue(nn.Module):
    """``size`` slots of ``dim``-d embeddings, written in ring order.

    ``filled`` counts the slots holding real embeddings, so a queue longer than the data seen so far never
    hands out its zero-initialised slots as anchors. Slot ``i`` of two queues pushed with batches of the same
    size in the same steps holds the same image (CompRess-2q relies on this).
    """

    def __init__(self, size: int, dim: int):
        super().__init__()
        if size <= 0 or dim <= 0:
            raise ValueError(f"queue size and dim must be positive, got size={size} dim={dim}")
        self.size, self.dim = size, dim
        self.register_buffer("data", torch.zeros(size, dim))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    def get(self) -> torch.Tensor:
        """(filled, dim): a copy of the valid embeddings (all ``size`` once the queue has wrapped).

        A copy, because the loss pushes into the queue before the backward pass that still needs these values.
        """
        return self.data[: int(self.filled)].clone()

    @torch.no_grad()
    def push(self, x: torch.Tensor) -> None:
        """Enqueue (B, dim) embeddings at the pointer, overwriting the oldest; keeps the last ``size`` if B > size."""
        x = x.detach().to(self.data.dtype)
        if x.shape[0] > self.size:
            x = x[-self.size:]
        b = x.shape[0]
        idx = (int(self.ptr) + torch.arange(b, device=self.data.device)) % self.size
        self.data.index_copy_(0, idx, x)
        self.ptr.fill_((int(self.ptr) + b) % self.size)
        self.filled.fill_(min(self.size, int(self.filled) + b))
