"""A workspace of real artifacts, built once by the commands themselves, for the fault-injection suite.

Every artifact kind the project writes is here: a training run (student.pt, checkpoint.pt, config.json), a
teacher cache, an export (ONNX, OpenVINO IR when installed, export.json) and a retrieval index (index.faiss,
manifest.json, embeddings). Each fault works on its own copy (``ws``), so damage never leaks between faults.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.conftest import colour_gallery, make_image, run_cli, tiny_teacher

STUDENT = "mobilenetv3_small_050"  # timm, 0.6 M parameters: small artifacts, fast commands


def _ok(proc, what: str) -> None:
    assert proc.returncode == 0, f"building the workspace ({what}) failed:\n{proc.stderr[-3000:]}"


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Path:
    root = colour_gallery(tmp_path_factory.mktemp("reliability"), database="images", size=36)
    make_image(root / "photo.png")
    (root / "empty").mkdir()
    (root / "notes.txt").write_text("not a model\n")
    teacher = tiny_teacher()
    example = torch.zeros(1, 3, 32, 32)
    torch.jit.trace(teacher, example).save(str(root / "teacher.torchscript.pt"))
    torch.onnx.export(teacher, example, str(root / "teacher.onnx"), input_names=["input"],
                      output_names=["embedding"], dynamic_axes={"input": {0: "batch"}}, dynamo=False)
    (root / "teacher.json").write_text(json.dumps({"input_size": [3, 32, 32], "mean": [0.5] * 3, "std": [0.25] * 3,
                                                   "embedding_dim": 32}))
    common = ("--workers", "0", "--device", "cpu")
    _ok(run_cli("distill", "train", "--data", str(root / "images"), "--teacher", str(root / "teacher.torchscript.pt"),
                "--student", STUDENT, "--img-size", "32", "--batch-size", "8", "--max-steps", "2", "--queue-size",
                "64", "--out", str(root / "run"), *common), "train")
    _ok(run_cli("distill", "cache-teacher", "--data", str(root / "images"), "--teacher",
                str(root / "teacher.torchscript.pt"), "--out", str(root / "cache"), "--chunk-images", "8", *common),
        "cache-teacher")
    export = ("--precision", "fp32", "--parity-data", str(root / "images"), "--parity-size", "16", "--timing-s", "0.2")
    _ok(run_cli("distill", "export", "--model", str(root / "run"), "--format", "onnx", *export,
                "--out", str(root / "export"), *common), "export onnx")
    if _has_openvino():
        _ok(run_cli("distill", "export", "--model", str(root / "run"), "--format", "openvino", *export,
                    "--out", str(root / "export_ov"), *common), "export openvino")
    shutil.copy(next((root / "export").glob("*.onnx")), root / "model.onnx")
    _ok(run_cli("distill", "retrieve", "index", "--model", str(root / "model.onnx"), "--images",
                str(root / "images"), "--out", str(root / "index"), "--workers", "0"), "retrieve index")
    return root


def _has_openvino() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


@pytest.fixture
def ws(workspace, tmp_path) -> Path:
    """A private copy of the workspace for one fault."""
    copy = Path(shutil.copytree(workspace, tmp_path / "ws", symlinks=True))
    for manifest in copy.rglob("*.json"):  # paths recorded inside artifacts point into the copy
        manifest.write_text(manifest.read_text().replace(str(workspace), str(copy)))
    return copy
