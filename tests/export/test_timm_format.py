"""export --format timm: the backbone in safetensors with timm's key names, loadable by timm.create_model(...,
checkpoint_path=FILE) with the student's own embeddings, gated like every format; a student that is not a stock
timm architecture is refused in one line."""
import json

import numpy as np
import pytest
import torch

from distill.checkpoint import save_student
from distill.core.preprocess import Preprocess
from distill.students import create_student
from export import ExportConfig, export_model
from tests.conftest import colour_gallery

timm = pytest.importorskip("timm", reason="the timm format needs the train extra (pip install 'edgedistill[train]')")


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    return colour_gallery(tmp_path_factory.mktemp("timm-gallery"), size=32)


def _run(tmp_path, name: str):
    torch.manual_seed(1)
    student = create_student(name, img_size=32).eval()
    save_student(tmp_path / "student.pt", student, Preprocess.for_student(32), {})
    return student


def test_a_timm_export_loads_in_timm_with_the_same_embeddings(tmp_path, gallery):
    student = _run(tmp_path, "mobilenetv3_small_050")
    report = export_model(ExportConfig(model=str(tmp_path), formats=("timm",), parity_data=str(gallery / "gallery"),
                                       parity_size=24, out=str(tmp_path / "export"), workers=0, timing_s=0.1))
    (art,) = report["artifacts"]
    assert art["status"] == "ok" and art["path"].endswith(".safetensors") and art["parity"]["passed"]
    loaded = timm.create_model("mobilenetv3_small_050", num_classes=0, checkpoint_path=art["path"]).eval()
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(4, 3, 32, 32)).astype(np.float32))
    with torch.no_grad():
        assert torch.allclose(loaded(x), student(x), atol=1e-5)
    meta = json.loads((tmp_path / "export" / "mobilenetv3_small_050-timm-fp32.json").read_text())
    assert meta["options"]["arch"] == "mobilenetv3_small_050" and meta["status"] == "ok"
    assert "mobilenetv3_small_050-timm-fp32.safetensors" in json.loads(
        (tmp_path / "export" / "reference.json").read_text())["artifacts"]  # on-target gate covers it too


def test_a_student_that_is_not_stock_timm_is_refused(tmp_path, gallery):
    _run(tmp_path, "resnet18_cifar")  # timm's resnet18 with a 3x3 stem, registered under its own name
    report = export_model(ExportConfig(model=str(tmp_path), formats=("timm",), parity_data=str(gallery / "gallery"),
                                       parity_size=8, out=str(tmp_path / "export"), workers=0, timing_s=0))
    (art,) = report["artifacts"]
    assert art["status"] == "export_failed" and "'resnet18_cifar' is not a timm architecture" in art["error"]
    assert "\n" not in art["error"]
