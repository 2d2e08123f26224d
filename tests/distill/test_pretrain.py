"""Self-supervised pretraining (the baseline), cached evaluation embeddings and the reproduction-table script."""
import json

import pytest

from distill.checkpoint import load_student
from tests.conftest import run_cli

pytestmark = [pytest.mark.testbed, pytest.mark.slow]


@pytest.mark.parametrize("method,model", [("mocov2", "alexnet"), ("simclr", "alexnet"), ("mocov2", "resnet18_cifar")])
def test_pretrain_runs_two_steps(cifar_small, tmp_path, method, model):
    out = tmp_path / method
    proc = run_cli("distill", "pretrain", "--data", str(cifar_small / "train"), "--val", str(cifar_small / "test"),
                   "--model", model, "--method", method, "--img-size", "32", "--batch-size", "16",
                   "--max-steps", "2", "--hidden-dim", "64", "--workers", "0", "--log-every", "1", "--out", str(out),
                   "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["steps"] == 2 and r["method"] == method and r["teacher"] is None and r["final_loss"] > 0
    assert 0.0 <= r["eval"]["knn_top1"] <= 1.0
    student = load_student(out)
    assert student.model.img_size == 32 and student.preprocess.input_size == 32 and student.model.name == model
    assert json.loads((out / "config.json").read_text())["augmentation"] == "mocov2"


def test_train_refuses_a_pretraining_method_without_a_teacher(cifar_small, tmp_path):
    from distill.config import TrainConfig
    from distill.core.errors import ConfigError

    with pytest.raises(ConfigError, match="distils a teacher"):
        TrainConfig(data=str(cifar_small / "train"), teacher=None, method="seed").validate()
    with pytest.raises(ConfigError, match="without a teacher"):
        TrainConfig(data=str(cifar_small / "train"), teacher=None, method="mocov2", teacher_center=True).validate()


def test_eval_reuses_cached_embeddings(cifar_small, resnet56_onnx, tmp_path):
    cache = tmp_path / "emb"
    args = ["eval", "--model", str(resnet56_onnx), "--train", str(cifar_small / "train"), "--val",
            str(cifar_small / "test"), "--cache", str(cache), "--workers", "0", "--json"]
    first = run_cli("distill", *args)
    assert first.returncode == 0, first.stderr
    files = sorted(cache.iterdir())
    assert len(files) == 2  # bank and queries, one file each
    stamps = [f.stat().st_mtime_ns for f in files]
    second = run_cli("distill", *args, "--protocol", "all")
    assert second.returncode == 0, second.stderr
    assert [f.stat().st_mtime_ns for f in sorted(cache.iterdir())] == stamps  # read, not rewritten
    a, b = (json.loads(p.stdout.strip().splitlines()[-1]) for p in (first, second))
    assert a["knn_top1"] == b["knn_top1"] and "linear_top1" in b and "cluster_acc" in b


def test_results_script_writes_the_table_and_reuses_finished_rows(cifar_small, testbed, tmp_path):
    rows = "teacher-cifar_resnet56,alexnet-seed-cifar_resnet56,alexnet-scratch-mocov2"
    args = ["tools.results", "--data", str(cifar_small / "train"), "--val", str(cifar_small / "test"),
            "--teachers", str(testbed / "teachers"), "--rows", rows, "--max-steps", "1", "--batch-size", "16",
            "--train-limit", "40", "--workers", "0", "--out", str(tmp_path / "rt"), "--json",
            str(tmp_path / "results.json"), "--doc", str(tmp_path / "RESULTS.md")]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    table = json.loads((tmp_path / "results.json").read_text())
    assert [(r["student"], r["method"]) for r in table["rows"]] == [
        (None, "teacher"), ("alexnet", "scratch-mocov2"), ("alexnet", "seed")]  # the table's order
    for r in table["rows"]:
        assert {"teacher", "student", "method", "knn_top1", "nn_top1", "linear_top1", "cluster_acc", "images_seen",
                "seconds"} <= set(r)
    assert table["rows"][2]["images_seen"] == 16 and table["rows"][0]["images_seen"] == 0
    doc = (tmp_path / "RESULTS.md").read_text()
    assert "<!-- results-table:begin -->" in doc and "| cifar_resnet56 | alexnet | seed |" in doc
    stamp = (tmp_path / "rt" / "alexnet-seed-cifar_resnet56" / "row.json").stat().st_mtime_ns
    assert run_cli(*args).returncode == 0
    assert (tmp_path / "rt" / "alexnet-seed-cifar_resnet56" / "row.json").stat().st_mtime_ns == stamp
    bad = run_cli(*args[:-8], "--rows", "nonsense")
    assert bad.returncode == 2 and "unknown row" in bad.stderr
