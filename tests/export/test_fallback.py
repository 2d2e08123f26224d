"""int8 with float fallback (export.fallback): the search, the QDQ and FakeQuantize rewrites, and the exporter
turning an int8 that misses the gate into one that passes with the fewest activation quantizers in float."""
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from export.fallback import per_image_sqnr, search
from export.parity import compare
from tests.conftest import run_cli


def _gate_at(k_needed: int):
    """An evaluate() that passes once the first ``k_needed`` names are in float, recording what it was asked."""
    asked = []

    def evaluate(names):
        asked.append(len(names))
        good = len(names) >= k_needed
        ref = np.eye(12, 8, dtype=np.float32) + 0.1
        return compare(ref, ref if good else -ref, "int8")

    return evaluate, asked


def test_search_doubles_then_bisects_to_the_smallest_passing_k():
    ranked = [f"q{i}" for i in range(40)]
    evaluate, asked = _gate_at(5)
    result = search(ranked, evaluate, max_float=30, first=evaluate([]))
    assert result.passed and result.float_quantizers == ranked[:5] and result.total_quantizers == 40
    assert asked == [0, 1, 2, 4, 8, 6, 5]  # doubling until it passes, then bisection between 4 and 8
    assert [t["float"] for t in result.trials] == asked and result.trials[-1]["passed"]


def test_search_stops_at_the_cap_and_says_it_failed():
    ranked = [f"q{i}" for i in range(40)]
    evaluate, asked = _gate_at(25)
    result = search(ranked, evaluate, max_float=10, first=evaluate([]))
    assert not result.passed and len(result.float_quantizers) == 10 and max(asked) == 10


def test_search_does_nothing_when_int8_already_passes():
    evaluate, asked = _gate_at(0)
    result = search(["a", "b"], evaluate, max_float=2, first=evaluate([]))
    assert result.passed and result.float_quantizers == [] and asked == [0]


def test_fill_gaps_adds_single_int8_islands_between_float_ones():
    from export.fallback import fill_gaps

    order = list("abcdefgh")
    assert fill_gaps(order, ["b", "d", "g"]) == ["c"]  # e, f: a gap of two stays int8
    assert fill_gaps(order, ["b", "d", "g"], gap=2) == ["c", "e", "f"]
    assert fill_gaps(order, ["g", "b"]) == [] and fill_gaps(order, []) == []
    assert fill_gaps(order, ["a", "c", "e"]) == ["b", "d"]


def test_per_image_sqnr_by_hand():
    x = np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 0.0]])
    xq = np.array([[3.0, 3.0], [1.0, 0.0], [0.0, 0.0]])
    db = per_image_sqnr(x, xq)
    assert db[0] == pytest.approx(10 * np.log10(25 / 1)) and db[1] == np.inf and db[2] == np.inf
    assert per_image_sqnr(np.zeros((1, 2)), np.ones((1, 2)))[0] == -np.inf




@pytest.fixture(scope="module")
def qdq_mobilenet(cifar_small, tmp_path_factory):
    """An untrained MobileNetV3 at 32 px: fp32 ONNX, its int8 QDQ, calibration images and PyTorch's outputs."""
    import torch

    from export.images import load_images
    from export.onnx_export import BatchSpec, to_int8, torch_to_onnx
    from export.sources import load_source

    out = tmp_path_factory.mktemp("qdq")
    with pytest.warns(UserWarning, match="UNTRAINED"):
        src = load_source("student:mobilenetv3_large_100", 32)
    x = load_images(cifar_small / "train", src.preprocess, 40)[0]
    torch_to_onnx(src.model, 32, out / "fp32.onnx", BatchSpec())
    to_int8(out / "fp32.onnx", out / "int8.onnx", x)
    with torch.no_grad():
        ref = src.model(torch.from_numpy(x)).numpy()
    return onnx.load(str(out / "int8.onnx")), x, ref, out / "fp32.onnx"


