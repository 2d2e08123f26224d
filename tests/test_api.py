"""The Python API (import edgedistill), --config replay, --version, --json errors, logging levels and the partial
bench's exit status: a small world of real commands (a TorchScript/ONNX teacher, coloured-noise images)."""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import torch

import edgedistill
from distill.core.cli import main
from tests.conftest import colour_gallery, tiny_teacher

ROOT = Path(__file__).resolve().parents[1]


def make_world(root: Path) -> Path:
    """root/images/train/<colour>/*.png, root/teacher.onnx (+ its sidecar)."""
    colour_gallery(root, database="images/train", size=32)
    torch.onnx.export(tiny_teacher(), torch.zeros(1, 3, 32, 32), str(root / "teacher.onnx"), input_names=["input"],
                      output_names=["embedding"], dynamic_axes={"input": {0: "batch"}}, dynamo=False)
    (root / "teacher.json").write_text(json.dumps({"input_size": [3, 32, 32], "embedding_dim": 32}))
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return make_world(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def trained(world) -> dict:
    return edgedistill.train(data=str(world / "images/train"), teacher=str(world / "teacher.onnx"),
                             student="mobilenetv3_small_050", img_size=32, batch_size=8, max_steps=3, queue_size=64,
                             workers=0, val=str(world / "queries"), out=str(world / "runs/api"))


def cli_json(capsys, *argv: str) -> tuple[int, dict]:
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_the_readme_example_runs(tmp_path, monkeypatch, capsys):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- api-example:begin -->\n```python\n(.*?)```\n<!-- api-example:end -->", text, re.S)
    assert block, "README has no API example between its markers"
    make_world(tmp_path)
    monkeypatch.chdir(tmp_path)
    exec(compile(block.group(1), "README.md", "exec"), {})
    steps, status, knn, top = capsys.readouterr().out.split()
    assert steps == "4" and status == "ok" and 0 <= float(knn) <= 1 and top == "red/0.png"


def test_each_function_returns_what_the_command_prints(world, trained, capsys):
    run = Path(trained["run_dir"])
    assert trained["steps"] == 3 and (run / "student.pt").is_file()
    again = world / "runs/cli"
    code, cli = cli_json(capsys, "train", "--data", str(world / "images/train"), "--teacher", str(world / "teacher.onnx"),
                         "--student", "mobilenetv3_small_050", "--img-size", "32", "--batch-size", "8", "--max-steps",
                         "3", "--queue-size", "64", "--workers", "0", "--val", str(world / "queries"), "--out", str(again))
    assert code == 0
    assert {k: cli[k] for k in ("steps", "images_seen", "num_images")} == \
        {k: trained[k] for k in ("steps", "images_seen", "num_images")}
    assert cli["final_loss"] == pytest.approx(trained["final_loss"], rel=1e-5)  # same seed, same data, same steps
    assert cli["eval"]["knn_top1"] == trained["eval"]["knn_top1"]

    evaluate = dict(model=str(run), train=str(world / "images/train"), val=str(world / "queries"), workers=0)
    api = edgedistill.evaluate(**evaluate)
    code, cli = cli_json(capsys, "eval", "--model", str(run), "--train", str(world / "images/train"),
                         "--val", str(world / "queries"), "--workers", "0")
    assert code == 0 and api["knn_top1"] == cli["knn_top1"] and api["nn_top1"] == cli["nn_top1"]

    report = edgedistill.export(model=str(run), format="onnx", precision="fp32", parity_data=str(world / "images/train"),
                                parity_size=12, timing_s=0.1, workers=0)
    onnx_file = report["artifacts"][0]["path"]
    assert report["artifacts"][0]["status"] == "ok"
    edgedistill.index(model=onnx_file, images=str(world / "images/train"), out=str(world / "idx"), workers=0)
    query = str(world / "queries/blue/q0.jpg")
    api = edgedistill.search(index=str(world / "idx"), images=[query], k=4)
    code, cli = cli_json(capsys, "retrieve", "search", "--index", str(world / "idx"), query, "-k", "4")
    strip = lambda r: [[(h["path"], round(h["score"], 6)) for h in row] for row in r["results"]]  # noqa: E731
    assert code == 0 and strip(api) == strip(cli) and len(api["results"][0]) == 4


def test_errors_are_typed_and_nothing_exits(world):
    with pytest.raises(edgedistill.DataError, match="nope"):
        edgedistill.train(data=str(world / "nope"), teacher=str(world / "teacher.onnx"), workers=0,
                          out=str(world / "runs/never"))
    with pytest.raises(edgedistill.ConfigError, match="has no option batchsize"):
        edgedistill.train(data=str(world / "images/train"), teacher=str(world / "teacher.onnx"), batchsize=8)
    with pytest.raises(edgedistill.ConfigError, match="invalid choice"):
        edgedistill.train(data=str(world / "images/train"), teacher=str(world / "teacher.onnx"), method="byol")
    with pytest.raises(edgedistill.EdgeDistillError, match="missing.onnx"):
        edgedistill.index(model=str(world / "missing.onnx"), images=str(world / "images/train"),
                          out=str(world / "idx-never"))
    assert not (world / "runs/never").exists() and not (world / "idx-never").exists()


def test_config_replays_a_run_and_flags_override_it(world, trained, capsys):
    run = Path(trained["run_dir"])
    saved = json.loads((run / "config.json").read_text())
    code, _ = cli_json(capsys, "train", "--config", str(run / "config.json"), "--out", str(world / "runs/replay"))
    assert code == 0
    replayed = json.loads((world / "runs/replay/config.json").read_text())
    assert {**replayed, "out": None} == {**saved, "out": None}  # the same resolved config
    code, _ = cli_json(capsys, "train", "--config", str(run / "config.json"), "--lr", "0.01", "--tau-s", "0.1",
                       "--out", str(world / "runs/replay-lr"))
    changed = json.loads((world / "runs/replay-lr/config.json").read_text())
    assert code == 0 and changed["lr"] == 0.01 and changed["loss_options"]["tau_s"] == 0.1
    assert {k: v for k, v in changed.items() if k not in ("lr", "out", "loss_options")} == \
        {k: v for k, v in saved.items() if k not in ("lr", "out", "loss_options")}


def test_a_yaml_subset_works_and_an_unknown_key_is_refused(world, tmp_path, capsys):
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text(f"data: {world / 'images/train'}\nteacher: {world / 'teacher.onnx'}\n"
                         "student: mobilenetv3_small_050\nimg_size: 32\nbatch_size: 8\nmax_steps: 1\nqueue_size: 64\n"
                         "workers: 0\n")
    code, result = cli_json(capsys, "train", "--config", str(yaml_file), "--out", str(tmp_path / "run"))
    assert code == 0 and result["steps"] == 1 and result["student"] == "mobilenetv3_small_050"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": str(world / "images/train"), "learning_rate": 0.1, "epoch": 3}))
    code, error = cli_json(capsys, "train", "--config", str(bad), "--out", str(tmp_path / "bad"))
    assert code == 2 and error["exit_code"] == 2
    assert "unknown keys 'epoch', 'learning_rate'" in error["error"] and not (tmp_path / "bad").exists()


def test_version_and_the_json_error_object(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"edgedistill {edgedistill.__version__}"
    code = main(["retrieve", "search", "--index", str(tmp_path / "none"), "q.jpg", "--json"])
    captured = capsys.readouterr()
    error = json.loads(captured.out.strip().splitlines()[-1])
    assert code == 2 and error == {"error": error["error"], "exit_code": 2} and "is not an index" in error["error"]
    assert error["error"] in captured.err


def test_logging_levels_follow_quiet_and_verbose(capsys):
    from distill.core.log import configure_cli_logging, log

    try:
        for quiet, verbose, shown in ((False, False, {"info", "warn"}), (True, False, {"warn"}),
                                      (False, True, {"debug", "info", "warn"})):
            configure_cli_logging(quiet, verbose)
            log.debug("debug")
            log.info("info")
            log.warning("note: warn")
            err = capsys.readouterr().err
            assert {w for w in ("debug", "info", "warn") if w in err} == shown
        assert "note: warn" in (log.warning("note: warn") or capsys.readouterr().err)
        assert "edgedistill: warning: careful" in (log.warning("warning: careful") or capsys.readouterr().err)
    finally:
        configure_cli_logging()
    assert logging.getLogger("edgedistill") is log


def test_a_partial_bench_exits_4_with_its_report(world, trained, tmp_path, capsys):
    report = edgedistill.export(model=trained["run_dir"], format="onnx", precision="fp32", out=str(tmp_path / "exp"),
                                parity_data=str(world / "images/train"), parity_size=12, timing_s=0.1, workers=0)
    good = Path(report["artifacts"][0]["path"])
    (tmp_path / "elsewhere").mkdir()
    broken = tmp_path / "elsewhere" / "broken.onnx"  # a model from elsewhere (sidecar only), cut short
    broken.write_bytes(good.read_bytes()[:1000])
    broken.with_suffix(".json").write_text(json.dumps({"input_size": 32}))
    code = main(["bench", str(good), str(broken), "--batch-sizes", "1", "--min-time-s", "0.05", "--warmup-s", "0.01",
                 "--rounds", "1", "--min-runs", "3", "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    error = json.loads(out[-1])
    assert code == 4 and error["exit_code"] == 4 and "1 of 3 artifact(s) could not be benchmarked" in error["error"]  # with the PyTorch student
    rows = json.loads(out[-2])["rows"]  # the rows it could measure, printed before the error
    assert any(r["status"] == "ok" for r in rows)
    assert (good.parent / "bench" / "report.json").is_file()  # the default report folder: beside the artifact


def test_every_export_has_a_model_card(world, trained, tmp_path):
    edgedistill.export(model=trained["run_dir"], format="onnx", precision="fp32", out=str(tmp_path / "exp"),
                       parity_data=str(world / "images/train"), parity_size=12, timing_s=0.1, workers=0)
    card = json.loads((tmp_path / "exp" / "model_card.json").read_text())
    assert card["student"] == "mobilenetv3_small_050" and card["teacher"].endswith("teacher.onnx")
    assert card["method"] == "seed" and card["training"]["steps"] == 3 and card["training"]["img_size"] == 32
    assert card["data"]["num_images"] == 24 and len(card["data"]["fingerprint"]) == 64
    assert card["evaluation"]["knn_top1"] == trained["eval"]["knn_top1"]  # the run's own measurement
    (art,) = card["artifacts"]
    assert art["status"] == "ok" and art["min_cosine"] > 0.99 and art["latency_ms_b1"] > 0
    assert card["versions"]["onnxruntime"] and card["environment"]["hardware"]["cpus"] >= 1
    text = (tmp_path / "exp" / "MODEL_CARD.md").read_text()
    assert "# mobilenetv3_small_050 distilled from" in text and "| mobilenetv3_small_050-onnx-fp32.onnx | onnx |" in text


def test_log_tensorboard_writes_the_rows_of_metrics_jsonl(world, tmp_path):
    pytest.importorskip("tensorboard", reason="--log tensorboard needs the tensorboard extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb-run"
    edgedistill.train(data=str(world / "images/train"), teacher=str(world / "teacher.onnx"),
                      student="mobilenetv3_small_050", img_size=32, batch_size=8, max_steps=3, queue_size=64,
                      workers=0, log_every=1, log="tensorboard", out=str(out))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    scalars = events.Scalars("train/loss")
    assert [s.step for s in scalars] == [r["step"] for r in rows] == [1, 2, 3]
    assert [s.value for s in scalars] == pytest.approx([r["loss"] for r in rows], rel=1e-6)


def test_a_missing_tracker_names_its_extra(world, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(edgedistill.EdgeDistillError, match=r"pip install 'edgedistill\[wandb\]'"):
        edgedistill.train(data=str(world / "images/train"), teacher=str(world / "teacher.onnx"), log="wandb",
                          out=str(tmp_path / "never"))
    with pytest.raises(edgedistill.ConfigError, match="valid trackers: tensorboard, mlflow, wandb"):
        edgedistill.train(data=str(world / "images/train"), teacher=str(world / "teacher.onnx"), log="comet",
                          out=str(tmp_path / "never"))
    assert not (tmp_path / "never").exists()


def test_every_command_and_action_has_help_with_examples():
    import argparse

    from distill.core.cli import build_parser
    from distill.methods import DISTILL_METHODS

    parser = build_parser()
    for name, sub in parser.commands.items():
        assert sub.description and "Example" in sub.description, f"{name} has no examples in its help"
        actions = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        for action in actions:
            for verb, p in action.choices.items():
                assert p.description and "Examples:" in p.description, f"{name} {verb} has no examples"
                for a in p._actions:
                    assert a.help or a.dest in ("help", "json"), f"{name} {verb} {a.option_strings or a.dest}: no help"
    train_help = "".join(parser.commands["train"].format_help().split())
    assert all(f"{m}:" in train_help for m in DISTILL_METHODS)


def test_overwrite_replaces_a_run_and_an_index(world, trained, tmp_path, caplog):
    common = dict(data=str(world / "images/train"), teacher=str(world / "teacher.onnx"), student="mobilenetv3_small_050",
                  img_size=32, batch_size=8, queue_size=64, workers=0, out=str(tmp_path / "run"))
    edgedistill.train(max_steps=1, **common)
    with pytest.raises(edgedistill.CheckpointError, match="--overwrite to replace it"):
        edgedistill.train(max_steps=2, **common)
    again = edgedistill.train(max_steps=2, overwrite=True, **common)
    assert again["steps"] == 2 and json.loads((tmp_path / "run/config.json").read_text())["max_steps"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # the old run, set aside, is gone once replaced
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(edgedistill.EdgeDistillError):  # the new run fails before its first checkpoint ...
        edgedistill.train(max_steps=3, overwrite=True, **{**common, "teacher": str(broken)})
    assert "the run it was to replace is back" in caplog.text
    assert json.loads((tmp_path / "run/config.json").read_text())["max_steps"] == 2  # ... and the old one is back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.onnx", "run"]
    (tmp_path / ".run.replaced").mkdir()  # what a killed run leaves: the next --overwrite clears it
    edgedistill.train(max_steps=1, overwrite=True, **common)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.onnx", "run"]
    model = str(Path(trained["run_dir"]) / "student.pt")
    edgedistill.index(model=model, images=str(world / "images/train"), out=str(tmp_path / "idx"), workers=0)
    with pytest.raises(edgedistill.ConfigError, match="--overwrite to replace it"):
        edgedistill.index(model=model, images=str(world / "queries"), out=str(tmp_path / "idx"), workers=0)
    replaced = edgedistill.index(model=model, images=str(world / "queries"), out=str(tmp_path / "idx"), workers=0,
                                 overwrite=True)
    assert replaced["num_images"] == 6 and json.loads((tmp_path / "idx/manifest.json").read_text())["num_images"] == 6
