"""Atomic writes and the deployable student checkpoint."""
import os

import pytest
import torch

from distill.checkpoint import load_student, save_student
from distill.core.atomic import atomic_write_bytes, atomic_write_json
from distill.core.errors import CheckpointError
from distill.core.preprocess import Preprocess
from distill.students import create_student


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    atomic_write_json(target, {"v": 1})
    assert target.read_text().strip().endswith("}")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"half")
    monkeypatch.undo()
    assert '"v": 1' in target.read_text()  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temp file left behind


def test_student_round_trip_rebuilds_the_same_network(tmp_path):
    student = create_student("alexnet", img_size=32).eval()
    pre = Preprocess(input_size=32)
    save_student(tmp_path / "student.pt", student, pre, {"method": "seed"})
    loaded = load_student(tmp_path)  # a run folder means its student.pt
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), student(x))
    assert loaded.preprocess == pre and loaded.meta["config"] == {"method": "seed"}


def test_foreign_and_missing_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_student(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="no student.pt"):
        load_student(tmp_path)
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an edgedistill student checkpoint"):
        load_student(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_student(tmp_path / "junk.pt")
