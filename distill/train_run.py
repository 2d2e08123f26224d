"""``edgedistill train`` end to end: train, evaluate when a labelled --val is given, write summary.json.

Under torchrun every rank trains; rank 0 alone evaluates and writes the summary.
"""
from __future__ import annotations

import time
from typing import Any

from distill.checkpoint import load_student
from distill.config import TrainConfig
from distill.core.atomic import atomic_write_json
from distill.core.device import resolve_device
from distill.core.environment import run_environment
from distill.core.images import scan_folder
from distill.distributed import context_from_env, init_distributed, shutdown_distributed
from distill.embedders import StudentEmbedder
from distill.evaluate import evaluate_knn
from distill.trainer import Trainer


def train_and_evaluate(cfg: TrainConfig, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    started = time.time()
    val_folder = scan_folder(cfg.val) if cfg.val else None  # fail on a bad --val before training, not after
    ctx = context_from_env()
    device = init_distributed(ctx, resolve_device(cfg.device))
    try:
        trainer = Trainer(cfg, resume=resume, dist=ctx, device=device, overwrite=overwrite)
        summary = trainer.fit()
    finally:
        shutdown_distributed()
    summary["config"] = trainer.cfg.to_dict()  # the resolved config
    if not ctx.is_main:
        return summary
    if val_folder is not None:
        if trainer.folder.has_labels and val_folder.has_labels:
            embedder = StudentEmbedder(load_student(trainer.out), trainer.device)
            summary["eval"] = evaluate_knn(embedder, scan_folder(cfg.data), val_folder, cfg.knn_k, cfg.knn_t,
                                           workers=cfg.workers)
            atomic_write_json(trainer.out / "eval.json", summary["eval"])
        else:
            summary["eval"] = None
            summary["eval_skipped"] = "kNN needs class folders in both --data and --val"
    summary["wall_seconds"] = round(time.time() - started, 1)
    summary["data_fingerprint"] = trainer.folder.fingerprint()
    summary["environment"] = run_environment(str(trainer.device))  # versions, git commit, hardware
    atomic_write_json(trainer.out / "summary.json", summary)
    return summary
