"""A model card beside every export (``MODEL_CARD.md`` and ``model_card.json``): what the artifacts are, where
they came from and how well they hold up, in the spirit of Hugging Face's model cards, written from what the run
and the export recorded (nothing is measured again here).

Fields: the student and its teacher (with the teacher's licence, which the distilled weights inherit), the method,
the training data (folder, number of images, fingerprint), the steps trained, the kNN / 1-NN / linear scores where
the run measured them, every artifact's parity verdict and batch-1 latency, and the library versions.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distill.core.atomic import atomic_write_json, atomic_write_text


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def card_fields(report: dict[str, Any], source_meta: dict[str, Any], run_dir: Path | None) -> dict[str, Any]:
    config = source_meta.get("config") or {}
    summary = _read_json(run_dir / "summary.json") if run_dir else {}
    evaluation = summary.get("eval") or (_read_json(run_dir / "eval.json") if run_dir else {}) or {}
    scores = {k: evaluation.get(k) for k in ("knn_top1", "knn_top5", "nn_top1", "linear_top1", "cluster_acc")
              if evaluation.get(k) is not None}
    return {
        "format": "edgedistill.model_card/1",
        "student": report["source"]["student"], "checkpoint_sha256": report["source"]["sha256"],
        "teacher": source_meta.get("teacher") or config.get("teacher"),
        "teacher_licence": report["source"].get("teacher_licence"),
        "method": source_meta.get("method") or config.get("method"), "untrained": bool(source_meta.get("untrained")),
        "data": {"folder": config.get("data"), "num_images": summary.get("num_images"),
                 "fingerprint": summary.get("data_fingerprint")},
        "training": {"steps": source_meta.get("step", summary.get("steps")), "images_seen": summary.get("images_seen"),
                     "img_size": config.get("img_size")},
        "evaluation": ({**scores, "queries": evaluation.get("num_val"), "bank": evaluation.get("num_train")}
                       if scores else None),
        "parity_images": report.get("parity_images"),
        "artifacts": [{"file": Path(a["path"]).name if a["path"] else None, "format": a["format"],
                       "precision": a["precision"], "status": a["status"],
                       "min_cosine": (a.get("parity") or {}).get("min_cosine"),
                       "tolerance": (a.get("parity") or {}).get("tolerance"), "latency_ms_b1": a.get("latency_ms"),
                       "size_bytes": a.get("size_bytes"), "error": a.get("error")} for a in report["artifacts"]],
        "versions": report.get("versions"), "environment": summary.get("environment"), "created": report.get("created"),
    }


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def render(card: dict[str, Any]) -> str:
    lic = card["teacher_licence"]
    lines = [f"# {card['student']} distilled from {card['teacher'] or '(no teacher)'}", "",
             "An image-embedding model trained without labels by edgedistill"
             + (f" ({card['method']})" if card["method"] else "") + ". "
             + ("**Untrained weights: for toolchain checks only.**" if card["untrained"] else ""), "",
             "## Provenance", "",
             f"- Student: `{card['student']}` (checkpoint SHA-256 `{card['checkpoint_sha256'][:16]}...`)",
             f"- Teacher: `{card['teacher']}`; licence of its weights: {lic or 'not recorded'}"
             + (" (the distilled weights are derived from them: check what it allows)" if lic else ""),
             f"- Method: {card['method'] or '-'}",
             f"- Data: `{card['data']['folder']}`, {card['data']['num_images'] or '?'} images, fingerprint "
             f"`{(card['data']['fingerprint'] or '-')[:16]}`",
             f"- Training: {card['training']['steps']} steps, {card['training']['images_seen'] or '?'} images seen, "
             f"input {card['training']['img_size']} px", ""]
    ev = card["evaluation"]
    lines += ["## Evaluation (measured by the training run)", ""]
    if ev:
        lines += ["| weighted kNN top-1 | 1-NN | linear probe | queries | bank |", "|---:|---:|---:|---:|---:|",
                  f"| {_pct(ev.get('knn_top1'))} | {_pct(ev.get('nn_top1'))} | {_pct(ev.get('linear_top1'))} | "
                  f"{ev.get('queries')} | {ev.get('bank')} |", ""]
    else:
        lines += ["Not measured (train with a labelled `--val`, or run `edgedistill eval`).", ""]
    pi = card["parity_images"] or {}
    lines += ["## Artifacts and their parity with PyTorch", "",
              f"Parity images: {pi.get('count')} {pi.get('kind')} images"
              + (f" from `{pi.get('folder')}`" if pi.get("folder") else "") + "; latency: batch 1, p50, "
              "the export's short timing on the export machine (`edgedistill bench` measures properly).", "",
              "| file | format | precision | status | min cosine | latency ms |", "|---|---|---|---|---:|---:|"]
    for a in card["artifacts"]:
        cos = "-" if a["min_cosine"] is None else f"{a['min_cosine']:.6f}"
        lat = "-" if a["latency_ms_b1"] is None else f"{a['latency_ms_b1']:.3f}"
        lines.append(f"| {a['file'] or '-'} | {a['format']} | {a['precision']} | {a['status']} | {cos} | {lat} |")
    versions = card["versions"] or {}
    lines += ["", "## Versions", "", ", ".join(f"{k} {v}" for k, v in versions.items()) or "-", ""]
    git = (card.get("environment") or {}).get("git")
    if git:
        lines += [
            f"Trained from commit `{git['commit'][:12]}`" + (" (with uncommitted changes)" if git["dirty"] else ""),
            "",
        ]
    return "\n".join(lines)


def write_model_card(out: Path, report: dict[str, Any], source_meta: dict[str, Any], run_dir: Path | None) -> dict:
    card = card_fields(report, source_meta, run_dir)
    atomic_write_json(out / "model_card.json", card)
    atomic_write_text(out / "MODEL_CARD.md", render(card))
    return card
