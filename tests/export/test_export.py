"""Export round trips per format and precision, the gate catching a broken artifact, missing runtimes."""
import json

import numpy as np
import onnx
import pytest

import export.onnx_export as onnx_export_mod
from distill.core.errors import MissingDependencyError, ModelError
from export import ExportConfig, export_model, load_backend
from export.formats import FORMATS
from export.metadata import read_metadata
from export.tolerances import TOLERANCES
from tests.conftest import run_cli

pytestmark = [pytest.mark.testbed, pytest.mark.slow]

ROUND_TRIPS = [("onnx", "fp32"), ("onnx", "fp16"), ("onnx", "int8"),
               pytest.param("openvino", "fp32", marks=pytest.mark.openvino),
               pytest.param("openvino", "fp16", marks=pytest.mark.openvino),
               pytest.param("openvino", "int8", marks=pytest.mark.openvino),
               pytest.param("tensorrt", "fp32", marks=pytest.mark.tensorrt),
               pytest.param("tensorrt", "fp16", marks=pytest.mark.tensorrt),
               pytest.param("tensorrt", "int8", marks=pytest.mark.tensorrt)]


def _export(ckpt, out, formats, precisions, **kw):
    return export_model(ExportConfig(model=str(ckpt), formats=formats, precisions=precisions, calib_size=60,
                                     parity_size=60, out=str(out), workers=0, **kw))


@pytest.mark.parametrize("fmt,precision", ROUND_TRIPS)
def test_round_trip(student_ckpt, cifar_small, tmp_path, fmt, precision):
    report = _export(student_ckpt, tmp_path, (fmt,), (precision,))
    (art,) = report["artifacts"]
    assert art["status"] == "ok", art
    assert report["parity_images"]["kind"] == "real" and report["parity_images"]["count"] == 40
    meta = read_metadata(art["path"])
    assert meta["precision"] == precision and meta["preprocess"]["input_size"] == 32 and meta["status"] == "ok"
    assert len(meta["source"]["sha256"]) == 64 and meta["batch"]["dynamic"] and meta["embedding_dim"] == 512
    gate = TOLERANCES[precision].min_cosine
    assert meta["parity"]["min_cosine"] >= gate and "onnxruntime" in meta["versions"]
    backend = load_backend(art["path"])
    images = sorted((cifar_small / "test").rglob("*.jpg"))[:5]
    emb = backend.embed_images(images)  # the artifact's own preprocessing, on image files
    reference = load_backend(student_ckpt).embed_images(images)
    cos = (emb * reference).sum(1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(reference, axis=1))
    assert emb.shape == (5, 512) and emb.dtype == np.float32 and cos.min() > gate - 0.02  # 5 other images than the gate saw
    assert json.loads((tmp_path / "export.json").read_text())["artifacts"][0]["status"] == "ok"


def test_a_broken_artifact_is_caught_and_kept_as_failed(student_ckpt, tmp_path, monkeypatch):
    real_to_fp16 = onnx_export_mod.to_fp16

    def broken_fp16(src, dst):
        real_to_fp16(src, dst)
        model = onnx.load(str(dst))
        conv = next(i for i in model.graph.initializer if len(i.dims) == 4)  # damage the first conv's weights
        w = onnx.numpy_helper.to_array(conv)
        conv.CopyFrom(onnx.numpy_helper.from_array(-w, conv.name))
        onnx.save(model, str(dst))
        return dst

    monkeypatch.setattr(onnx_export_mod, "to_fp16", broken_fp16)
    report = _export(student_ckpt, tmp_path, ("onnx",), ("fp32", "fp16"))
    by_precision = {a["precision"]: a for a in report["artifacts"]}
    assert by_precision["fp32"]["status"] == "ok"
    bad = by_precision["fp16"]
    assert bad["status"] == "parity_failed" and "worst image" in bad["error"]
    assert bad["path"].endswith(".onnx.failed") and not (tmp_path / "resnet10t-onnx-fp16.onnx").exists()
    with pytest.raises(ModelError, match="failed its parity check"):
        load_backend(bad["path"])


