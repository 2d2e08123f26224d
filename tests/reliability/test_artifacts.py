"""Faults that need more than one command to show: a multi-file artifact interrupted mid-update must read as the
whole old one (one switch, distill.core.swap); a finished run missing an output is completed by --resume; numeric
flags are checked when parsed; the file system as it is (named pipes, file names that are not UTF-8, symlinked
class folders). docs/RELIABILITY.md counts them with the fault table."""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import make_image
from tests.reliability.faults import TEACHER, TRAIN
from tests.reliability.test_faults import (WRAPPER, _file_size_limit, assert_clean_failure, default_sigint, run,
                                          snapshot)

pytestmark = pytest.mark.slow

INDEX_ADD = ("retrieve", "index", "--model", "{ws}/model.onnx", "--images", "{ws}/images", "--out", "{ws}/index",
             "--add", "--workers", "0")
SEARCH = ("retrieve", "search", "--index", "{ws}/index", "{ws}/queries/red/q0.jpg", "{ws}/queries/blue/q1.jpg",
          "-k", "30", "--json")


def _search(ws: Path) -> list:
    proc = run(list(SEARCH), ws)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])["results"]


def _new_images(ws: Path) -> None:
    for i in range(3):
        make_image(ws / "images" / "green" / f"new{i}.png", size=(36, 36), color=(40, 200, 40), seed=500 + i)


@pytest.mark.parametrize("at", [1, 2, 3, 4, 5])
def test_an_interrupted_add_leaves_the_old_index_whole(ws: Path, at: int):
    """SIGINT at each of --add's five file writes: exit 130, the index folder byte-identical, and a search answers
    exactly as before (the old index.faiss with the old paths, not one of them new)."""
    before_results = _search(ws)
    _new_images(ws)
    before = snapshot(ws / "index")
    proc = run(list(INDEX_ADD), ws, wrapper=WRAPPER, env={"FAULT_AT_WRITE": str(at), "FAULT_SIGNAL": "SIGINT"},
               preexec=default_sigint)
    assert_clean_failure(proc, "interrupted", 130)
    assert snapshot(ws / "index") == before
    assert _search(ws) == before_results
    assert not [p for p in ws.iterdir() if p.name.startswith(".index.")], "staging folder left behind"


