"""The export formats as data: file suffix, precisions, the runtime that loads them, and what they need.

Adding a format means one row here, one ``<format>_export.py`` module and one backend class.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str  # of the main artifact file
    precisions: tuple[str, ...]
    backend: str  # the runtime that loads it (see export.backends)
    module: str  # the Python module that must import to build it
    extra: str | None  # the pip extra that provides that module (None: a base dependency)
    needs_cuda: bool = False
    exporter: str = ""  # "module:function" building the artifact

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
    "onnx": Format("onnx", ".onnx", PRECISIONS, "onnxruntime", "onnxruntime", None,
                   exporter="export.onnx_export:export_onnx"),
    "openvino": Format("openvino", ".xml", PRECISIONS, "openvino", "openvino", "openvino",
                       exporter="export.openvino_export:export_openvino"),
    "tensorrt": Format("tensorrt", ".engine", PRECISIONS, "tensorrt", "tensorrt", "tensorrt", needs_cuda=True,
                       exporter="export.tensorrt_export:export_tensorrt"),
}


def get_format(name: str) -> Format:
    from export.errors import ExportError

    if name not in FORMATS:
        raise ExportError(f"unknown format '{name}'; valid formats: {', '.join(FORMATS)} (or all)")
    return FORMATS[name]


def format_for_path(path: str) -> Format | None:
    """The format whose suffix the artifact path ends with (``.failed`` artifacts match none)."""
    for fmt in FORMATS.values():
        if str(path).endswith(fmt.suffix) or (fmt.name == "tensorrt" and str(path).endswith(".plan")):
            return fmt
    return None
