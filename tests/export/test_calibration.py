"""onnxruntime's calibrators behind --calibration: each quantises a real graph on a calibration set whose size
is not a multiple of the batch (the histogram calibrators failed on a short last batch), and a static-batch graph
gets full batches only."""
import numpy as np
import onnx
import pytest
import torch

from export.onnx_export import CALIBRATORS, ArrayReader, BatchSpec, _even_batch, to_int8, torch_to_onnx
from export.qdq import QDQGraph


def _small_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.Conv2d(8, 16, 3, stride=2), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()


@pytest.mark.parametrize("method", CALIBRATORS)
@pytest.mark.parametrize("batch", [BatchSpec(), BatchSpec(static=4)])
def test_every_calibrator_quantises_an_uneven_calibration_set(tmp_path, method, batch):
    src = torch_to_onnx(_small_net(), 16, tmp_path / "f.onnx", batch)
    calib = np.random.default_rng(0).random((13, 3, 16, 16), dtype=np.float32)
    dst = to_int8(src, tmp_path / "q.onnx", calib, batch=batch, method=method)
    graph = QDQGraph(onnx.load(str(dst)))
    assert len(graph.quantizers) >= 3  # activations quantised
    x = calib[:4]
    out = graph.runner(graph.model)(x)
    ref = _small_net()(torch.from_numpy(x)).detach().numpy()
    cos = (out * ref).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.95


def test_calibration_batches():
    assert _even_batch(300, "minmax") == 16 and _even_batch(300, "percentile") == 15
    assert _even_batch(13, "entropy") == 13 and _even_batch(17, "entropy") == 1
    reader = ArrayReader(np.arange(10, dtype=np.float32).reshape(10, 1), 4, pad=True)
    sizes = [len(b["input"]) for b in iter(lambda: reader.get_next(), None)]
    assert sizes == [4, 4, 4]
    reader.rewind()
    last = [reader.get_next() for _ in range(3)][-1]["input"]
    assert last[:, 0].tolist() == [8, 9, 9, 9]


class _Context:
    """What export.onnx_export.calibrate reads from the exporter: its config, calibration images, batch spec and
    the judge (here: worst-image cosine to the float network, at a target of 0.999)."""

    def __init__(self, calibration: str, images: np.ndarray, reference: np.ndarray):
        from types import SimpleNamespace

        self.cfg = SimpleNamespace(calibration=calibration, per_channel=False, exclude_nodes=())
        self.batch = BatchSpec()
        self._x, self._ref = images, reference

    def calibration(self):
        return self._x

    def judge_int8(self, runner):
        from export.parity import compare
        from export.tolerances import FALLBACK_TARGET

        return compare(self._ref, runner(self._x), "int8", tolerance=FALLBACK_TARGET)


def test_auto_skips_a_calibrator_that_fails_and_records_why(tmp_path, monkeypatch):
    import export.onnx_export as ox
    from export.errors import ExportError
    from export.onnx_export import calibrate

    src = torch_to_onnx(_small_net(), 16, tmp_path / "f.onnx", BatchSpec())
    x = np.random.default_rng(0).random((12, 3, 16, 16), dtype=np.float32)
    ref = _small_net()(torch.from_numpy(x)).detach().numpy()
    real = ox.to_int8

    def flaky(*a, method="minmax", **kw):  # onnxruntime's histogram over a degenerate range, as seen on EfficientNet-B0
        if method != "entropy":
            raise ExportError("int8 quantisation failed: Too many bins for data range")
        return real(*a, method=method, **kw)

    monkeypatch.setattr(ox, "to_int8", flaky)
    record = calibrate(_Context("auto", x, ref), src, tmp_path / "q.onnx", tmp_path)
    assert record["method"] == "entropy" and (tmp_path / "q.onnx").is_file()
    assert [t["method"] for t in record["tried"]] == ["minmax", "percentile", "entropy"]
    assert "Too many bins" in record["tried"][0]["error"] and "min_cosine" in record["tried"][2]
    monkeypatch.setattr(ox, "to_int8", lambda *a, **kw: (_ for _ in ()).throw(ExportError("every one fails")))
    with pytest.raises(ExportError, match="every one fails"):
        calibrate(_Context("auto", x, ref), src, tmp_path / "q2.onnx", tmp_path)


def _result(min_cos: float, passed: bool):
    from export.parity import compare

    ref = np.eye(4, 3, dtype=np.float32) + 1.0
    got = compare(ref, ref, "int8")
    got.min_cosine, got.passed = min_cos, passed
    return got


def test_choose_calibration_stops_at_the_first_pass_else_keeps_the_best():
    from export.calibration import choose_calibration

    scores = {"minmax": _result(0.5, False), "percentile": _result(0.9, True), "entropy": _result(0.99, True)}
    asked = []
    chosen, record = choose_calibration(list(scores), lambda m: asked.append(m) or m, lambda c: scores[c])
    assert chosen == "percentile" and asked == ["minmax", "percentile"]  # entropy never built
    scores = {"minmax": _result(0.5, False), "percentile": _result(0.8, False), "entropy": _result(0.6, False)}
    chosen, record = choose_calibration(list(scores), lambda m: m, lambda c: scores[c])
    assert chosen == "percentile" and [t["min_cosine"] for t in record["tried"]] == [0.5, 0.8, 0.6]
    judged = []
    chosen, record = choose_calibration(["minmax"], lambda m: m, lambda c: judged.append(c))
    assert chosen == "minmax" and record == {"method": "minmax", "tried": []} and not judged
