"""What ``--resume`` may change, and what a resumed run reads back from its folder."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Options --resume applies when they differ from the saved run (how long, how often, on what hardware, where the
# evaluation goes); any other difference is refused by name (changed_options), never ignored.
RESUME_MAY_CHANGE = frozenset({"out", "val", "data", "teacher", "teacher_options", "epochs", "max_steps", "time_budget",
                               "device", "workers", "in_memory", "log_every", "save_every", "eval_every", "eval_bank",
                               "eval_queries", "amp", "compile", "compile_mode", "teacher_cache", "channels_last",
                               "log"})


def changed_options(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"--flag saved -> now"`` for every option the run was trained with that this --resume changes (the data and
    the teacher are compared by fingerprint; options an older checkpoint did not record are not compared)."""
    found = []
    for key, now in current.items():
        if key in RESUME_MAY_CHANGE or key not in saved or saved[key] == now:
            continue
        if key == "loss_options":
            found += [f"--{k.replace('_', '-')} {saved[key].get(k)} -> {now.get(k)}"
                      for k in sorted(set(saved[key]) | set(now)) if saved[key].get(k) != now.get(k)]
        else:
            found.append(f"--{key.replace('_', '-')} {saved[key]} -> {now}")
    return found


def last_logged_loss(metrics: Path) -> float:
    """The last training loss in a run's metrics.jsonl (NaN when there is none)."""
    try:
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return float("nan")
    return next((r["loss"] for r in reversed(rows) if "loss" in r and r.get("kind") != "knn"), float("nan"))
