"""PyTorch: the student checkpoint itself (the parity reference), eager or compiled, in fp32 or half precision
(the variants of export.backends.torch_variants, which ``bench --torch`` measures beside the artifacts). Half
precision casts the weights and the input, as timm's benchmark script does for ``--precision float16``; outputs
come back fp32."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from distill.checkpoint import load_student
from export.backends.base import Backend
from export.backends.torch_variants import TORCH_MODES, parse_variant

TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
WARM_CALLS = 3  # compile, record the CUDA graph, replay: done before bench's clock starts


class TorchBackend(Backend):
    runtime = "torch"

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None, variant: str = "eager"):
        mode, precision = parse_variant(variant, device)
        loaded = load_student(path)
        super().__init__(loaded.path, {"preprocess": loaded.preprocess.to_dict(), "precision": precision,
                                       "embedding_dim": loaded.model.num_features, **loaded.meta})
        self.precision, self.mode, self.variant = precision, mode, variant
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.dtype = TORCH_DTYPES[precision]
        self.model = loaded.model.to(self.device, self.dtype).eval()
        options = TORCH_MODES[mode]
        self.forward = self.model if options is None else torch.compile(self.model, **options)

    def _input(self, x) -> torch.Tensor:
        t = x if isinstance(x, torch.Tensor) else torch.from_numpy(self.as_numpy(x))
        return t.to(self.device, self.dtype)

    @torch.inference_mode()
    def __call__(self, x) -> np.ndarray:
        out = self.forward(self._input(x))
        return out.float().cpu().numpy()

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def bound(self, x: np.ndarray):
        """The input moved to the device and cast once; the output left there (bench synchronises the device
        after each call): the model's call, as trtexec's GPU compute time. A compiled variant is compiled (and
        its CUDA graph recorded) by WARM_CALLS calls here, before the clock starts."""
        t = self._input(x)

        @torch.inference_mode()
        def run():
            return self.forward(t)

        for _ in range(WARM_CALLS if self.mode != "eager" else 0):
            run()
        return run
