"""The training-throughput benchmark runs every mode on real images and reports comparable rows."""
import pytest

from tools.bench_training import TrainBenchConfig, render_markdown, run_training_bench

pytestmark = [pytest.mark.testbed, pytest.mark.slow]


def test_every_mode_is_measured_in_one_run(cifar_small, testbed, tmp_path):
    cfg = TrainBenchConfig(data=str(cifar_small / "train"), teacher=str(testbed / "teachers" / "cifar_resnet56.torchscript.pt"),
                           batch_size=16, limit=80, steps=2, warmup=1, workers=0, device="cpu")
    report = run_training_bench(cfg, str(tmp_path / "training.json"))
    assert [r["mode"] for r in report["rows"]] == ["reference", "online", "cached", "cached"]
    # the reference style runs the student as the official code (NCHW); this project's steps in NHWC, and the
    # cached step once more in NCHW to show what the layout buys
    assert [r["layout"] for r in report["rows"]] == ["NCHW", "NHWC", "NHWC", "NCHW"]
    assert all(r["images_per_s"] > 0 and not r["compiled"] for r in report["rows"])
    assert report["rows"][0]["vs_reference"] == 1.0 and report["cache_build_seconds"] > 0
    floor = report["floor"]
    assert floor["teacher_gflops"] > floor["student_gflops"] > 0 and floor["floor_images_per_s"] > 0
    text = render_markdown(report, "python -m tools.bench_training ...")
    assert "| cached | NHWC | no |" in text and "| cached | NCHW | no |" in text and "without it (cached)" in text
    assert (tmp_path / "training.json").is_file()
