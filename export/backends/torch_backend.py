"""PyTorch eager: the student checkpoint itself (the parity reference)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from distill.checkpoint import load_student
from export.backends.base import Backend


class TorchBackend(Backend):
    runtime = "torch"

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None):
        loaded = load_student(path)
        super().__init__(loaded.path, {"preprocess": loaded.preprocess.to_dict(), "precision": "fp32",
                                       "embedding_dim": loaded.model.num_features, **loaded.meta})
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.model = loaded.model.to(self.device).eval()

    @torch.no_grad()
    def __call__(self, x) -> np.ndarray:
        t = torch.as_tensor(self.as_numpy(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
        out = self.model(t.to(self.device))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return out.float().cpu().numpy()
