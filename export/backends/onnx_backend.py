"""onnxruntime: CPU, or CUDA when asked for and the GPU build is installed."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from distill.core.threads import ort_session_options
from export.backends.base import Backend
from export.errors import ExportError
from export.metadata import read_metadata


class OnnxRuntimeBackend(Backend):
    runtime = "onnxruntime"

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None):
        import onnxruntime as ort

        super().__init__(path, read_metadata(path))
        # intra-op spinning off: in a benchmark worker it is the only pool, but embedding for retrieval and
        # parity checks it shares the process with torch (distill.core.threads)
        opts = ort_session_options(threads)
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ExportError("onnxruntime has no CUDA provider here: install the GPU build "
                                  "(pip install 'edgedistill[gpu]', see README) or use --device cpu")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=providers)
        except Exception as exc:
            raise ExportError(f"onnxruntime cannot load '{self.path}': {str(exc).splitlines()[0]}") from None
        self.input_name = self.session.get_inputs()[0].name
        if not self.embedding_dim:
            self.embedding_dim = int(self.session.get_outputs()[0].shape[-1])

    def __call__(self, x) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: self.as_numpy(x)})[0], dtype=np.float32)
