"""An exported student used as a teacher: the ONNX file carries its own preprocessing (e.g. a pretrain run's)."""
import warnings

import pytest
import torch
from torch import nn

from distill.core.errors import ModelError
from distill.teachers import TeacherOptions, load_teacher
from export.metadata import read_metadata, write_metadata
from export.onnx_export import BatchSpec, torch_to_onnx

CIFAR = {"input_size": 32, "mean": [0.4914, 0.4822, 0.4465], "std": [0.247, 0.2435, 0.2616], "crop_pct": 1.0}


@pytest.fixture
def exported(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    path = torch_to_onnx(model, 32, tmp_path / "student-onnx-fp32.onnx", BatchSpec())
    write_metadata(path, {"format": "onnx", "preprocess": CIFAR, "embedding_dim": 8})
    return path


def test_an_exported_onnx_teacher_uses_the_preprocessing_inside_it(exported):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "no sidecar JSON" guess
        teacher = load_teacher(str(exported))
    assert teacher.preprocess.input_size == 32
    assert teacher.preprocess.mean == tuple(CIFAR["mean"]) and teacher.preprocess.std == tuple(CIFAR["std"])
    assert teacher(torch.randn(2, 3, 32, 32)).shape == (2, 8)
    flagged = load_teacher(str(exported), TeacherOptions(mean=(0.5, 0.5, 0.5)))
    assert flagged.preprocess.mean == (0.5, 0.5, 0.5) and flagged.preprocess.std == tuple(CIFAR["std"])


def test_damaged_export_metadata_is_one_line_naming_the_fix(exported):
    meta = read_metadata(exported)
    meta["preprocess"] = "not a dict"
    write_metadata(exported, meta)
    with pytest.raises(ModelError, match="damaged edgedistill metadata; re-export it"):
        load_teacher(str(exported))
    assert read_metadata(exported)["embedding_dim"] == 8  # the rest of the file is as written
