"""onnxruntime: CPU, or CUDA when asked for and the GPU build is installed."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from distill.core.errors import ModelError, first_line
from distill.core.pieces import run_in_pieces
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
        providers: list = ["CPUExecutionProvider"]
        self.device_id = 0
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ExportError("onnxruntime has no CUDA provider here: install the GPU build "
                                  "(pip install 'edgedistill[gpu]', see README) or use --device cpu")
            self.device_id = int(device.partition(":")[2] or 0)
            providers = [("CUDAExecutionProvider", {"device_id": self.device_id}), "CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=providers)
        except Exception as exc:
            raise ExportError(f"onnxruntime cannot load '{self.path}': {str(exc).splitlines()[0]}") from None
        first = self.session.get_inputs()[0]
        self.input_name, self.input_shape = first.name, list(first.shape)
        batch = self.input_shape[0] if self.input_shape else None
        # a fixed batch (torch.onnx.export's default is 1): run in pieces of that size, the last one padded
        self.static_batch = batch if isinstance(batch, int) and batch > 0 else None
        if not self.embedding_dim:
            dim = self.session.get_outputs()[0].shape[-1]
            self.embedding_dim = int(dim) if isinstance(dim, int) else 0

    def __call__(self, x) -> np.ndarray:
        x = self.as_numpy(x)
        if self.static_batch and len(x) != self.static_batch:
            return run_in_pieces(self._run, x, self.static_batch, static=True)
        return self._run(x)

    def bound(self, x: np.ndarray):
        """onnxruntime's IOBinding: the input bound once from its NumPy buffer, the output into a preallocated
        OrtValue (no per-call copies), on the CPU; a static batch of another size goes through ``self(x)``."""
        import onnxruntime as ort

        x = self.as_numpy(x)
        cpu = self.session.get_providers()[0] == "CPUExecutionProvider"
        if self.static_batch and len(x) != self.static_batch:
            return super().bound(x)
        if not cpu:
            return self._bound_cuda(x)
        binding = self.session.io_binding()
        binding.bind_cpu_input(self.input_name, x)
        output = self.session.get_outputs()[0]
        probe = self.session.run(None, {self.input_name: x})[0]  # the output's shape, once
        value = ort.OrtValue.ortvalue_from_numpy(np.empty_like(probe))
        binding.bind_ortvalue_output(output.name, value)
        run = self.session.run_with_iobinding
        return lambda: run(binding)

    def _bound_cuda(self, x: np.ndarray):
        """On the CUDA provider: the input copied to the GPU once, the output left in a GPU buffer that the
        first run allocated, the call ending when the outputs are ready (``synchronize_outputs``): the model's
        call without the host copies, as trtexec's GPU compute time."""
        import onnxruntime as ort

        output = self.session.get_outputs()[0].name
        binding = self.session.io_binding()
        binding.bind_ortvalue_input(self.input_name, ort.OrtValue.ortvalue_from_numpy(x, "cuda", self.device_id))
        binding.bind_output(output, "cuda", self.device_id)
        self.session.run_with_iobinding(binding)
        binding.bind_ortvalue_output(output, binding.get_outputs()[0])

        def run():
            self.session.run_with_iobinding(binding)
            binding.synchronize_outputs()

        return run

    def _run(self, x: np.ndarray) -> np.ndarray:
        try:
            out = self.session.run(None, {self.input_name: x})[0]
        except Exception as exc:  # onnxruntime's own exception types (InvalidArgument, Fail, ...)
            text = first_line(exc)
            raise ModelError(f"onnxruntime cannot run '{self.path.name}' on a {tuple(x.shape)} input (the model "
                             f"expects {self.input_shape}): {text[:200]}; check the input size in its metadata or "
                             "sidecar JSON") from None
        if out.ndim != 2:
            raise ModelError(f"'{self.path.name}' returns shape {tuple(out.shape)}, not (batch, dim): export the "
                             "pooled embedding, not a feature map or a token sequence")
        return np.asarray(out, dtype=np.float32)