def test_a_full_disk_during_add_leaves_the_old_index_whole(ws: Path):
    before_results = _search(ws)
    _new_images(ws)
    before = snapshot(ws / "index")
    proc = run(list(INDEX_ADD), ws, preexec=_file_size_limit(4096), env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert_clean_failure(proc, "too large")
    assert snapshot(ws / "index") == before and _search(ws) == before_results


def test_an_add_that_completes_switches_every_file(ws: Path):
    _new_images(ws)
    proc = run(list(INDEX_ADD), ws)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((ws / "index" / "manifest.json").read_text())
    paths = json.loads((ws / "index" / "paths.json").read_text())
    assert manifest["num_images"] == len(paths) == 27 and "green/new0.png" in paths


@pytest.mark.parametrize("damage", ["missing", "stale"])
def test_a_finished_run_missing_its_student_is_completed_by_resume(ws: Path, damage: str):
    """A full disk between checkpoint.pt and student.pt (none written, or the previous step's left): the next
    --resume writes the student of the checkpoint's step and a finite loss."""
    import torch

    if damage == "missing":
        (ws / "run" / "student.pt").unlink()
    else:
        student = torch.load(ws / "run" / "student.pt", weights_only=True)
        torch.save({**student, "step": 1}, ws / "run" / "student.pt")
    steps = TRAIN.index("--max-steps") + 1
    args = [*TRAIN[:steps], "2", *TRAIN[steps + 1:]]  # the workspace run's own --max-steps 2: nothing left to train
    proc = run([*args, "--data", "{ws}/images", "--teacher", TEACHER, "--out", "{ws}/run", "--resume", "--json"], ws)
    assert proc.returncode == 0, proc.stderr
    assert torch.load(ws / "run" / "student.pt", weights_only=True)["step"] == 2
    summary = json.loads((ws / "run" / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["final_loss"] == summary["final_loss"]  # not NaN


NUMERIC = [
    ("train", "--lr", "nan"), ("train", "--lr", "-0.1"), ("train", "--weight-decay", "-1e-4"),
    ("train", "--workers", "-1"), ("train", "--tau-t", "0"), ("train", "--ema-momentum", "1.5"),
    ("pretrain", "--lr", "inf"), ("eval", "--temperature", "0"), ("export", "--timing-s", "-1"),
    ("bench", "--min-time-s", "nan"), ("retrieve index", "--target-recall", "1.5"), ("cache-teacher", "--workers", "-2"),
]


@pytest.mark.parametrize("command,flag,value", NUMERIC, ids=[f"{c}{f}={v}" for c, f, v in NUMERIC])
def test_numeric_flags_are_checked_when_parsed(command: str, flag: str, value: str, tmp_path: Path):
    proc = run([*command.split(), flag, value], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"argument {flag}:" in proc.stderr.strip().splitlines()[-1]
    assert not any(tmp_path.iterdir())


def test_a_named_pipe_among_the_images_is_skipped_not_waited_on(ws: Path):
    os.mkfifo(ws / "images" / "red" / "pipe.jpg")
    proc = run(["retrieve", "index", "--model", "{ws}/model.onnx", "--images", "{ws}/images", "--out", "{ws}/i2",
                "--workers", "0", "--json"], ws, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "not regular files" in proc.stderr and "pipe.jpg" in proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["num_images"] == 24


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse names that are not UTF-8")
def test_file_names_that_are_not_utf8_train_index_and_serve(ws: Path):
    from fastapi.testclient import TestClient

    from retrieval_demo.server import create_app

    odd = os.fsdecode(b"caf\xe9.png")
    shutil.copy(ws / "images" / "red" / "0.png", ws / "images" / "red" / odd)
    trained = run([*TRAIN, "--data", "{ws}/images", "--teacher", TEACHER, "--out", "{ws}/r"], ws)
    assert trained.returncode == 0, trained.stderr  # the folder's fingerprint went into the checkpoint
    built = run(["retrieve", "index", "--model", "{ws}/model.onnx", "--images", "{ws}/images", "--out", "{ws}/i2",
                 "--workers", "0"], ws)
    assert built.returncode == 0, built.stderr
    client = TestClient(create_app(ws / "i2"))
    found = client.get("/api/random?k=25").json()["results"]
    shown = {r["path"]: r["thumb"] for r in found}
    assert "red/caf\ufffd.png" in shown  # the undecodable byte shown as U+FFFD, the thumbnail by its exact bytes
    assert all(client.get(thumb).status_code == 200 for thumb in shown.values())


def test_thumbnails_of_a_symlinked_class_folder(ws: Path):
    from fastapi.testclient import TestClient

    from retrieval_demo.server import create_app

    (ws / "linked").mkdir()
    (ws / "linked" / "red").symlink_to(ws / "images" / "red", target_is_directory=True)
    shutil.copytree(ws / "images" / "blue", ws / "linked" / "blue")
    built = run(["retrieve", "index", "--model", "{ws}/model.onnx", "--images", "{ws}/linked", "--out", "{ws}/i3",
                 "--workers", "0"], ws)
    assert built.returncode == 0, built.stderr
    client = TestClient(create_app(ws / "i3"))
    assert client.get("/thumb/red/0.png").status_code == 200
    assert client.get("/thumb/red/%2E%2E/blue/0.png").status_code == 404  # only indexed paths, as indexed


def test_an_onnx_model_that_returns_a_feature_map_is_named(ws: Path):
    """onnxruntime runs it; what comes out is (B, C, H, W), not an embedding: one line, not a shape error deep in
    the kNN code."""
    import torch

    conv = torch.nn.Conv2d(3, 4, 3, padding=1).eval()
    torch.onnx.export(conv, torch.zeros(1, 3, 32, 32), str(ws / "fmap.onnx"), input_names=["input"],
                      output_names=["embedding"], dynamic_axes={"input": {0: "batch"}}, dynamo=False)
    (ws / "fmap.json").write_text(json.dumps({"input_size": 32}))
    before = snapshot(ws)
    proc = run(["eval", "--model", "{ws}/fmap.onnx", "--train", "{ws}/images", "--val", "{ws}/queries", "--workers",
                "0"], ws)
    assert_clean_failure(proc, "not (batch, dim)")
    assert snapshot(ws) == before
