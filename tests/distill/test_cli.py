"""The command line: entry points, JSON output, and one-line errors with a non-zero exit."""
import json

import pytest

from tests.conftest import make_image, run_cli


def test_edgedistill_lists_its_commands():
    proc = run_cli("distill", "--help")
    assert proc.returncode == 0
    assert "train" in proc.stdout and "eval" in proc.stdout


def _assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    err = [l for l in proc.stderr.splitlines() if l.startswith("edgedistill: error:")]
    assert len(err) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in err[0]


def test_empty_data_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = run_cli("distill", "train", "--data", str(tmp_path / "empty"), "--teacher", "timm:resnet10t")
    _assert_one_line_error(proc, "no images found")


def test_unknown_student(tmp_path, synthetic_folder):
    proc = run_cli("distill", "train", "--data", str(synthetic_folder), "--teacher", "timm:resnet10t",
                   "--teacher-input-size", "32", "--student", "mobilenet_v99", env={"HF_HUB_OFFLINE": "1"})
    _assert_one_line_error(proc, "--teacher-weights")  # the teacher fails first: no pretrained weights offline


def test_unknown_student_with_a_usable_teacher(tmp_path, synthetic_folder):
    import timm
    import torch

    torch.save(timm.create_model("resnet10t", num_classes=0).state_dict(), tmp_path / "t.pth")
    proc = run_cli("distill", "train", "--data", str(synthetic_folder), "--teacher", "timm:resnet10t",
                   "--teacher-weights", str(tmp_path / "t.pth"), "--teacher-input-size", "32",
                   "--student", "mobilenet_v99", "--out", str(tmp_path / "run"))
    _assert_one_line_error(proc, "unknown student 'mobilenet_v99'", "alexnet, efficientnet_b0, mobilenetv3_large_100")


def test_wrong_checkpoint_for_eval(tmp_path, synthetic_folder):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"garbage")
    proc = run_cli("distill", "eval", "--model", str(bad), "--train", str(synthetic_folder), "--val", str(synthetic_folder))
    _assert_one_line_error(proc, "--teacher-arch")


@pytest.mark.testbed
def test_eval_json_is_the_last_stdout_line(cifar_small, resnet56_onnx):
    proc = run_cli("distill", "eval", "--model", str(resnet56_onnx), "--train", str(cifar_small / "train"),
                   "--val", str(cifar_small / "test"), "--json", "--workers", "0")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["protocol"] == "knn" and result["num_train"] == 80 and result["num_val"] == 40
    assert 0.3 < result["knn_top1"] <= 1.0 and set(result) >= {"knn_top5", "nn_top1", "model"}


@pytest.mark.testbed
def test_eval_all_protocols_on_the_teacher(cifar_small, resnet56_onnx):
    proc = run_cli("distill", "eval", "--model", str(resnet56_onnx), "--train", str(cifar_small / "train"),
                   "--val", str(cifar_small / "test"), "--protocol", "all", "--json", "--workers", "0")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["protocol"] == "all" and result["linear_recipe"]["epochs"] == 40 and result["clusters"] == 10
    assert 0.3 < result["linear_top1"] <= 1.0 and 0.2 < result["cluster_acc"] <= 1.0  # a supervised teacher


def test_corrupt_only_folder_for_eval_is_an_error(tmp_path, synthetic_folder):
    broken = tmp_path / "broken" / "cls"
    broken.mkdir(parents=True)
    (broken / "x.jpg").write_bytes(b"not a jpeg")
    make_image(tmp_path / "t.png")
    proc = run_cli("distill", "eval", "--model", "timm:resnet10t", "--train", str(tmp_path / "broken"),
                   "--val", str(tmp_path / "broken"), "--model-input-size", "32")
    _assert_one_line_error(proc)


def test_helper_scripts_turn_user_errors_into_one_line(capsys, tmp_path):
    """The ``python -m`` helpers (tools.bench_suite, tools.sweep, ...) answer bad input as the commands do."""
    from distill.core.cli import script
    from distill.core.errors import DataError
    from tools.bench_suite import main as suite_main

    @script("demo.tool")
    def failing(argv):
        raise DataError("the folder 'x' is empty; point --data at a folder of images")

    assert failing([]) == DataError.exit_code
    assert capsys.readouterr().err.strip() == "demo.tool: error: the folder 'x' is empty; point --data at a folder of images"
    code = suite_main(["--parity-only", "--students", "alexnet", "--sizes", "32",
                       "--trained", f"alexnet={tmp_path / 'missing'}", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("tools.bench_suite: error: ") and "Traceback" not in "\n".join(err)


def test_unknown_compile_mode_lists_the_valid_ones(tmp_path, synthetic_folder):
    proc = run_cli("distill", "train", "--data", str(synthetic_folder), "--teacher", "timm:resnet10t",
                   "--compile", "--compile-mode", "fastest", "--out", str(tmp_path / "run"))
    _assert_one_line_error(proc, "unknown --compile-mode 'fastest'", "default, reduce-overhead, max-autotune")
    assert not (tmp_path / "run").exists()
