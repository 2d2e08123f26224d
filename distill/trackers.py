"""Experiment trackers fed the rows of ``metrics.jsonl``: ``train --log tensorboard`` (and ``mlflow``, ``wandb``
where installed). Each is an optional extra; a missing one is refused in one line before training starts.

:class:`MetricsLog` is where the training loop writes a row (a logging step's loss, lr and images/s, an
in-training kNN point): to ``metrics.jsonl`` and to every tracker, the same numbers. Rows with ``"kind": "knn"``
go under ``knn/``, the others under ``train/``; the x axis is the step.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from distill.core.errors import MissingDependencyError

# tracker -> (module that must import, the extra that installs it)
TRACKERS = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow"), "wandb": ("wandb", "wandb")}


def check_trackers(names: tuple[str, ...]) -> None:
    """Refuse an unknown tracker name or one whose library is missing, naming the valid ones or the extra."""
    from distill.core.errors import ConfigError

    for name in names:
        if name not in TRACKERS:
            raise ConfigError(f"unknown --log '{name}'; valid trackers: {', '.join(TRACKERS)}")
        module, extra = TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(f"--log {name} needs {module}, which is not installed: "
                                         f"pip install 'edgedistill[{extra}]'")


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items()
            if k not in ("step", "epoch", "kind") and isinstance(v, (int, float)) and not isinstance(v, bool)}


class _TensorBoard:
    def __init__(self, run_dir: Path, config: dict):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        self.writer.add_text("config", "```\n" + json.dumps(config, indent=2, default=str) + "\n```")

    def log(self, row: dict[str, Any]) -> None:
        group = row.get("kind", "train")
        for key, value in _numbers(row).items():
            self.writer.add_scalar(f"{group}/{key}", value, int(row["step"]))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _MLflow:
    def __init__(self, run_dir: Path, config: dict):
        import mlflow

        self.mlflow = mlflow
        mlflow.start_run(run_name=run_dir.name)
        flat = {k: v for k, v in config.items() if isinstance(v, (str, int, float, bool)) or v is None}
        mlflow.log_params({k: str(v) for k, v in flat.items()})

    def log(self, row: dict[str, Any]) -> None:
        group = row.get("kind", "train")
        self.mlflow.log_metrics({f"{group}/{k}": v for k, v in _numbers(row).items()}, step=int(row["step"]))

    def close(self) -> None:
        self.mlflow.end_run()


class _WandB:
    def __init__(self, run_dir: Path, config: dict):
        import wandb

        self.run = wandb.init(project="edgedistill", name=run_dir.name, dir=str(run_dir), config=config)

    def log(self, row: dict[str, Any]) -> None:
        group = row.get("kind", "train")
        self.run.log({f"{group}/{k}": v for k, v in _numbers(row).items()}, step=int(row["step"]))

    def close(self) -> None:
        self.run.finish()


_OPEN = {"tensorboard": _TensorBoard, "mlflow": _MLflow, "wandb": _WandB}


class MetricsLog:
    """``metrics.jsonl`` (appended, flushed per row) and the trackers, written the same rows."""

    def __init__(self, run_dir: Path, trackers: tuple[str, ...] = (), config: dict | None = None):
        check_trackers(trackers)
        self.file = open(run_dir / "metrics.jsonl", "a")
        self.trackers = [_OPEN[name](run_dir, config or {}) for name in trackers]

    def write(self, row: dict[str, Any]) -> None:
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        for tracker in self.trackers:
            tracker.log(row)

    def close(self) -> None:
        self.file.close()
        for tracker in self.trackers:
            tracker.close()
