"""A ``--format timm`` artifact (backbone weights in safetensors) loaded the way a user loads it:
``timm.create_model(arch, num_classes=0, checkpoint_path=FILE)``. Training side: needs torch and timm."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from distill.core.errors import first_line
from export.backends.base import Backend
from export.errors import ExportError
from export.metadata import read_metadata


class TimmBackend(Backend):
    runtime = "timm"

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None):
        import timm
        import torch

        meta = read_metadata(path) or {}
        arch = (meta.get("options") or {}).get("arch") or _header_arch(Path(path))
        if not arch:
            raise ExportError(f"'{path}' names no timm architecture (no metadata beside it, no 'arch' in its header)")
        super().__init__(path, {"precision": "fp32", **meta})
        if threads:
            torch.set_num_threads(threads)
        self.torch, self.device = torch, torch.device(device)
        try:
            model = timm.create_model(arch, pretrained=False, num_classes=0, checkpoint_path=str(path))
        except Exception as exc:  # timm's loader: a missing key, a shape, a damaged file
            raise ExportError(f"timm could not load '{path}' as {arch} ({type(exc).__name__}: "
                              f"{first_line(exc)[:160]})") from None
        self.model = model.to(self.device).eval()

    def __call__(self, x) -> np.ndarray:
        with self.torch.no_grad():
            out = self.model(self.torch.from_numpy(self.as_numpy(x)).to(self.device))
        return out.float().cpu().numpy()


def _header_arch(path: Path) -> str | None:
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            return (f.metadata() or {}).get("arch")
    except Exception:
        return None
