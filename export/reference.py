"""The reference bundle: what the parity gate compared against, kept beside the artifacts so that the gate can run
again on the target device, without torch.

``edgedistill export`` writes into the export folder

* ``reference-<sha>.npz`` (a reference set): the parity images as the model sees them before normalisation
  (uint8, N x 3 x S x S, resized and centre-cropped), PyTorch's fp32 embeddings of them, and their labels where
  the folder had classes;
* ``reference.json``: the manifest, and the one switch: per set its file, SHA-256, what the images were, the
  preprocessing and the student; the gate's tolerances; per artifact file its set, its SHA-256 (over the files the
  runtime loads), format, precision and the tolerance it was gated with.

The npz is named by its content and written before the manifest, which is replaced atomically last: after any
interruption a reader finds the old manifest with the old npz or the new with the new. ``edgedistill bench`` on the
device loads each artifact with the device's runtime, embeds the bundle's images and applies the same gate
(:func:`export.parity.compare`, the same tolerances); a missing bundle, an artifact not in it, or an artifact whose
files differ from the exported ones (hash) is refused with one line.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from distill.core.atomic import atomic_write_bytes, atomic_write_json
from distill.core.errors import ModelError
from distill.core.preprocess import Preprocess
from export.batch import BatchSpec, run_batched, run_smallest
from export.parity import ParityResult, compare
from export.tolerances import TOLERANCES, Tolerance

MANIFEST = "reference.json"
FORMAT = "edgedistill.reference/1"


@dataclass
class Reference:
    """One reference set: ``images`` uint8 (N, 3, S, S), ``embeddings`` float32 (N, D), ``labels`` (N,) or None."""

    images: np.ndarray
    embeddings: np.ndarray
    labels: np.ndarray | None
    info: dict[str, Any]  # the set's manifest entry: images kind, preprocess, source


class Bundle:
    """An export folder's manifest; each artifact names the reference set (images and PyTorch embeddings) it was
    gated against: a folder can hold the backbone and the head of a student, or two input sizes."""

    def __init__(self, folder: Path, manifest: dict[str, Any]):
        self.folder, self.manifest = folder, manifest
        self._sets: dict[str, Reference] = {}

    def entry(self, artifact: Path) -> dict[str, Any]:
        found = self.manifest.get("artifacts", {}).get(artifact.name)
        if found is None:
            raise ModelError(f"'{artifact.name}' is not in the reference bundle of '{self.folder}' (exported after it, "
                             "or by another run): re-export it, or copy the export folder whole")
        return found

    def reference(self, artifact: Path) -> Reference:
        key = self.entry(artifact)["set"]
        if key not in self._sets:
            info = self.manifest["sets"][key]
            npz = self.folder / info["file"]
            try:
                data = npz.read_bytes()
            except OSError:
                raise ModelError(f"the reference data '{npz.name}' is missing from '{self.folder}'; copy the whole "
                                 "export folder, or re-export") from None
            if hashlib.sha256(data).hexdigest() != info["sha256"]:
                raise ModelError(f"'{npz}' does not match its manifest (damaged or partly copied); copy it again or "
                                 "re-export")
            with np.load(io.BytesIO(data)) as z:
                labels = z["labels"] if z["labels"].size else None
                self._sets[key] = Reference(z["images"], z["embeddings"], labels, info)
        return self._sets[key]


def _npz_bytes(images: np.ndarray, embeddings: np.ndarray, labels: np.ndarray | None) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, images=np.ascontiguousarray(images, np.uint8),
                        embeddings=np.ascontiguousarray(embeddings, np.float32),
                        labels=np.empty(0, np.int64) if labels is None else np.asarray(labels, np.int64))
    return buf.getvalue()


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, or None when there is none or it is not one of ours."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None


def write_reference(folder: Path, images: np.ndarray, embeddings: np.ndarray, labels: np.ndarray | None, *,
                    kind: str, preprocess: Preprocess, source: dict[str, Any],
                    artifacts: dict[str, dict[str, Any]]) -> Path:
    """Add a reference set (the parity images and PyTorch's embeddings of them) and the artifacts gated against it
    (file name -> {sha256, format, precision, tolerance, status}) to the bundle of ``folder``. Artifacts of earlier
    exports into the folder stay while their files exist; sets no artifact names any more are removed."""
    folder = Path(folder)
    data = _npz_bytes(images, embeddings, labels)
    digest = hashlib.sha256(data).hexdigest()
    key = digest[:16]
    old = read_manifest(folder) or {}
    entries = {name: e for name, e in old.get("artifacts", {}).items()
               if name not in artifacts and (folder / name).exists() and e.get("set") in old.get("sets", {})}
    entries.update({name: {**e, "set": key} for name, e in artifacts.items()})
    sets = {**old.get("sets", {}), key: {
        "file": f"reference-{key}.npz", "sha256": digest,
        "images": {"kind": kind, "count": int(len(images)), "labelled": labels is not None},
        "preprocess": preprocess.to_dict(), "embedding_dim": int(embeddings.shape[1]), "source": source}}
    used = {e["set"] for e in entries.values()}
    manifest = {"format": FORMAT, "sets": {k: v for k, v in sets.items() if k in used},
                "tolerances": {p: t.to_dict() for p, t in TOLERANCES.items()}, "artifacts": entries}
    if key in used and not (folder / f"reference-{key}.npz").is_file():
        atomic_write_bytes(folder / f"reference-{key}.npz", data)
    atomic_write_json(folder / MANIFEST, manifest)  # the switch
    for stale in folder.glob("reference-*.npz"):
        if stale.name.removeprefix("reference-").removesuffix(".npz") not in used:
            stale.unlink(missing_ok=True)
    return folder / MANIFEST


def load_bundle(folder: Path) -> Bundle:
    """The bundle of an export folder; a missing or foreign manifest is a one-line :class:`ModelError`."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise ModelError(f"no reference bundle in '{folder}' ({MANIFEST} is missing), so parity cannot be checked "
                         "here: copy the whole export folder from the machine that exported, or re-export there")
    manifest = read_manifest(folder)
    if manifest is None:
        raise ModelError(f"'{folder / MANIFEST}' is not an edgedistill reference manifest (damaged?); re-export")
    return Bundle(folder, manifest)


def check_backend(backend, bundle: Bundle) -> ParityResult:
    """The gate, again, on this machine: ``backend`` (a loaded artifact) on its reference set's images against the
    PyTorch embeddings taken at export, with the tolerance the export used."""
    entry = bundle.entry(backend.path)
    found = backend.fingerprint()
    if found != entry["sha256"]:
        raise ModelError(f"'{backend.path.name}' differs from the artifact that was exported (SHA-256 {found[:12]} "
                         f"vs {entry['sha256'][:12]} in {MANIFEST}): copy it again, or re-export and copy the folder "
                         "whole")
    ref = bundle.reference(backend.path)
    if backend.preprocess != Preprocess.from_dict(ref.info["preprocess"]):
        raise ModelError(f"'{backend.path.name}' has other preprocessing than its reference set; re-export")
    x = backend.preprocess.numpy_from_uint8(ref.images)
    batch = BatchSpec.from_dict(backend.meta.get("batch"))
    candidate, smallest = run_batched(backend, x, batch), run_smallest(backend, x, batch)
    tolerance = Tolerance(**entry["tolerance"]) if entry.get("tolerance") else TOLERANCES[entry["precision"]]
    return compare(ref.embeddings, candidate, entry["precision"], ref.info["images"]["kind"], tolerance=tolerance,
                   labels=ref.labels, smallest=smallest)
