"""export.json: what `edgedistill export` did, artifact by artifact, and which artifact `--format auto` picks."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def pick_fastest(artifacts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The deployable artifact of ``--format auto``: the lowest batch-1 latency among those that passed the gate,
    with every candidate's measurement. Never one slower than the best measured in the same run."""
    timed = [a for a in artifacts if a["status"] == "ok" and a.get("latency_ms") is not None]
    if not timed:
        return None
    best = min(timed, key=lambda a: a["latency_ms"])
    slower_int8 = [a for a in timed if a["precision"] == "int8" and a.get("vs_fp32") and a["vs_fp32"] < 1]
    return {"path": best["path"], "format": best["format"], "precision": best["precision"],
            "latency_ms": best["latency_ms"], "rule": "fastest p50 at batch 1 among the artifacts that passed the gate",
            "candidates": [{"format": a["format"], "precision": a["precision"], "latency_ms": a["latency_ms"],
                            "vs_fp32": a.get("vs_fp32")} for a in timed],
            "int8_slower_than_fp32": [f"{a['format']} int8" for a in slower_int8]}


def merged_report(path: Path, report: dict[str, Any]) -> dict[str, Any]:
    """The new report plus the artifacts of an earlier export of the same source into the same folder that this
    run did not rebuild: a second ``export`` call adds to export.json instead of erasing the first one's record."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return report
    if old.get("source", {}).get("sha256") != report["source"]["sha256"]:
        return report
    rebuilt = {(a["format"], a["precision"]) for a in report["artifacts"]}
    kept = [a for a in old.get("artifacts", []) if (a.get("format"), a.get("precision")) not in rebuilt]
    return {**report, "artifacts": kept + report["artifacts"]}
