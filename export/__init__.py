"""edgedistill.export: students to ONNX, OpenVINO IR and TensorRT, the runtimes that load them back, and
the parity gate that decides whether an artifact is good.

    from export import export_model, ExportConfig, load_backend
"""
from export.backends import Backend, load_backend
from export.errors import ExportError, ParityError
from export.exporter import ArtifactResult, ExportConfig, export_model
from export.formats import FORMATS, PRECISIONS
from export.parity import ParityResult, compare
from export.tolerances import TOLERANCES

__all__ = ["Backend", "load_backend", "ExportError", "ParityError", "ArtifactResult", "ExportConfig",
           "export_model", "FORMATS", "PRECISIONS", "ParityResult", "compare", "TOLERANCES"]
