"""The training-throughput benchmark runs every mode on real images and reports comparable rows."""
import pytest

from tools.bench_training import TrainBenchConfig, render_markdown, run_training_bench

pytestmark = [pytest.mark.testbed, pytest.mark.slow]


def test_every_mode_is_measured_in_one_run(cifar_small, testbed, tmp_path):
    cfg = TrainBenchConfig(data=str(cifar_small / "train"), teacher=str(testbed / "teachers" / "cifar_resnet56.torchscript.pt"),
                           batch_size=16, limit=80, steps=2, warmup=1, workers=0, device="cpu")
    report = run_training_bench(cfg, str(tmp_path / "training.json"))
    assert [r["mode"] for r in report["rows"]] == ["reference", "online", "cached"]
    assert all(r["images_per_s"] > 0 and not r["compiled"] for r in report["rows"])
    assert report["rows"][0]["vs_reference"] == 1.0 and report["cache_build_seconds"] > 0
    floor = report["floor"]
    assert floor["teacher_gflops"] > floor["student_gflops"] > 0 and floor["floor_images_per_s"] > 0
    text = render_markdown(report, "python -m tools.bench_training ...")
    assert "| cached | no |" in text and "Compute floor" in text
    assert (tmp_path / "training.json").is_file()
