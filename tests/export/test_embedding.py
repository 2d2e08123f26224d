"""``export --embedding head``: the trained projection head exported with the backbone (the teacher's space)."""
import json

import numpy as np
import pytest
import torch

from distill.checkpoint import head_entry, load_student, save_student
from distill.core.preprocess import Preprocess
from distill.heads import create_head
from distill.students import create_student
from export import ExportConfig, export_model
from export.backends import load_backend
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def headed_run(tmp_path_factory):
    torch.manual_seed(0)
    student = create_student("resnet10t", img_size=32).eval()
    head = create_head("mlp", student.num_features, 64, 16)
    with torch.no_grad():  # non-trivial BatchNorm statistics, as after training
        head.net[1].running_mean.uniform_(-0.1, 0.1)
        head.net[1].running_var.uniform_(0.5, 2.0)
    head.eval()
    run = tmp_path_factory.mktemp("headed")
    save_student(run / "student.pt", student, Preprocess(input_size=32), {},
                 {"head": head_entry(head, "mlp", 64, 16)})
    return run, student, head


def test_head_export_outputs_the_projection(headed_run, cifar_small, tmp_path):
    run, student, head = headed_run
    report = export_model(ExportConfig(model=str(run), formats=("onnx",), precisions=("fp32",), embedding="head",
                                       parity_data=str(cifar_small / "test"), parity_size=16, out=str(tmp_path),
                                       workers=0, timing_s=0.1))
    (art,) = report["artifacts"]
    assert art["status"] == "ok" and art["path"].endswith("resnet10t-head-onnx-fp32.onnx")
    backend = load_backend(art["path"])
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = head(student(x)).numpy()
    got = np.asarray(backend(x.numpy()))
    assert got.shape == (3, 16) and np.allclose(got, expected, atol=1e-4)
    meta = json.loads((tmp_path / "export.json").read_text())
    assert meta["artifacts"][0]["status"] == "ok"


def test_backbone_is_still_the_default(headed_run):
    run, student, _ = headed_run
    loaded = load_student(run)
    assert loaded.model.num_features == student.num_features == 512 and loaded.meta["head"]["out_dim"] == 16


def test_a_student_without_a_head_is_one_line(tmp_path):
    torch.manual_seed(0)
    save_student(tmp_path / "student.pt", create_student("resnet10t", img_size=32).eval(), Preprocess(input_size=32), {})
    proc = run_cli("distill", "export", "--model", str(tmp_path), "--embedding", "head", "--format", "onnx",
                   "--out", str(tmp_path / "e"), "--workers", "0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no projection head" in proc.stderr.strip().splitlines()[-1]
