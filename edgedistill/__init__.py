"""edgedistill as a library: every command as a function with keyword arguments.

    import edgedistill

    run = edgedistill.train(data="images/train", teacher="teacher.onnx", student="mobilenetv3_large_100",
                            method="seed", epochs=5, out="runs/seed")
    report = edgedistill.export(model=run["run_dir"], format="onnx", precision="fp32,int8")
    bench = edgedistill.bench(targets=[run["run_dir"]], val="images/val", batch_sizes=(1, 8))
    edgedistill.index(model=report["artifacts"][0]["path"], images="photos", out="photos.index")
    hits = edgedistill.search(index="photos.index", images=["query.jpg"], k=5)

Each function takes the flags of its command as keyword arguments (``batch_size`` for ``--batch-size``), runs
the command's own implementation, and returns what ``edgedistill COMMAND --json`` prints (a dict). A user error
raises the project's typed error (``edgedistill.EdgeDistillError`` and its subclasses: ``ConfigError``,
``DataError``, ``ModelError``, ``ParityError``, ...), with the same one-line message the command line prints;
nothing exits the interpreter. Messages go through ``logging.getLogger("edgedistill")``.
"""
from __future__ import annotations

from typing import Any

from distill.core.api import run_command
from distill.core.errors import (CheckpointError, ConfigError, DataError, EdgeDistillError, ModelError,
                                 PartialResult, TrainingError)
from export.errors import ParityError


def train(**options: Any) -> dict[str, Any]:
    """``edgedistill train``: distil ``teacher`` into ``student`` on the images in ``data`` (``--config`` too)."""
    return run_command("train", **options)


def pretrain(**options: Any) -> dict[str, Any]:
    """``edgedistill pretrain``: the self-supervised baseline (MoCo-v2, SimCLR) without a teacher."""
    return run_command("pretrain", **options)


def cache_teacher(**options: Any) -> dict[str, Any]:
    """``edgedistill cache-teacher``: a teacher's embeddings of a folder, for training without teacher passes."""
    return run_command("cache-teacher", **options)


def evaluate(**options: Any) -> dict[str, Any]:
    """``edgedistill eval``: weighted kNN, 1-NN, linear probe or cluster alignment of a student or artifact."""
    return run_command("eval", **options)


def export(**options: Any) -> dict[str, Any]:
    """``edgedistill export``: ONNX / OpenVINO / TensorRT / timm artifacts, each gated on parity with PyTorch."""
    return run_command("export", **options)


def bench(**options: Any) -> dict[str, Any]:
    """``edgedistill bench``: latency, throughput, memory and parity of every backend (``targets``: a list)."""
    return run_command("bench", **options)


def index(**options: Any) -> dict[str, Any]:
    """``edgedistill retrieve index``: embed a folder with an exported model and build a faiss index."""
    return run_command("retrieve", "index", **options)


def search(**options: Any) -> dict[str, Any]:
    """``edgedistill retrieve search``: ranked neighbours of query ``images`` (a list) in ``index``."""
    return run_command("retrieve", "search", **options)


def evaluate_index(**options: Any) -> dict[str, Any]:
    """``edgedistill retrieve eval``: precision@k, recall@k and mAP of an index with class folders as labels."""
    return run_command("retrieve", "eval", **options)


def __getattr__(name: str):
    if name == "__version__":
        from distill.core.cli import version

        return version()
    raise AttributeError(f"module 'edgedistill' has no attribute '{name}'")


__all__ = ["train", "pretrain", "cache_teacher", "evaluate", "export", "bench", "index", "search", "evaluate_index",
           "EdgeDistillError", "ConfigError", "DataError", "ModelError", "CheckpointError", "TrainingError",
           "PartialResult", "ParityError"]


def __dir__():
    return __all__

