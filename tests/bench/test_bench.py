"""The benchmark end to end on a real exported student: reports written and parseable, a failing backend
reported and not fatal, the CLI's JSON contract. Tiny timing budgets: these check behaviour, not speed."""
import csv
import json

import pytest
import torch

from bench import BenchConfig, run_bench
from distill.checkpoint import save_student
from distill.core.errors import DataError, ModelError
from distill.core.preprocess import Preprocess
from distill.students import create_student
from export import ExportConfig, export_model
from tests.conftest import make_image, run_cli

FAST = dict(batch_sizes=(1, 4), warmup_s=0.05, min_time_s=0.1, min_runs=3, rounds=2, workers=0)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Two labelled classes of coloured-noise images (bank and queries)."""
    root = tmp_path_factory.mktemp("bench-images")
    for split, n in (("train", 8), ("val", 4)):
        for c, color in enumerate(((220, 30, 30), (30, 30, 220))):
            for i in range(n):
                make_image(root / split / f"class{c}" / f"{i}.png", size=(36, 36), color=color, seed=100 * c + i)
    return root


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, images):
    """A run folder: a small student checkpoint plus its ONNX fp32 export in run/export."""
    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("run")
    save_student(run / "student.pt", create_student("resnet10t", img_size=32).eval(), Preprocess(input_size=32),
                 {"data": str(images / "train")})
    report = export_model(ExportConfig(model=str(run), formats=("onnx",), precisions=("fp32",),
                                       parity_data=str(images / "train"), parity_size=16, out=str(run / "export"),
                                       workers=0))
    assert report["artifacts"][0]["status"] == "ok"
    return run


def test_run_folder_reports_every_backend_with_parity(run_dir, images, tmp_path):
    cfg = BenchConfig(targets=[str(run_dir)], train=str(images / "train"), val=str(images / "val"),
                      out=str(tmp_path / "rep"), **FAST)
    report = run_bench(cfg)
    rows = {(r["backend"], r["batch_size"]): r for r in report["rows"]}
    assert set(rows) == {("torch", 1), ("torch", 4), ("onnxruntime", 1), ("onnxruntime", 4)}
    for r in rows.values():
        assert r["status"] == "ok", r
        assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] and r["images_per_s"] > 0
        assert r["peak_rss_mb"] > 50 and r["size_mb"] > 1 and r["img_size"] == 32
        assert r["e2e_p50_ms"] is not None and r["rounds"] == 2
    ort = rows[("onnxruntime", 1)]
    assert ort["min_cosine"] > 0.9999 and ort["neighbour_overlap@10"] > 0.99
    assert abs(ort["knn_delta"]) < 1e-9 and 0 <= ort["knn_top1"] <= 1  # fp32 gives PyTorch's answers
    assert rows[("torch", 1)]["speedup_vs_torch"] == pytest.approx(1.0)
    assert report["student"]["flops_per_image"] > 1e6 and report["student"]["params"] > 1e6
    assert report["config"]["rounds"] == 2 and report["environment"]["threads"] >= 1
    load = report["environment"]["load_average"]
    assert load is None or (len(load["before"]) == 3 and len(load["after"]) == 3)
    assert all(v is None or v >= 0 for v in (load["others_before"], load["others_after"]))

    out = tmp_path / "rep"
    saved = json.loads((out / "report.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(report["rows"]))
    with open(out / "report.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 4 and {t["backend"] for t in table} == {"torch", "onnxruntime"}
    assert float(table[0]["p50_ms"]) > 0
    md = (out / "report.md").read_text()
    assert "| onnxruntime | fp32 | ✅ |" in md and "p50 ms (b1)" in md
    assert (out / "latency_vs_accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    from tools.bench_suite import render  # the docs page of `make bench`, from this real report
    page = render([{"student": "resnet10t", "img_size": 32, "trained": True, "report": report,
                    "export": {"artifacts": []}}], "python -m tools.bench_suite ...")
    assert "## resnet10t at 32x32 (trained" in page and "| onnxruntime | fp32 | ✅ |" in page
    assert "the compute floor" in page and "python -m tools.bench_suite ..." in page


def test_a_failing_backend_is_reported_and_the_run_goes_on(run_dir, images, tmp_path):
    good = next((run_dir / "export").glob("*.onnx"))
    broken = tmp_path / "broken-onnx-fp32.onnx"
    broken.write_bytes(good.read_bytes()[:5000])  # truncated: onnxruntime cannot load it
    report = run_bench(BenchConfig(targets=[str(good), str(broken)], data=str(images / "val"),
                                   out=str(tmp_path / "rep"), **FAST))
    by_artifact = {}
    for r in report["rows"]:
        by_artifact.setdefault(r["artifact"], []).append(r)
    assert all(r["status"] == "ok" for r in by_artifact[str(good.resolve())])
    bad = by_artifact[str(broken.resolve())]
    assert all(r["status"] == "error" and r["error"] for r in bad)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "❌" in md and "✅" in md


def test_targets_are_checked_before_any_work(tmp_path, run_dir):
    with pytest.raises(DataError, match="does not exist"):
        run_bench(BenchConfig(targets=[str(tmp_path / "nope.onnx")], out=str(tmp_path / "r")))
    failed = tmp_path / "m.onnx.failed"
    failed.write_bytes(b"x")
    with pytest.raises(ModelError, match="failed its parity check"):
        run_bench(BenchConfig(targets=[str(failed)], out=str(tmp_path / "r")))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="nothing to benchmark"):
        run_bench(BenchConfig(targets=[str(empty)], out=str(tmp_path / "r")))


def test_cli_prints_the_json_contract(run_dir, images, tmp_path):
    proc = run_cli("bench", str(run_dir), "--data", str(images / "val"), "--batch-sizes", "1", "--warmup-s", "0.05",
                   "--min-time-s", "0.1", "--min-runs", "3", "--rounds", "1", "--out", str(tmp_path / "rep"), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["report_dir"] == str(tmp_path / "rep")
    keys = {"backend", "precision", "batch_size", "img_size", "status", "p50_ms", "p90_ms", "p99_ms", "images_per_s",
            "peak_rss_mb", "size_mb", "knn_top1", "knn_delta", "min_cosine", "gate", "gate_min_cosine",
            "gate_overlap@10", "gate_knn", "gate_reason", "error", "variant"}
    assert [set(r) for r in result["rows"]] == [keys, keys]
    assert {r["backend"] for r in result["rows"]} == {"torch", "onnxruntime"}
    gates = {r["backend"]: r["gate"] for r in result["rows"]}  # the export's bundle, checked again here
    assert gates == {"torch": None, "onnxruntime": "pass"}


def test_cli_user_errors_are_one_line(tmp_path):
    proc = run_cli("bench", str(tmp_path / "missing"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("edgedistill: error:")
    proc = run_cli("bench", str(tmp_path), "--train", str(tmp_path))
    assert proc.returncode == 2 and "--train and --val go together" in proc.stderr


def test_the_plot_labels_every_point_in_a_legend(tmp_path, monkeypatch):
    """Close latencies used to print their labels on top of each other; each point now has a legend entry."""
    import matplotlib.axes

    from bench.report import plot

    seen = {}
    real_legend = matplotlib.axes.Axes.legend

    def legend(ax, *a, **kw):
        seen["labels"] = list(ax.get_legend_handles_labels()[1])
        seen["xscale"] = ax.get_xscale()
        return real_legend(ax, *a, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "legend", legend)
    rows = [{"status": "ok", "batch_size": 1, "backend": b, "precision": p, "p50_ms": ms, "knn_top1": None,
             "min_cosine": c} for b, p, ms, c in [("torch", "fp32", 5.9, 1.0), ("onnxruntime", "fp32", 0.44, 1.0),
                                                   ("openvino", "fp32", 0.46, 1.0), ("openvino", "int8", 0.43, 0.89)]]
    assert plot({"rows": rows}, tmp_path / "p.png") and (tmp_path / "p.png").stat().st_size > 1000
    assert seen["labels"] == ["torch fp32 (5.90 ms)", "onnxruntime fp32 (0.44 ms)", "openvino fp32 (0.46 ms)",
                              "openvino int8 (0.43 ms)"]
    assert seen["xscale"] == "log"  # 13x apart: a linear axis would crush the runtimes into one spot


def test_scenarios_single_stream_and_offline():
    from bench.report import scenarios, scenarios_table

    rows = [{"status": "ok", "artifact": "a.onnx", "backend": "onnxruntime", "precision": "fp32", "batch_size": bs,
             "p90_ms": p90, "images_per_s": ips} for bs, p90, ips in [(1, 0.5, 2000.0), (8, 1.8, 4400.0), (32, 7.9, 4050.0)]]
    rows.append({"status": "error", "artifact": "b.xml", "backend": "openvino", "precision": "int8", "batch_size": 1,
                 "p90_ms": None, "images_per_s": None})
    (s,) = scenarios({"rows": rows})  # failed artifacts have no scenario
    assert s["single_stream_p90_ms"] == 0.5 and s["offline_images_per_s"] == 4400.0 and s["offline_batch_size"] == 8
    assert "| onnxruntime | fp32 | 0.50 | 4400 | 8 |" in scenarios_table({"rows": rows})


def test_contention_is_judged_by_what_else_runs_now_not_by_the_trailing_load():
    """make demo's benchmark follows its own exports: a 1-minute load of 1.7 on 2 threads, nothing else running."""
    from bench.environment import contended, runnable_others

    trailing = {"before": [1.7, 1.6, 1.5], "after": [1.7, 1.6, 1.5]}
    assert contended(trailing, 2)  # without the instantaneous view (off Linux): the old rule
    assert not contended({**trailing, "others_before": 0.05, "others_after": 0.0}, 2)
    assert contended({**trailing, "others_before": 0.0, "others_after": 0.9}, 2)  # a job started meanwhile
    assert contended({"before": [0.1] * 3, "after": [0.2] * 3, "others_before": 1.0, "others_after": None}, 2)
    seen = runnable_others(samples=3, interval_s=0.0)
    assert seen is None or seen >= 0


