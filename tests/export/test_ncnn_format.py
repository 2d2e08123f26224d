"""export --format ncnn: pnnx's conversion of the ONNX export, gated like every format; fp32 keeps fp32 weights
(pnnx's default would be fp16); a batch runs image by image with its inputs kept alive; a layout-agnostic input
(a channels-last view of the same NCHW array) gives the same embeddings; a failed conversion is one line; bench
measures it."""
import json
import subprocess

import numpy as np
import pytest
import torch

from distill.checkpoint import save_student
from distill.core.preprocess import Preprocess
from distill.students import create_student
from export import ExportConfig, export_model
from export.backends import load_backend
from tests.conftest import colour_gallery, student_run

pytest.importorskip("ncnn", reason="the ncnn format needs the ncnn extra (pip install 'edgedistill[ncnn]')")
pytest.importorskip("pnnx", reason="the ncnn format needs the ncnn extra (pip install 'edgedistill[ncnn]')")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("ncnn")
    student = student_run(root)
    report = export_model(ExportConfig(model=str(root), formats=("ncnn",), precisions=("fp32", "fp16"),
                                       parity_data=str(root / "gallery"), parity_size=24, out=str(root / "export"),
                                       workers=0, timing_s=0.1))
    return root, student, {a["precision"]: a for a in report["artifacts"]}


def test_fp32_and_fp16_pass_the_gate_as_their_parity_says(exported):
    root, student, arts = exported
    fp32, fp16 = arts["fp32"], arts["fp16"]
    assert fp32["status"] == "ok" and fp32["path"].endswith("-ncnn-fp32.param") and fp32["parity"]["min_cosine"] > 0.99999
    assert fp16["status"] in ("ok", "parity_failed") and fp16["parity"]["passed"] == (fp16["status"] == "ok")
    weights = {p: (root / "export" / f"mobilenetv3_small_050-ncnn-{p}.bin").stat().st_size for p in ("fp32", "fp16")}
    assert weights["fp16"] < 0.6 * weights["fp32"]  # fp32 weights really are 4 bytes, fp16 2
    bundle = json.loads((root / "export" / "reference.json").read_text())["artifacts"]
    assert "mobilenetv3_small_050-ncnn-fp32.param" in bundle


def test_a_batch_runs_image_by_image_and_the_layout_does_not_matter(exported):
    root, student, arts = exported
    backend = load_backend(arts["fp32"]["path"], threads=1)
    x = np.random.default_rng(0).normal(size=(5, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = student(torch.from_numpy(x)).numpy()
    out = backend(x)
    assert out.shape == ref.shape and np.allclose(out, ref, atol=1e-4)
    channels_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # same values, NHWC memory
    assert not channels_last.flags["C_CONTIGUOUS"] and np.allclose(backend(channels_last), out, atol=1e-6)
    assert np.allclose(backend(x[:1]), out[:1], atol=1e-6)  # batch 1 and a batch of 5 agree


def test_a_failed_conversion_is_one_line(tmp_path, monkeypatch):
    import export.ncnn_export as ncnn_export

    real = subprocess.run
    monkeypatch.setattr(ncnn_export.subprocess, "run", lambda cmd, **kw: real(
        [cmd[0], str(tmp_path / "missing.onnx"), *cmd[2:]], **kw))
    colour_gallery(tmp_path, size=32)
    torch.manual_seed(0)
    save_student(tmp_path / "student.pt", create_student("mobilenetv3_small_050", img_size=32).eval(),
                 Preprocess.for_student(32), {})
    report = export_model(ExportConfig(model=str(tmp_path), formats=("ncnn",), parity_data=str(tmp_path / "gallery"),
                                       parity_size=8, out=str(tmp_path / "export"), workers=0, timing_s=0))
    (art,) = report["artifacts"]
    assert art["status"] == "export_failed" and art["error"].startswith("pnnx failed to convert")
    assert "\n" not in art["error"] and not list((tmp_path / "export").glob("*.param"))


def test_bench_measures_it(exported, tmp_path):
    from bench.runner import BenchConfig, run_bench

    root, _, arts = exported
    report = run_bench(BenchConfig(targets=[arts["fp32"]["path"]], batch_sizes=(1, 4), warmup_s=0.05, min_time_s=0.1,
                                   min_runs=3, rounds=1, out=str(tmp_path / "bench")))
    rows = [r for r in report["rows"] if r["backend"] == "ncnn"]
    assert [r["batch_size"] for r in rows] == [1, 4] and all(r["status"] == "ok" and r["p50_ms"] > 0 for r in rows)
    assert all(r["gate"] == "pass" for r in rows)
