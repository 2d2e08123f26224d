"""One backend, measured in a fresh process (so that its peak memory and its runtime's threads are its own).

``python bench/worker.py JOB.json`` (by file path, see bench.runner) reads a job, writes a JSON result as the last
line of stdout:

* ``timing``: inference latency per batch size on a ready, preprocessed batch, and end-to-end latency (decode,
  preprocess, infer) on real image files, plus the process's peak resident memory;
* ``embed``: embeddings of the parity images and of the kNN bank and queries, saved as .npy files;
* ``parity``: the export's parity gate again, here, against the reference bundle beside the artifact.
"""
from __future__ import annotations

import json
import resource
import sys
import traceback
from pathlib import Path

import numpy as np

from distill.core.timing import measure


def _peak_rss_mb() -> float:
    """This process's own peak resident memory. ``VmHWM`` resets at exec; ``ru_maxrss`` would not (Linux keeps
    the parent's peak across fork + exec), and would report the benchmark driver's memory for every backend."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, the fallback elsewhere


def timing(job: dict) -> dict:
    from export.backends import load_backend

    backend = load_backend(job["artifact"], device=job["device"], threads=job["threads"], variant=job.get("variant"))
    static = (backend.meta.get("batch") or {}).get("dynamic") is False
    static_size = (backend.meta.get("batch") or {}).get("min")
    s = backend.preprocess.input_size
    rng = np.random.default_rng(0)
    results = {}
    images = job.get("images") or []
    for bs in job["batch_sizes"]:
        if static and bs != static_size:
            results[str(bs)] = {"error": f"artifact has a static batch of {static_size}"}
            continue
        x = rng.standard_normal((bs, 3, s, s)).astype(np.float32)
        # the model alone: input (and output) bound once where the runtime can (Backend.bound)
        infer = measure(backend.bound(x), job["warmup_s"], job["min_time_s"], job["min_runs"], backend.synchronize)
        entry = {"infer": infer.to_dict()}
        if len(images) >= bs:
            files = images[:bs]
            e2e = measure(lambda: backend.embed_images(files, batch_size=bs), min(job["warmup_s"], 0.5),
                          job["min_time_s"] / 2, max(3, job["min_runs"] // 4), backend.synchronize)
            entry["end_to_end"] = e2e.to_dict()
        results[str(bs)] = entry
    return {"batches": results, "peak_rss_mb": _peak_rss_mb(), "size_bytes": backend.size_bytes(),
            "precision": backend.precision, "runtime": backend.runtime, "img_size": s}


def embed(job: dict) -> dict:
    from distill.core.embeddings import embed_folder
    from distill.core.images import scan_folder
    from export.backends import load_backend

    backend = load_backend(job["artifact"], device=job["device"], threads=job["threads"], variant=job.get("variant"))
    out = Path(job["out"])
    saved = {}
    for key in ("bank", "queries"):
        spec = job.get(key)
        if not spec:
            continue
        folder = scan_folder(spec["dir"], spec["limit"])
        emb = embed_folder(backend, folder, batch_size=32, workers=job.get("workers", 0), desc=f"embed {key}")
        np.save(out / f"{key}.npy", emb.features)
        np.save(out / f"{key}_labels.npy", emb.labels if emb.labels is not None else np.zeros(0))
        saved[key] = len(emb.features)
    return {"saved": saved}


def parity(job: dict) -> dict:
    """The parity gate on this machine, against the reference bundle beside the artifact (export.reference)."""
    from export.backends import load_backend
    from export.reference import check_backend, load_bundle

    bundle = load_bundle(Path(job["artifact"]).parent)
    bundle.entry(Path(job["artifact"]))  # refuse before loading the runtime when the artifact is not in it
    backend = load_backend(job["artifact"], device=job["device"], threads=job["threads"])
    return {"parity": check_backend(backend, bundle).to_dict()}


TASKS = {"timing": timing, "embed": embed, "parity": parity}


def main(argv: list[str] | None = None) -> int:
    from distill.core.errors import EdgeDistillError

    job = json.loads(Path((argv or sys.argv[1:])[0]).read_text())
    try:
        result = {"ok": True, **TASKS[job["task"]](job)}
    except Exception as exc:  # reported as this backend's error; the benchmark goes on
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        result = {"ok": False, "error": text if isinstance(exc, EdgeDistillError) else f"{type(exc).__name__}: {text}",
                  "traceback": traceback.format_exc(limit=3)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
