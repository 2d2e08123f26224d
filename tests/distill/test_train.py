"""Training on real test-bed images: every method runs, checkpoints resume exactly, the CLI speaks JSON."""
import json

import pytest
import torch

from distill.config import TrainConfig
from distill.core.cli import main
from distill.core.errors import CheckpointError
from distill.trainer import Trainer

pytestmark = [pytest.mark.testbed, pytest.mark.slow]


def _cfg(data, teacher, out, **kw):
    base = dict(data=str(data / "train"), teacher=str(teacher), out=str(out), student="mobilenetv3_large_100",
                batch_size=16, epochs=1, queue_size=64, hidden_dim=64, workers=0, log_every=1, in_memory="on")
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("method", ["seed", "compress", "compress-1q", "disco", "regress"])
def test_two_steps_of_each_method_on_real_images(cifar_small, resnet56_onnx, tmp_path, capsys, method):
    out = tmp_path / "run"
    code = main(["train", "--data", str(cifar_small / "train"), "--val", str(cifar_small / "test"),
                 "--teacher", str(resnet56_onnx), "--method", method, "--batch-size", "16", "--max-steps", "2",
                 *(["--queue-size", "64"] if method != "regress" else []), "--hidden-dim", "64", "--workers", "0",
                 "--log-every", "1", "--out", str(out), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["steps"] == 2 and result["images_seen"] == 32 and result["method"] == method
    assert 0.0 <= result["eval"]["knn_top1"] <= 1.0 and result["eval"]["num_val"] == 40
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [1, 2] and all(l["images_per_s"] > 0 for l in lines)
    assert {"student.pt", "checkpoint.pt", "config.json", "summary.json", "eval.json"} <= {p.name for p in out.iterdir()}
    saved = json.loads((out / "config.json").read_text())
    assert saved["method"] == method and saved["img_size"] == 32 and saved["lr"] == pytest.approx(0.05 * 16 / 256)
    head = torch.load(out / "student.pt", weights_only=True).get("head")  # kept for export --embedding head
    if saved["head"] == "none":
        assert head is None
    else:
        assert head["kind"] == saved["head"] and head["out_dim"] == saved["embed_dim"] and head["state_dict"]


def test_a_killed_run_resumes_to_the_same_weights(cifar_small, resnet56_onnx, tmp_path, monkeypatch):
    straight = Trainer(_cfg(cifar_small, resnet56_onnx, tmp_path / "a", epochs=2, method="compress"))
    straight.fit()

    cfg = _cfg(cifar_small, resnet56_onnx, tmp_path / "b", epochs=2, method="compress")
    interrupted = Trainer(cfg)
    real_step = interrupted.train_step

    def crash_in_epoch_two(images, indices=None):
        if interrupted.step == 7:  # epoch 1 ended (and was checkpointed) at step 5
            raise RuntimeError("simulated crash")
        return real_step(images, indices)

    monkeypatch.setattr(interrupted, "train_step", crash_in_epoch_two)
    with pytest.raises(RuntimeError, match="simulated crash"):
        interrupted.fit()
    resumed = Trainer(_cfg(cifar_small, resnet56_onnx, tmp_path / "b", epochs=2, method="compress"), resume=True)
    assert resumed.step == 5 and resumed.epoch == 1
    resumed.fit()
    assert resumed.step == straight.step == 10
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name
    assert torch.equal(straight.loss.teacher_queue.data, resumed.loss.teacher_queue.data)


def test_an_existing_run_is_never_overwritten(cifar_small, resnet56_onnx, tmp_path):
    Trainer(_cfg(cifar_small, resnet56_onnx, tmp_path / "r", max_steps=1)).fit()
    before = (tmp_path / "r" / "student.pt").read_bytes()
    with pytest.raises(CheckpointError, match="--resume"):
        Trainer(_cfg(cifar_small, resnet56_onnx, tmp_path / "r", max_steps=1))
    with pytest.raises(CheckpointError, match="--student mobilenetv3_large_100 -> efficientnet_b0"):
        Trainer(_cfg(cifar_small, resnet56_onnx, tmp_path / "r", student="efficientnet_b0"), resume=True)
    assert (tmp_path / "r" / "student.pt").read_bytes() == before


def test_alexnet_and_efficientnet_train_at_32px(cifar_small, resnet56_onnx, tmp_path):
    for student in ("alexnet", "efficientnet_b0"):
        summary = Trainer(_cfg(cifar_small, resnet56_onnx, tmp_path / student, student=student, max_steps=1)).fit()
        assert summary["steps"] == 1 and summary["final_loss"] == summary["final_loss"]  # finite (not NaN)


@pytest.mark.parametrize("channels_last", [True, False])
def test_the_student_trains_in_nhwc_unless_asked_otherwise(cifar_small, testbed, tmp_path, channels_last):
    """NHWC on the CPU too (2.3x the NCHW cached step here, docs/BENCHMARKS.md): weights, momentum copy and the
    inputs the student sees; --no-channels-last keeps torch's default layout. The saved student loads either way."""
    teacher = testbed / "teachers" / "cifar_resnet56.torchscript.pt"
    trainer = Trainer(_cfg(cifar_small, teacher, tmp_path / "run", method="compress", max_steps=1,
                           channels_last=channels_last))
    convs = [m.weight for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d)]
    momentum = [m.weight for m in trainer.momentum.modules() if isinstance(m, torch.nn.Conv2d)]
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert all(w.is_contiguous(memory_format=layout) for w in convs + momentum if w.shape[-1] > 1)
    seen = []
    first = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
    first.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0].is_contiguous(memory_format=layout)))
    assert trainer.fit()["steps"] == 1 and seen and all(seen)
    from distill.checkpoint import load_student

    loaded = load_student(tmp_path / "run" / "student.pt")
    assert loaded.model(torch.zeros(2, 3, 32, 32)).shape[0] == 2


def test_a_compiled_student_trains_in_reduce_overhead_mode(cifar_small, resnet56_onnx, tmp_path):
    """--compile --compile-mode reduce-overhead (CUDA graphs on a GPU; on the CPU it compiles as 'default'):
    three steps of a small student, every logged loss finite, the resolved mode saved with the run."""
    out = tmp_path / "r"
    rc = main(["train", "--data", str(cifar_small / "train"), "--teacher", str(resnet56_onnx), "--student", "alexnet",
               "--img-size", "32", "--batch-size", "16", "--queue-size", "64", "--hidden-dim", "64", "--workers", "0",
               "--in-memory", "on", "--device", "cpu", "--max-steps", "3", "--log-every", "1", "--compile",
               "--compile-mode", "reduce-overhead", "--out", str(out)])
    assert rc == 0
    losses = [json.loads(l)["loss"] for l in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in l]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    assert json.loads((out / "config.json").read_text())["compile_mode"] == "reduce-overhead"
