"""ExecuTorch: a ``.pte`` program (export.executorch_export) run by ExecuTorch's runtime with the XNNPACK
delegate. Training side: ExecuTorch's Python runtime imports torch (on a phone the same program runs from C++).

Every input is made C-contiguous float32 first (a program remembers its example's memory layout, and a
channels-last array would run and return garbage). The program's input is memory-planned for a largest batch
(``MethodMeta``): with ExecuTorch 1.5.1 that is at most 15 images whatever the declared maximum (measured), so a
larger batch runs in pieces of the planned size, and every batch the export declared works. Threads: ExecuTorch's
thread pool is one per process, set from ``threads``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from distill.core.errors import first_line
from distill.core.pieces import run_in_pieces
from export.backends.base import Backend
from export.errors import ExportError
from export.metadata import read_metadata


def load_forward(path: str | Path):
    """The program's ``forward`` method and the largest batch its input is memory-planned for (its MethodMeta)."""
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(str(path)).load_method("forward")
    return method, int(method.metadata.input_tensor_meta(0).sizes()[0])


class ExecuTorchBackend(Backend):
    runtime = "executorch"

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None):
        import torch

        super().__init__(path, read_metadata(path))
        if threads:
            from executorch.extension.pybindings import portable_lib

            portable_lib._unsafe_reset_threadpool(int(threads))  # process-wide, as ExecuTorch offers it
        self.torch = torch
        try:
            self.method, self.max_batch = load_forward(self.path)
        except Exception as exc:
            raise ExportError(f"ExecuTorch cannot load '{self.path}' ({type(exc).__name__}: "
                              f"{first_line(exc)[:160]}); re-export it") from None

    def __call__(self, x) -> np.ndarray:
        x = self.as_numpy(x)  # C-contiguous float32
        if len(x) > self.max_batch:
            return run_in_pieces(self._run, x, self.max_batch, static=False)
        return self._run(x)

    def _run(self, x: np.ndarray) -> np.ndarray:
        batch = self.torch.from_numpy(x)
        try:
            out = self.method.execute([batch])[0]
        except RuntimeError as exc:
            raise ExportError(f"ExecuTorch could not run '{self.path.name}' on a batch of {len(batch)} "
                              f"({first_line(exc)[:120]}); the program takes the batch range it was "
                              "exported with") from None
        return out.numpy().astype(np.float32, copy=True)