@pytest.mark.testbed
@pytest.mark.slow
def test_qdq_rewrite_keeps_the_graph_and_moves_towards_float(qdq_mobilenet):
    from export.qdq import QDQGraph

    model, x, ref, _ = qdq_mobilenet
    graph = QDQGraph(model)
    names = graph.quantizers
    assert len(names) > 50 and "embedding_QuantizeLinear_Input" in names  # the output is quantized too
    same = graph.runner(graph.with_float([]))(x)
    np.testing.assert_array_equal(same, graph.runner(model)(x))
    all_float = graph.with_float(names)
    onnx.checker.check_model(all_float, full_check=True)
    assert [o.name for o in all_float.graph.output] == ["embedding"]
    assert not [n for n in all_float.graph.node if n.op_type == "QuantizeLinear"]
    # with every activation in float only the int8 weights remain: close to PyTorch, unlike full int8
    weights_only = compare(ref, graph.runner(all_float)(x), "int8")
    full = compare(ref, graph.runner(model)(x), "int8")
    assert weights_only.mean_cosine > 0.99 and weights_only.mean_cosine > full.mean_cosine
    ranked = graph.rank(x, batch=16)
    assert sorted(n for n, _ in ranked) == sorted(names)
    assert [s for _, s in ranked] == sorted(s for _, s in ranked)


@pytest.mark.testbed
@pytest.mark.slow
def test_qdq_fake_quantize_matches_onnxruntime(qdq_mobilenet):
    """The ranking's numpy Q/DQ equals onnxruntime's on a real tensor of the graph."""
    from export.qdq import QDQGraph, fake_quantize

    model, x, _, _ = qdq_mobilenet
    graph = QDQGraph(model)
    t = graph.quantizers[5]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend([onnx.ValueInfoProto(name=t), onnx.ValueInfoProto(name=graph.pairs[t][1])])
    from export.onnx_io import cpu_session

    _, value, dq = cpu_session(probe.SerializeToString()).run(None, {"input": x[:8]})
    np.testing.assert_allclose(fake_quantize(value, *graph.params[t]), dq, rtol=0, atol=1e-6)


