"""The deploy side in an environment without torch: the base install (``pip install edgedistill``, plus the demo
extra for the page), as a device gets it. ``make test`` builds it (``make runtime-env``); the artifacts are
exported here, in the training environment, and used there through its own ``edgedistill`` command."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, RUNTIME_VENV, colour_gallery, run_cli

pytestmark = [pytest.mark.runtime, pytest.mark.slow]


def device(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``edgedistill ARGS`` in the runtime-only environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(RUNTIME_VENV / "bin" / "edgedistill"), *args], capture_output=True, text=True,
                          cwd=ROOT, env={**env, "EDGEDISTILL_PROGRESS": "0"}, timeout=timeout)


def last_json(proc: subprocess.CompletedProcess) -> dict:
    return json.loads(proc.stdout.strip().splitlines()[-1])


def one_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("edgedistill: error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    """(image root, export folder): an untrained resnet10t at 32 px exported to ONNX fp32 in this environment,
    gated on the labelled gallery (its reference bundle beside it)."""
    import torch

    from distill.checkpoint import save_student
    from distill.core.preprocess import Preprocess
    from distill.students import create_student

    root = colour_gallery(tmp_path_factory.mktemp("images"))
    run = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    save_student(run / "student.pt", create_student("resnet10t", img_size=32).eval(), Preprocess(input_size=32),
                 {"data": str(root / "gallery"), "val": str(root / "queries")})
    out = run_cli("distill", "export", "--model", str(run), "--format", "onnx", "--precision", "fp32",
                  "--parity-data", str(root / "gallery"), "--timing-s", "0", "--json")
    assert out.returncode == 0, out.stderr
    return root, run / "export"


def test_the_runtime_environment_has_no_training_stack():
    for module in ("torch", "torchvision", "timm", "onnx"):
        proc = subprocess.run([str(RUNTIME_VENV / "bin" / "python"), "-c", f"import {module}"], capture_output=True,
                              text=True)
        assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr, module


def test_index_search_and_evaluate_with_an_artifact_exported_elsewhere(exported, tmp_path):
    root, export = exported
    model = export / "resnet10t-onnx-fp32.onnx"
    built = device("retrieve", "index", "--model", str(model), "--images", str(root / "gallery"),
                   "--out", str(tmp_path / "index"), "--json")
    assert built.returncode == 0, built.stderr
    assert last_json(built)["num_images"] == 24
    query = root / "gallery" / "red" / "3.png"
    found = device("retrieve", "search", "--index", str(tmp_path / "index"), str(query), "-k", "3", "--json")
    assert found.returncode == 0, found.stderr
    top = last_json(found)["results"][0][0]
    assert top["path"] == "red/3.png" and top["score"] > 0.999  # the image finds itself
    scored = device("retrieve", "eval", "--index", str(tmp_path / "index"), "--queries", str(root / "queries"),
                    "-k", "1,5", "--json")
    assert scored.returncode == 0, scored.stderr
    assert 0.0 <= last_json(scored)["map"] <= 1.0
    knn = device("eval", "--model", str(model), "--train", str(root / "gallery"), "--val", str(root / "queries"),
                 "--json")
    assert knn.returncode == 0, knn.stderr
    assert last_json(knn)["num_train"] == 24 and last_json(knn)["num_val"] == 6


def test_bench_gives_the_parity_verdict_from_the_bundle(exported, tmp_path):
    _, export = exported
    out = device("bench", str(export), "--batch-sizes", "1", "--warmup-s", "0.05", "--min-time-s", "0.1",
                 "--min-runs", "3", "--rounds", "1", "--out", str(tmp_path / "bench"), "--json")
    assert out.returncode == 0, out.stderr
    rows = last_json(out)["rows"]
    assert [r["backend"] for r in rows] == ["onnxruntime"]  # no PyTorch row: torch is not there
    assert rows[0]["gate"] == "pass" and rows[0]["gate_min_cosine"] > 0.9999
    assert "Parity gate on this machine" in (tmp_path / "bench" / "report.md").read_text()


def _copy(export: Path, dest: Path) -> Path:
    shutil.copytree(export, dest)
    return dest


def test_bench_refuses_an_artifact_without_its_bundle_or_changed_since_export(exported, tmp_path):
    _, export = exported
    args = ("--batch-sizes", "1", "--warmup-s", "0.05", "--min-time-s", "0.1", "--min-runs", "3", "--rounds", "1")
    bare = _copy(export, tmp_path / "bare")
    (bare / "reference.json").unlink()
    refused = device("bench", str(bare), *args, "--out", str(tmp_path / "b1"))
    assert refused.returncode == 2 and "no reference bundle" in one_line(refused)

    changed = _copy(export, tmp_path / "changed")
    artifact = changed / "resnet10t-onnx-fp32.onnx"
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 1  # one bit of a weight: still loads, no longer the exported file
    artifact.write_bytes(bytes(data))
    refused = device("bench", str(changed), *args, "--out", str(tmp_path / "b2"))
    assert refused.returncode == 2 and "differs from the artifact that was exported" in one_line(refused)


def test_bench_fails_an_artifact_that_disagrees_with_its_reference_here(exported, tmp_path):
    """The target's runtime giving other embeddings than PyTorch did: simulated by a bundle whose reference
    embeddings are shuffled between images (its manifest updated, so only the gate can object)."""
    import hashlib
    import io

    _, export = exported
    moved = _copy(export, tmp_path / "moved")
    manifest = json.loads((moved / "reference.json").read_text())
    (key, info), = manifest["sets"].items()
    with np.load(moved / info["file"]) as z:
        data = {k: z[k] for k in z.files}
    data["embeddings"] = np.roll(data["embeddings"], 1, axis=0)
    buf = io.BytesIO()
    np.savez_compressed(buf, **data)
    (moved / info["file"]).write_bytes(buf.getvalue())
    info["sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    (moved / "reference.json").write_text(json.dumps(manifest))
    out = device("bench", str(moved), "--batch-sizes", "1", "--warmup-s", "0.05", "--min-time-s", "0.1",
                 "--min-runs", "3", "--rounds", "1", "--out", str(tmp_path / "bench"), "--json")
    assert out.returncode == 3 and "fail the parity gate on this machine" in one_line(out)
    *_, rows, error = out.stdout.strip().splitlines()  # the rows it measured, then the failure as JSON
    assert json.loads(rows)["rows"][0]["gate"] == "fail" and json.loads(error)["exit_code"] == 3


def test_training_commands_name_the_extra():
    for args in (("train", "--data", str(ROOT), "--teacher", "t.onnx"), ("export", "--model", str(ROOT))):
        proc = device(*args)
        assert proc.returncode == 2
        assert "pip install 'edgedistill[train]'" in one_line(proc)


def test_serve_answers_on_loopback(exported, tmp_path):
    root, export = exported
    built = device("retrieve", "index", "--model", str(export / "resnet10t-onnx-fp32.onnx"), "--images",
                   str(root / "gallery"), "--out", str(tmp_path / "index"))
    assert built.returncode == 0, built.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(RUNTIME_VENV / "bin" / "edgedistill"), "retrieve", "serve", "--index",
                               str(tmp_path / "index"), "--port", str(port)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=ROOT)
    try:
        deadline, health = time.monotonic() + 60, None
        while time.monotonic() < deadline and health is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                    health = json.loads(r.read())
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                time.sleep(0.3)
        assert health and health["num_images"] == 24 and health["runtime"] == "onnxruntime"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/random?k=3", timeout=10) as r:
            assert len(json.loads(r.read())["results"]) == 3
    finally:
        server.terminate()
        server.wait(timeout=10)
