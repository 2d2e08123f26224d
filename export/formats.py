"""The export formats as data: one row per format names its file suffixes, precisions, the runtime and backend
class that load it back, the function that builds it, and what it needs.

Adding a format means one row here and one module with a ``build`` function and a backend class: the
exporter dispatches on the row's ``build``, :func:`export.backends.load_backend` and ``bench`` find its
artifacts by the row's suffixes.

A build function has the signature ``build(ctx, precision, base_onnx, target, work) -> dict``: ``ctx`` is the
:class:`export.context.BuildContext` the exporter makes before any build (``cfg``, ``pre``, ``batch``,
``calibration()``, ``accuracy_data()``, ``judge_int8(runner)``; a format's int8 float fallback lives in its own
module and searches with it: export.qdq.onnx_fallback, export.openvino_export.openvino_fallback), ``base_onnx``
the fp32 ONNX
every format starts from, ``target`` the artifact path it would normally write, ``work`` a scratch folder; it
returns ``(artifact path, options)``: the path it wrote (``target``, or another one, as TensorRT's ONNX form with
``--onnx-only``) and the options to record in the artifact's metadata.
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Callable

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Format:
    name: str
    suffixes: tuple[str, ...]  # of the main artifact file; the first is what export writes
    precisions: tuple[str, ...]
    runtime: str  # the runtime name that loads it (load_backend(..., runtime=...))
    backend: str  # "module:Class" of that runtime's backend (export.backends.base.Backend)
    build: str  # "module:function" building the artifact (see the module docstring)
    module: str  # the Python module that must import to build it
    extra: str | None  # the pip extra that provides that module (None: a base dependency)
    needs_cuda: bool = False
    onnx_form: bool = False  # --onnx-only: the build writes the format's ONNX form, which needs nothing of it here

    @property
    def suffix(self) -> str:
        return self.suffixes[0]

    def builder(self) -> Callable:
        module, _, fn = self.build.partition(":")
        return getattr(importlib.import_module(module), fn)

    def missing(self) -> str | None:
        """Why this machine cannot build the format, or ``None`` when it can."""
        if importlib.util.find_spec(self.module) is None:
            hint = f"pip install 'edgedistill[{self.extra}]'" if self.extra else f"pip install {self.module}"
            return f"{self.module} is not installed ({hint})"
        if self.needs_cuda:
            import torch

            if not torch.cuda.is_available():
                return f"{self.name} needs an NVIDIA GPU with CUDA; none is visible here"
        return None


FORMATS: dict[str, Format] = {
    "onnx": Format("onnx", (".onnx",), PRECISIONS, "onnxruntime", "export.backends.onnx_backend:OnnxRuntimeBackend",
                   "export.onnx_export:build", "onnxruntime", None),
    "openvino": Format("openvino", (".xml",), PRECISIONS, "openvino",
                       "export.backends.openvino_backend:OpenVINOBackend", "export.openvino_export:build",
                       "openvino", "openvino"),
    "tensorrt": Format("tensorrt", (".engine", ".plan"), PRECISIONS, "tensorrt",
                       "export.backends.tensorrt_backend:TensorRTBackend", "export.tensorrt_export:build",
                       "tensorrt", "tensorrt", needs_cuda=True, onnx_form=True),
    # phones and ARM boards: pnnx converts the ONNX export; the runtime is torch-free
    "ncnn": Format("ncnn", (".param",), ("fp32", "fp16"), "ncnn", "export.backends.ncnn_backend:NcnnBackend",
                   "export.ncnn_export:build", "pnnx", "ncnn"),
    # PyTorch's on-device runtime, XNNPACK-delegated (the runtime's Python API imports torch)
    "executorch": Format("executorch", (".pte",), ("fp32", "int8"), "executorch",
                         "export.backends.executorch_backend:ExecuTorchBackend", "export.executorch_export:build",
                         "executorch", "executorch"),
    # the backbone with timm's key names (safetensors), loadable by timm.create_model(..., checkpoint_path=FILE)
    "timm": Format("timm", (".safetensors",), ("fp32",), "timm", "export.backends.timm_backend:TimmBackend",
                   "export.timm_export:build", "timm", "train"),
}


def get_format(name: str) -> Format:
    from export.errors import ExportError

    if name not in FORMATS:
        raise ExportError(f"unknown format '{name}'; valid formats: {', '.join(FORMATS)} (or all)")
    return FORMATS[name]


def artifact_suffixes() -> dict[str, str]:
    """Every exported artifact's file suffix -> the runtime that loads it, read from :data:`FORMATS`."""
    return {suffix: fmt.runtime for fmt in FORMATS.values() for suffix in fmt.suffixes}
