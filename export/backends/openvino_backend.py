"""OpenVINO: an IR (.xml + .bin) compiled for CPU (or GPU), once per input shape.

The IR keeps a dynamic batch axis, but the CPU plugin runs a model whose shapes are known when it compiles
faster (the demo student's int8 IR: 2.6x at batch 1, 2.0x at batch 8; fp32 1.1-1.2x), and for that int8 IR the
dynamic compile is wrong at batch 1 (docs/BENCHMARKS.md, "Static shapes"; docs/EXPORT.md, "The smallest batch").
benchmark_app reshapes the same way (``-shape``). So each new input shape is compiled reshaped to
it (tens to a few hundred ms, once) and the last few stay compiled; a shape the IR cannot take falls back to the
dynamic model.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np

from distill.core.deps import require
from distill.core.errors import ModelError, first_line
from export.backends.base import Backend
from export.errors import ExportError
from export.metadata import read_metadata

KEEP_SHAPES = 4  # compiled static models kept (a retrieval index uses two: its batch and the last, shorter one)


def cpu_config(threads: int | None, **extra: str) -> dict[str, str]:
    """The compile settings bench, the gate and the profiler share: one latency stream, f32 compute for fp32 and
    fp16-compressed IRs (a bf16/AMX host would otherwise switch silently), ``threads`` when given."""
    config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", **extra}
    if threads:
        config["INFERENCE_NUM_THREADS"] = str(threads)
    return config


def reshaped(model, shape: tuple[int, ...]):
    """A copy of ``model`` with its input fixed to ``shape``; None when the IR's input cannot take it."""
    import openvino as ov

    if not model.inputs[0].get_partial_shape().compatible(ov.PartialShape(list(shape))):
        return None
    static = model.clone()
    try:
        static.reshape({static.inputs[0]: list(shape)})
    except RuntimeError:
        return None
    return static


class OpenVINOBackend(Backend):
    runtime = "openvino"

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None):
        ov = require("openvino", "openvino", "OpenVINO artifacts")
        self.weights_beside(path, "an OpenVINO IR")
        super().__init__(path, read_metadata(path))
        self.core = ov.Core()
        self.config = cpu_config(threads)
        self.ov_device = "GPU" if device.startswith("cuda") or device.upper() == "GPU" else "CPU"
        try:
            self.model = self.core.read_model(str(self.path))
        except Exception as exc:
            raise ModelError(f"OpenVINO cannot read '{self.path}': {first_line(exc)}") from None
        self._dynamic: tuple | None = None  # compiled on first need: shapes the IR cannot be fixed to
        self._static: OrderedDict[tuple, tuple] = OrderedDict()
        self.request = None  # the request of the latest call or binding
        if not self.embedding_dim:
            self.embedding_dim = int(self.model.outputs[0].get_partial_shape()[-1].get_length())

    def _compile(self, model):
        try:
            return self.core.compile_model(model, self.ov_device, self.config)
        except Exception as exc:
            raise ExportError(
                f"OpenVINO cannot compile '{self.path}' for {self.ov_device}: {first_line(exc)}"
            ) from None

    def compiled_for(self, shape: tuple[int, ...]):
        """(compiled model, infer request) for an input of ``shape``: its own static compile, kept among the
        last KEEP_SHAPES; the dynamic model when the IR cannot be reshaped to it."""
        if shape in self._static:
            self._static.move_to_end(shape)
            return self._static[shape]
        static = reshaped(self.model, shape)
        if static is None:
            if self._dynamic is None:
                compiled = self._compile(self.model)
                self._dynamic = (compiled, compiled.create_infer_request())
            return self._dynamic
        compiled = self._compile(static)
        self._static[shape] = (compiled, compiled.create_infer_request())
        if len(self._static) > KEEP_SHAPES:
            self._static.popitem(last=False)
        return self._static[shape]

    def __call__(self, x) -> np.ndarray:
        x = self.as_numpy(x)
        compiled, request = self.compiled_for(tuple(x.shape))
        self.request = request
        out = request.infer({0: x})
        return np.asarray(out[compiled.outputs[0]], dtype=np.float32).copy()

    def bound(self, x: np.ndarray):
        """The model compiled for x's shape, its input set once as a tensor sharing the NumPy buffer
        (``shared_memory``), the output left in the request: ``infer()`` alone per call, as benchmark_app times
        it (``-shape`` fixes the shape there too)."""
        import openvino as ov

        x = self.as_numpy(x)
        _, request = self.compiled_for(tuple(x.shape))
        request.set_input_tensor(ov.Tensor(x, shared_memory=True))
        self.request = request
        keep = x  # the tensor shares this buffer: it lives as long as the callable
        return lambda: request.infer() and keep is not None

    def files(self) -> list[Path]:
        return [self.path, self.path.with_suffix(".bin")]