def test_cli_exits_non_zero_on_parity_failure_and_prints_json(cifar_small, tmp_path):
    # A real failure, deterministic: post-training int8 of an untrained MobileNetV3 (seed-0 weights) at 32 px
    # keeps a worst-image cosine near 0.1 on real images (measured), far below the int8 gate, when no layer may
    # fall back to float (tests/export/test_fallback.py has the same export with the fallback on).
    proc = run_cli("export", "--model", "student:mobilenetv3_large_100", "--img-size", "32", "--format", "onnx",
                   "--precision", "int8", "--int8-fallback", "0", "--calib", str(cifar_small / "train"), "--calib-size", "40",
                   "--parity-size", "40", "--out", str(tmp_path), "--json", "--workers", "0")
    *_, table, error = proc.stdout.strip().splitlines()  # the report, then the failure as a JSON object
    (art,) = json.loads(table)["artifacts"]
    assert proc.returncode == 3 and art["status"] == "parity_failed", art
    assert json.loads(error) == {"error": json.loads(error)["error"], "exit_code": 3}
    assert art["parity"]["min_cosine"] < TOLERANCES["int8"].min_cosine and art["path"].endswith(".onnx.failed")
    assert proc.stderr.strip().splitlines()[-1].startswith("edgedistill: error: parity check failed")


def test_format_all_goes_on_when_one_format_fails(student_ckpt, tmp_path, monkeypatch):
    def exploding(*args, **kwargs):
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(onnx_export_mod, "to_int8", exploding)
    # every format but ExecuTorch, whose 30-60 s lowering tests/export/test_executorch_format.py covers
    report = _export(student_ckpt, tmp_path, tuple(f for f in FORMATS if f != "executorch"), ("fp32", "int8"))
    status = {(a["format"], a["precision"]): a for a in report["artifacts"]}
    assert status[("onnx", "fp32")]["status"] == "ok"
    assert status[("onnx", "int8")]["status"] == "export_failed"
    assert "converter crashed" in status[("onnx", "int8")]["error"]
    trt = status[("tensorrt", "fp32")]
    if not trt["available"]:
        assert trt["status"] == "export_failed" and "edgedistill[tensorrt]" in trt["error"]


def test_missing_runtime_names_the_extra(student_ckpt, tmp_path, monkeypatch):
    import importlib.util
    import sys

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real_find_spec(name, *a))
    assert "pip install 'edgedistill[openvino]'" in FORMATS["openvino"].missing()
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now raises ImportError
    xml = tmp_path / "m.xml"
    xml.write_text("<net/>")
    with pytest.raises(MissingDependencyError, match=r"pip install 'edgedistill\[openvino\]'"):
        load_backend(xml)


def test_tensorrt_request_without_tensorrt_is_a_one_line_error(student_ckpt, tmp_path):
    if FORMATS["tensorrt"].missing() is None:
        pytest.skip("TensorRT and a GPU are present")
    proc = run_cli("export", "--model", str(student_ckpt), "--format", "tensorrt", "--out", str(tmp_path),
                   "--parity-size", "16", "--workers", "0")
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()[-1]
    assert err.startswith("edgedistill: error: could not export tensorrt fp32")
    assert "edgedistill[tensorrt]" in err or "CUDA" in err
    assert "Traceback" not in proc.stderr


def test_random_parity_images_are_loudly_warned(tmp_path):
    with pytest.warns(UserWarning, match="RANDOM NOISE"):
        report = export_model(ExportConfig(model="student:resnet10t", img_size=32, out=str(tmp_path), workers=0))
    assert report["parity_images"]["kind"] == "random" and report["artifacts"][0]["status"] == "ok"


@pytest.mark.openvino
def test_openvino_accuracy_control_runs_with_labelled_images(student_ckpt, tmp_path):
    """--max-knn-drop: NNCF's quantize_with_accuracy_control with leave-one-out kNN on the labelled parity images."""
    report = _export(student_ckpt, tmp_path, ("openvino",), ("int8",), max_knn_drop=0.05)
    (art,) = report["artifacts"]
    assert art["status"] in ("ok", "parity_failed"), art["error"]  # built; the gate judges it as any other int8
    options = read_metadata(art["path"])["options"]
    assert options["max_knn_drop"] == 0.05 and options["preset"] == "mixed"
