"""Per-backend micro-benchmarks of a student forward pass (pytest-benchmark), excluded from ``make test``.

    make bench                                             (runs these, then the standard benchmark)
    pytest tests/benchmarks --benchmark-autosave           (save a baseline)
    pytest-benchmark compare 0001 0002 --group-by=param    (compare two saved runs)

Untrained students with seed-0 weights cost the same to run as trained ones; batch 1 at 32 and 224 px.
"""
import warnings

import numpy as np
import pytest
import torch

from distill.checkpoint import save_student
from distill.core.preprocess import Preprocess
from distill.students import create_student
from export import ExportConfig, export_model, load_backend
from export.formats import FORMATS
from tests.conftest import make_image

STUDENTS = ("mobilenetv3_large_100", "efficientnet_b0", "alexnet")
BACKENDS = (("torch", "fp32"), ("onnx", "fp32"), ("onnx", "int8"),
            pytest.param("openvino", "fp32", marks=pytest.mark.openvino),
            pytest.param("openvino", "int8", marks=pytest.mark.openvino))


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """(student, size) -> run folder with student.pt and its exports, built once per session."""
    cache = {}
    images = tmp_path_factory.mktemp("calib")
    for i in range(32):  # int8 needs calibration images; latency does not depend on what they show
        make_image(images / f"{i}.png", size=(64, 64), color=(40 + 6 * i, 120, 200 - 5 * i), seed=i)

    def get(name: str, size: int, fmt: str, precision: str):
        key = (name, size)
        run = tmp_path_factory.getbasetemp() / f"{name}-{size}"
        if key not in cache:
            torch.manual_seed(0)
            run.mkdir(exist_ok=True)
            save_student(run / "student.pt", create_student(name, img_size=size).eval(), Preprocess(input_size=size), {})
            cache[key] = {}
        if fmt == "torch":
            return run / "student.pt"
        if (fmt, precision) not in cache[key]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report = export_model(ExportConfig(model=str(run), formats=(fmt,), precisions=(precision,),
                                                   calib=str(images), calib_size=16, parity_size=16,
                                                   out=str(run / "export"),
                                                   allow_parity_failure=True, workers=0))
            (art,) = report["artifacts"]
            assert art["path"], art["error"]
            cache[key][(fmt, precision)] = art["path"]
        return cache[key][(fmt, precision)]

    return get


@pytest.mark.parametrize("size", (32, 224))
@pytest.mark.parametrize("fmt,precision", BACKENDS)
@pytest.mark.parametrize("name", STUDENTS)
def test_forward_batch1(benchmark, exported, name, size, fmt, precision):
    if fmt != "torch" and FORMATS[fmt].missing():
        pytest.skip(FORMATS[fmt].missing())
    backend = load_backend(exported(name, size, fmt, precision))
    x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    benchmark.group = f"{name}-{size}"
    benchmark.extra_info.update(backend=backend.runtime, precision=precision, img_size=size)
    out = benchmark(backend, x)
    assert out.shape[0] == 1 and np.isfinite(out).all()
