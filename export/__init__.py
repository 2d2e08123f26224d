"""edgedistill.export: students to ONNX, OpenVINO IR and TensorRT, the runtimes that load them back, and
the parity gate that decides whether an artifact is good.

    from export import export_model, ExportConfig, load_backend

The names are imported lazily (PEP 562), so that building the command-line parser imports no runtime.
"""
from distill.core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "export.backends": ("Backend", "load_backend"),
    "export.errors": ("ExportError", "ParityError"),
    "export.exporter": ("ArtifactResult", "ExportConfig", "export_model"),
    "export.formats": ("FORMATS", "PRECISIONS"),
    "export.parity": ("ParityResult", "compare"),
    "export.tolerances": ("TOLERANCES",),
})
