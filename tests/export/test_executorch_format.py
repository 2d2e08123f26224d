"""export --format executorch: XNNPACK-delegated .pte programs at fp32 and int8 (PT2E), gated like every format;
the layout trap (a channels-last array of the right shape) gives the same embeddings; both ends of the declared
batch range run, and a batch beyond the planned one runs in pieces; bench measures it."""
import numpy as np
import pytest
import torch

from export import ExportConfig, export_model
from export.backends import load_backend
from tests.conftest import student_run

pytest.importorskip("executorch", reason="the executorch format needs the executorch extra "
                                         "(pip install 'edgedistill[executorch]')")
pytestmark = pytest.mark.slow  # lowering takes 20-40 s a program on 2 cores


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("executorch")
    student = student_run(root)
    report = export_model(ExportConfig(model=str(root), formats=("executorch",), precisions=("fp32", "int8"),
                                       calib=str(root / "gallery"), calib_size=24, parity_data=str(root / "gallery"),
                                       parity_size=24, dynamic_batch=(1, 4, 8), out=str(root / "export"), workers=0,
                                       timing_s=0.1))
    return root, student, {a["precision"]: a for a in report["artifacts"]}


def test_fp32_and_int8_pass_or_fail_the_gate_as_their_parity_says(exported):
    _, _, arts = exported
    fp32, int8 = arts["fp32"], arts["int8"]
    assert fp32["status"] == "ok" and fp32["path"].endswith(".pte") and fp32["parity"]["min_cosine"] > 0.9999
    assert int8["status"] in ("ok", "parity_failed") and int8["parity"]["passed"] == (int8["status"] == "ok")
    assert int8["parity"]["min_cosine"] < fp32["parity"]["min_cosine"]  # it really is quantised


def test_the_layout_and_both_ends_of_the_batch_range(exported):
    _, student, arts = exported
    backend = load_backend(arts["fp32"]["path"], threads=1)
    x = np.random.default_rng(0).normal(size=(8, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = student(torch.from_numpy(x)).numpy()
    out = backend(x)  # the top of the range (8)
    assert np.allclose(out, ref, atol=1e-4)
    assert np.allclose(backend(x[:1]), ref[:1], atol=1e-4)  # the bottom (1)
    channels_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    assert not channels_last.flags["C_CONTIGUOUS"] and np.allclose(backend(channels_last), out, atol=1e-6)
    assert backend.max_batch == 8 and arts["fp32"]["path"]  # planned for the declared maximum (under 15)
    nine = np.concatenate([x, x[:1]])
    assert np.allclose(backend(nine), np.concatenate([ref, ref[:1]]), atol=1e-4)  # in pieces of the planned 8


def test_bench_measures_it(exported, tmp_path):
    from bench.runner import BenchConfig, run_bench

    _, _, arts = exported
    report = run_bench(BenchConfig(targets=[arts["fp32"]["path"]], batch_sizes=(1, 8), warmup_s=0.05, min_time_s=0.1,
                                   min_runs=3, rounds=1, out=str(tmp_path / "bench")))
    rows = [r for r in report["rows"] if r["backend"] == "executorch"]
    assert [r["batch_size"] for r in rows] == [1, 8] and all(r["status"] == "ok" for r in rows)
    assert all(r["gate"] == "pass" for r in rows)
