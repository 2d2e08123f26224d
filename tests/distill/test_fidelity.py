"""The methods as the official code runs them: no active dropout, momentum encoders in eval mode except
BatchNorm, MoCo's student on the query view only, the config resolved without writing into the user's, and
the in-training kNN curve."""
import json

import pytest
import torch
from torch import nn

from distill.config import TrainConfig, resolve_config
from distill.momentum import MomentumEncoder
from distill.students import create_student


def test_alexnet_student_has_no_active_dropout_while_training():
    torch.manual_seed(0)
    student = create_student("alexnet", img_size=64).train()
    assert not any(isinstance(m, nn.modules.dropout._DropoutNd) for m in student.modules())
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(student(x), student(x))  # AlexNet has no BatchNorm: train mode is deterministic


def test_momentum_encoder_is_in_eval_mode_except_batchnorm():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 4))
    enc = MomentumEncoder(model, bn_splits=1)
    enc.train()  # what the trainer's model.train() cascades into
    modes = {type(m).__name__: m.training for m in enc.model.modules() if not isinstance(m, nn.Sequential)}
    assert modes == {"Linear": False, "BatchNorm1d": True, "Dropout": False}
    x = torch.randn(6, 4)
    assert torch.equal(enc(x), enc(x))  # dropout off: the same anchors twice
    before = enc.model[1].running_mean.clone()
    enc(x)
    assert not torch.equal(before, enc.model[1].running_mean)  # BatchNorm still in training mode


def test_config_is_resolved_into_a_copy():
    cfg = TrainConfig(data="d", teacher="t", method="compress-1q")
    resolved = resolve_config(cfg, teacher_dim=64, teacher_input_size=32, student_features=lambda size: 1280)
    assert cfg.img_size is None and cfg.embed_dim is None and cfg.lr is None and cfg.head == "auto"
    assert (resolved.img_size, resolved.head, resolved.embed_dim, resolved.queue_size) == (32, "none", 1280, 128000)
    two_q = resolve_config(TrainConfig(data="d", teacher="t", method="compress", head="none"), teacher_dim=64,
                           teacher_input_size=32, student_features=lambda size: 1280)
    assert (two_q.head, two_q.embed_dim) == ("none", 1280)  # the official 2q form, on request
    assert resolved.lr == pytest.approx(0.05) and resolved.augment is not None
    regress = resolve_config(TrainConfig(data="d", teacher="t", method="regress"), teacher_dim=64,
                             teacher_input_size=32, student_features=lambda size: 1280)
    assert (regress.head, regress.embed_dim, regress.queue_size) == ("mlp4", 64, None)
    seed = resolve_config(TrainConfig(data="d", teacher="t", head="mlp"), teacher_dim=64, teacher_input_size=32,
                          student_features=lambda size: 1280)
    assert (seed.head, seed.embed_dim) == ("mlp", 64)


def test_old_configs_with_flat_teacher_fields_still_load():
    cfg = TrainConfig.from_dict({"data": "d", "teacher": "t", "teacher_arch": "timm:resnet18",
                                 "teacher_mean": [0.5, 0.5, 0.5], "teacher_drop_head": ["fc"]})
    assert cfg.teacher_options.arch == "timm:resnet18" and cfg.teacher_options.mean == (0.5, 0.5, 0.5)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.testbed
@pytest.mark.slow
def test_mocov2_student_sees_the_query_view_only(cifar_small, tmp_path):
    from distill.trainer import Trainer

    cfg = TrainConfig(data=str(cifar_small / "train"), teacher=None, method="mocov2", student="alexnet", img_size=32,
                      batch_size=8, queue_size=32, hidden_dim=32, embed_dim=16, workers=0, in_memory="on",
                      out=str(tmp_path / "run"))
    trainer = Trainer(cfg)
    seen = []
    trainer.model.student.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    images = torch.randint(0, 255, (8, 3, 32, 32), dtype=torch.uint8)
    trainer.model.train()
    trainer.train_step(images)
    assert seen == [8]  # the key view goes through the momentum encoder only


@pytest.mark.testbed
@pytest.mark.slow
def test_eval_every_writes_knn_lines_and_a_curve(cifar_small, resnet56_onnx, tmp_path):
    from distill.core.cli import main

    out = tmp_path / "run"
    code = main(["train", "--data", str(cifar_small / "train"), "--val", str(cifar_small / "test"),
                 "--teacher", str(resnet56_onnx), "--batch-size", "16", "--max-steps", "4", "--queue-size", "64",
                 "--hidden-dim", "64", "--workers", "0", "--eval-every", "2", "--eval-bank", "40",
                 "--eval-queries", "20", "--out", str(out)])
    assert code == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    knn = [r for r in rows if r.get("kind") == "knn"]
    assert [r["step"] for r in knn] == [0, 2, 4] and [r["images_seen"] for r in knn] == [0, 32, 64]
    assert all(0.0 <= r["knn_top1"] <= 1.0 for r in knn)
    pytest.importorskip("matplotlib")
    assert (out / "curves.png").stat().st_size > 1000
