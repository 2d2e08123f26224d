"""A real exported model and a small labelled image folder for the retrieval tests (no test bed needed)."""
import warnings

import pytest
import torch

from distill.checkpoint import save_student
from distill.core.preprocess import Preprocess
from distill.students import create_student
from export import ExportConfig, export_model
from retrieval_demo import IndexParams, build_index
from tests.conftest import colour_gallery

@pytest.fixture(scope="session")
def gallery(tmp_path_factory):
    """gallery/<colour>/<i>.png (8 per class) and queries/<colour>/<i>.jpg (2 per class): coloured noise."""
    return colour_gallery(tmp_path_factory.mktemp("retrieval"))


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory, gallery):
    """resnet10t at 32 px with seed-0 weights, exported to ONNX fp32 and parity-checked on the gallery."""
    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("student")
    save_student(run / "student.pt", create_student("resnet10t", img_size=32).eval(), Preprocess(input_size=32), {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = export_model(ExportConfig(model=str(run), formats=("onnx",), precisions=("fp32",),
                                           parity_data=str(gallery / "gallery"), parity_size=24,
                                           out=str(run / "export"), workers=0))
    (art,) = report["artifacts"]
    assert art["status"] == "ok"
    return art["path"]


@pytest.fixture(scope="session")
def flat_index(tmp_path_factory, onnx_model, gallery):
    out = tmp_path_factory.mktemp("index") / "flat"
    build_index(onnx_model, str(gallery / "gallery"), str(out), IndexParams(kind="flat"), workers=0)
    return out
