"""Training curves from ``metrics.jsonl``: loss and in-training kNN against images seen.

``metrics.jsonl`` holds two kinds of lines: loss lines (``{"step", "loss", "lr", "images_per_s", ...}``) every
``--log-every`` steps, and kNN lines (``{"step", "images_seen", "knn_top1", ...}``, key ``"kind": "knn"``) every
``--eval-every`` steps (:mod:`distill.monitor`). :func:`plot_run` draws one run; :func:`plot_comparison` draws
the kNN curves of several runs in one figure (docs/RESULTS.md). matplotlib is optional (the ``dev`` extra): the
functions return False without it.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from distill.core.atomic import atomic_write_bytes

CURVES_FILE = "curves.png"


def read_metrics(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(loss lines, kNN lines) of a run folder's ``metrics.jsonl`` (or of the file itself); bad lines skipped."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    losses, knn = [], []
    if not path.is_file():
        return losses, knn
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut by a kill mid-write
        (knn if row.get("kind") == "knn" else losses).append(row)
    return losses, knn


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _save(fig, plt, path: Path) -> None:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _images(row: dict[str, Any]) -> float:
    return row.get("images_seen", 0) / 1e6


def plot_run(run_dir: str | Path, path: str | Path | None = None) -> bool:
    """Loss (left axis) and kNN top-1 (right axis) against millions of images seen -> ``run_dir/curves.png``."""
    plt = _pyplot()
    losses, knn = read_metrics(run_dir)
    losses = [r for r in losses if "images_seen" in r]
    if plt is None or not (losses or knn):
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    if losses:
        ax.plot([_images(r) for r in losses], [r["loss"] for r in losses], color="tab:blue", lw=1, label="loss")
    ax.set_xlabel("images seen (millions)")
    ax.set_ylabel("training loss", color="tab:blue")
    ax.grid(alpha=0.3)
    if knn:
        ax2 = ax.twinx()
        ax2.plot([_images(r) for r in knn], [100 * r["knn_top1"] for r in knn], "o-", color="tab:red", ms=3,
                 label="kNN top-1")
        ax2.set_ylabel("weighted kNN top-1 (%)", color="tab:red")
    ax.set_title(Path(run_dir).name)
    _save(fig, plt, Path(path) if path else Path(run_dir) / CURVES_FILE)
    return True


def plot_comparison(runs: dict[str, str | Path], path: str | Path, title: str = "") -> bool:
    """The kNN curves of several runs (label -> run folder) in one figure."""
    plt = _pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    drawn = 0
    for label, run in runs.items():
        _, knn = read_metrics(run)
        if knn:
            ax.plot([_images(r) for r in knn], [100 * r["knn_top1"] for r in knn], "o-", ms=3, label=label)
            drawn += 1
    if not drawn:
        plt.close(fig)
        return False
    ax.set_xlabel("images seen (millions)")
    ax.set_ylabel("weighted kNN top-1 (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, plt, Path(path))
    return True
