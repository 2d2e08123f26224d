"""OpenVINO: an IR (.xml + .bin) compiled for CPU (or GPU)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from distill.core.deps import require
from distill.core.errors import ModelError
from export.backends.base import Backend
from export.errors import ExportError
from export.metadata import read_metadata


class OpenVINOBackend(Backend):
    runtime = "openvino"

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None):
        ov = require("openvino", "openvino", "OpenVINO artifacts")
        weights = Path(path).with_suffix(".bin")
        if not weights.is_file():
            raise ModelError(f"'{Path(path).name}' has no weights file '{weights.name}' beside it; an OpenVINO IR is "
                             "the .xml and its .bin: copy both")
        super().__init__(path, read_metadata(path))
        core = ov.Core()
        config: dict[str, str] = {
            # f32 compute for fp32 and fp16-compressed IRs: hosts with bf16/AMX would otherwise switch silently.
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY",
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = str(threads)
        ov_device = "GPU" if device.startswith("cuda") or device.upper() == "GPU" else "CPU"
        try:
            self.compiled = core.compile_model(core.read_model(str(self.path)), ov_device, config)
        except Exception as exc:
            raise ExportError(
                f"OpenVINO cannot compile '{self.path}' for {ov_device}: {str(exc).splitlines()[0]}"
            ) from None
        self.request = self.compiled.create_infer_request()
        if not self.embedding_dim:
            self.embedding_dim = int(self.compiled.outputs[0].get_partial_shape()[-1].get_length())

    def __call__(self, x) -> np.ndarray:
        out = self.request.infer({0: self.as_numpy(x)})
        return np.asarray(out[self.compiled.outputs[0]], dtype=np.float32).copy()

    def bound(self, x: np.ndarray):
        """The input set once as a tensor sharing the NumPy buffer (``shared_memory``), the output left in the
        request: ``infer()`` alone per call, as benchmark_app times it."""
        import openvino as ov

        x = self.as_numpy(x)
        self.request.set_input_tensor(ov.Tensor(x, shared_memory=True))
        keep = x  # the tensor shares this buffer: it lives as long as the callable
        return lambda: self.request.infer() and keep is not None

    def files(self) -> list[Path]:
        return [self.path, self.path.with_suffix(".bin")]