@pytest.mark.testbed
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", pytest.param("openvino", marks=pytest.mark.openvino)])
def test_export_falls_back_to_float_where_int8_misses_the_gate(cifar_small, tmp_path, fmt):
    """The untrained MobileNetV3 that fails int8 (test_export.py) passes with some quantizers left in float."""
    proc = run_cli("export", "--model", "student:mobilenetv3_large_100", "--img-size", "32", "--format", fmt,
                   "--precision", "int8", "--calib", str(cifar_small / "train"), "--calib-size", "40",
                   "--parity-size", "40", "--out", str(tmp_path), "--json", "--workers", "0")
    assert proc.returncode == 0, proc.stderr
    (art,) = json.loads(proc.stdout.strip().splitlines()[-1])["artifacts"]
    kept, total = art["float_quantizers"]
    assert art["status"] == "ok" and 0 < kept <= 0.75 * total
    assert "activation quantizers to keep in float" in proc.stderr and "fallback target" in proc.stderr
    assert ("slower than fp32" in proc.stderr) == (kept > 0.25 * total)
    from export.metadata import read_metadata

    options = read_metadata(art["path"])["options"]
    fallback = options["fallback"]
    assert fallback["passed"] and len(fallback["float_quantizers"]) == kept
    regions = fallback["regions"]  # one-quantizer int8 islands filled, kept only when measured faster and passing
    if regions:
        assert regions["added"] > 0 and regions["p50_ms_before"] > 0
        assert regions["kept"] == (regions["passed"] and regions["p50_ms_after"] < regions["p50_ms_before"])
    # the calibrators (onnxruntime's, NNCF's range estimators) tried in turn before any fallback: none met the
    # target here, and the fallback started from the one with the best worst image
    from export.onnx_export import CALIBRATORS

    tried = options["calibration"]["tried"]
    assert [t["method"] for t in tried] == list(CALIBRATORS) and not any(t["passed"] for t in tried)
    assert options["calibration"]["method"] == max(tried, key=lambda t: t["min_cosine"])["method"]
    assert not fallback["trials"][0]["passed"] and fallback["trials"][-1]["passed"] is not None
    # the ranking the search used, kept for the user: <artifact>.sensitivity.csv, worst first
    import csv

    name = Path(art["path"]).name.split(".")[0]
    with open(tmp_path / f"{name}.sensitivity.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == total and [int(r["rank"]) for r in rows] == list(range(1, total + 1))
    scores = [float(r["sqnr_db_p10"]) for r in rows]
    assert scores == sorted(scores) and sum(int(r["kept_in_float"]) for r in rows) == kept
    assert art["latency_ms"] > 0


@pytest.mark.testbed
@pytest.mark.slow
@pytest.mark.openvino
def test_openvino_fake_quantize_rewrite(cifar_small, qdq_mobilenet, tmp_path):
    import nncf
    import openvino as ov

    from export.openvino_export import FakeQuantizeGraph, nncf_options

    _, x, ref, _ = qdq_mobilenet
    fp32 = tmp_path / "fp32.onnx"
    from export.onnx_export import BatchSpec, torch_to_onnx
    from export.sources import load_source

    with pytest.warns(UserWarning, match="UNTRAINED"):
        torch_to_onnx(load_source("student:mobilenetv3_large_100", 32).model, 32, fp32, BatchSpec())
    preset, advanced = nncf_options(nncf)
    quantized = nncf.quantize(ov.convert_model(str(fp32)), nncf.Dataset([x[i:i + 1] for i in range(len(x))]),
                              subset_size=len(x), preset=preset, advanced_parameters=advanced)
    graph = FakeQuantizeGraph(quantized)
    names = graph.quantizers
    assert len(names) > 30
    all_float = graph.with_float(names)
    assert not [op for op in all_float.get_ordered_ops() if op.get_type_name() == "FakeQuantize"]
    assert len(FakeQuantizeGraph(quantized).quantizers) == len(names)  # the rewrite worked on a copy
    weights_only = compare(ref, graph.runner(all_float)(x), "int8")
    assert weights_only.mean_cosine > 0.99
    ranked = graph.rank(x, batch=16)
    assert sorted(n for n, _ in ranked) == sorted(names)


@pytest.mark.testbed
@pytest.mark.slow
def test_symmetric_qdq_for_tensorrt_keeps_its_form_after_the_fallback(qdq_mobilenet, tmp_path):
    """TensorRT's explicit int8 input (S8S8, zero points 0) after some quantizers are left in float: still a
    valid graph whose remaining quantizers are symmetric int8, and closer to PyTorch than before."""
    from onnx import numpy_helper

    from export.onnx_export import to_int8
    from export.qdq import QDQGraph

    _, x, ref, fp32 = qdq_mobilenet
    to_int8(fp32, tmp_path / "sym.onnx", x, symmetric_activations=True)
    graph = QDQGraph(onnx.load(str(tmp_path / "sym.onnx")))
    worst = [name for name, _ in graph.rank(x, batch=16)][: len(graph.quantizers) // 2]
    mixed = graph.with_float(worst)
    onnx.checker.check_model(mixed, full_check=True)
    inits = {t.name: numpy_helper.to_array(t) for t in mixed.graph.initializer}
    zero_points = [inits[n.input[2]] for n in mixed.graph.node if n.op_type == "QuantizeLinear"]
    assert len(zero_points) == len(graph.quantizers) - len(worst)
    assert all(z.dtype == np.int8 and not z.any() for z in zero_points)
    before = compare(ref, graph.runner(graph.model)(x), "int8")
    after = compare(ref, graph.runner(mixed)(x), "int8")
    assert after.mean_cosine > before.mean_cosine
