"""bench --cross-check: benchmark_app's figures parsed in every unit it prints, and a real benchmark_app run on a
real IR beside bench's own timing (behaviour only; tiny time budgets)."""
import pytest
import torch

from bench import BenchConfig, run_bench
from bench.crosscheck import benchmark_app, command, cross_check, parse_output
from distill.checkpoint import save_student
from distill.core.preprocess import Preprocess
from distill.students import create_student
from export import ExportConfig, export_model
from tests.conftest import make_image

OUTPUT = """[Step 11/11] Dumping statistics report
[ INFO ] Count:            7886 iterations
[ INFO ] Latency:
[ INFO ]    Median:        260.59 us
[ INFO ]    Average:       1.25 ms
[ INFO ]    Min:           226.25 us
[ INFO ]    Max:           0.02 s
[ INFO ] Throughput:   2628.46 FPS
"""


def test_parse_output_converts_units_to_ms():
    found = parse_output(OUTPUT)
    assert found["median_ms"] == pytest.approx(0.26059)
    assert found["mean_ms"] == pytest.approx(1.25) and found["max_ms"] == pytest.approx(20.0)
    assert found["throughput"] == pytest.approx(2628.46)


def test_parse_output_refuses_a_failed_run():
    with pytest.raises(ValueError, match="Median"):
        parse_output("[ ERROR ] Model file not found\n")


def test_command_mirrors_the_bench_backend():
    cmd = command("benchmark_app", "m.xml", 8, 32, 2, 3)
    flags = dict(zip(cmd[1::2], cmd[2::2]))
    assert flags["-shape"] == "[8,3,32,32]" and flags["-nthreads"] == "2" and flags["-nstreams"] == "1"
    assert flags["-api"] == "sync" and flags["-infer_precision"] == "f32" and flags["-hint"] == "none"
    offline = dict(zip(*[iter(command("benchmark_app", "m.xml", 8, 32, 2, 3, offline=True)[1:])] * 2))
    assert offline["-hint"] == "throughput" and offline["-api"] == "async" and "-nstreams" not in offline


def test_cross_check_takes_medians_over_the_rounds_and_states_the_spread():
    rows = [{"backend": "openvino", "status": "ok", "img_size": 32, "artifact": "m.xml", "precision": "fp32",
             "batch_size": 1, "p50_ms": 0.30, "images_per_s": 3333.0},
            {"backend": "onnxruntime", "status": "ok", "img_size": 32, "artifact": "m.onnx", "precision": "fp32",
             "batch_size": 1, "p50_ms": 0.2, "images_per_s": 5000.0}]
    rounds = [{"m.xml|1": {"median_ms": ms, "throughput": 1e3 / ms, "command": "benchmark_app ..."}}
              for ms in (0.20, 0.25, 0.40)] + [{"m.xml|1": {"error": "benchmark_app did not finish"}}]
    (entry,) = cross_check(rows, rounds, {"m.xml|1": [0.28, 0.30, 0.35, 0.5]})  # the onnxruntime row is not OpenVINO's
    assert entry["median_ms"] == pytest.approx(0.25) and entry["rounds"] == 3  # the failed round left out
    assert entry["ratio_of_medians"] == pytest.approx(1.2) and entry["app_spread"] == pytest.approx(2.0)
    assert entry["ratio"] == pytest.approx(1.2)  # paired per round: 1.4, 1.2, 0.875 -> median 1.2
    assert entry["bench_spread"] == pytest.approx(0.5 / 0.28)
    (slow,) = cross_check(rows, rounds[:3], {"m.xml|1": [0.20, 0.25, 0.40]})  # both tools slow in the same round
    assert slow["ratio"] == pytest.approx(1.0)
    (failed,) = cross_check(rows, [{"m.xml|1": {"error": "no benchmark_app"}}], {})
    assert failed["error"] == "no benchmark_app" and "ratio" not in failed


@pytest.mark.openvino
@pytest.mark.skipif(benchmark_app() is None, reason="benchmark_app is not installed (it comes with openvino)")
def test_bench_cross_check_runs_benchmark_app_on_the_same_ir(tmp_path):
    for c, color in enumerate(((220, 30, 30), (30, 30, 220))):
        for i in range(6):
            make_image(tmp_path / "img" / f"c{c}" / f"{i}.png", size=(36, 36), color=color, seed=10 * c + i)
    torch.manual_seed(0)
    save_student(tmp_path / "run" / "student.pt", create_student("resnet10t", img_size=32).eval(),
                 Preprocess(input_size=32), {})
    export_model(ExportConfig(model=str(tmp_path / "run"), formats=("openvino",), precisions=("fp32",),
                              parity_data=str(tmp_path / "img"), parity_size=12, out=str(tmp_path / "run" / "export"),
                              workers=0))
    report = run_bench(BenchConfig(targets=[str(tmp_path / "run")], data=str(tmp_path / "img"), batch_sizes=(1, 2),
                                   warmup_s=0.05, min_time_s=0.1, min_runs=3, rounds=2, workers=0, threads=1,
                                   cross_check=True, out=str(tmp_path / "rep")))
    checks = report["cross_check"]
    assert [c["batch_size"] for c in checks] == [1, 2]  # the OpenVINO rows only, each batch size
    for c in checks:
        assert "error" not in c, c
        assert c["median_ms"] > 0 and c["throughput"] > 0 and c["ratio"] > 0
        assert c["rounds"] == 2 and c["app_spread"] >= 1 and c["bench_spread"] >= 1  # run in each round
        assert "-nthreads 1" in c["command"] and c["artifact"].endswith(".xml")
    (offline,) = report["cross_check_offline"]  # OpenVINO's offline scenario, once per IR
    assert "error" not in offline and offline["throughput"] > 0 and "-hint throughput" in offline["command"]
    assert offline["batch_size"] in (1, 2) and offline["bench_images_per_s"] > 0
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "benchmark_app median ms" in text and "THROUGHPUT hint" in text