def test_a_model_from_elsewhere_is_benchmarked_without_a_gate(tmp_path):
    """An ONNX file with a sidecar JSON (not an edgedistill export) never passed a gate: it is timed, with no
    verdict and no refusal; only exports need their reference bundle."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    torch.onnx.export(net, torch.zeros(1, 3, 16, 16), str(tmp_path / "m.onnx"), input_names=["input"],
                      output_names=["embedding"], dynamic_axes={"input": {0: "batch"}}, dynamo=False)
    (tmp_path / "m.json").write_text(json.dumps({"input_size": 16}))
    report = run_bench(BenchConfig(targets=[str(tmp_path / "m.onnx")], batch_sizes=(1,), warmup_s=0.05,
                                   min_time_s=0.1, min_runs=3, rounds=1, out=str(tmp_path / "r")))
    assert [(r["status"], r.get("gate")) for r in report["rows"]] == [("ok", None)]


def test_torch_variants_are_rows_beside_the_reference(run_dir, images, tmp_path):
    proc = run_cli("bench", str(run_dir / "student.pt"), "--data", str(images / "val"), "--torch", "eager,eager-bf16",
                   "--batch-sizes", "1,2", "--warmup-s", "0.05", "--min-time-s", "0.1", "--min-runs", "3",
                   "--rounds", "1", "--out", str(tmp_path / "rep"), "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout.strip().splitlines()[-1])["rows"]
    assert [(r["variant"], r["precision"], r["batch_size"]) for r in rows] == [
        (None, "fp32", 1), (None, "fp32", 2), ("eager-bf16", "bf16", 1), ("eager-bf16", "bf16", 2)]
    assert all(r["status"] == "ok" and r["p50_ms"] > 0 for r in rows)
    bf16 = rows[2]
    assert 0.99 < bf16["min_cosine"] < 1.0  # compared with the eager fp32 reference, image by image
    assert "| torch (eager) | bf16 | ✅" in (tmp_path / "rep" / "report.md").read_text()
    refused = run_cli("bench", str(run_dir), "--torch", "cudagraphs")
    assert refused.returncode == 2 and "needs --device cuda" in refused.stderr and "Traceback" not in refused.stderr
