"""Retrieval at scale: flat, IVF-flat, HNSW and IVF-PQ over up to a million vectors on this machine.

The vectors are real student embeddings (an index folder's ``embeddings.npy``, e.g. CIFAR-10 train embedded by
the exported student), extended to ``--n`` by adding Gaussian noise to randomly drawn real vectors and
normalising again: each synthetic vector is a real one moved by ``--noise`` times the typical distance to its
nearest real neighbour, so the collection keeps the real data's cluster structure (uniform random vectors would
make every index look bad, docs/RETRIEVAL.md). Queries are other real embeddings (``--queries``, an index
folder of query images embedded by the same model), never in the database.

Per index: build time, serialised size (what ``retrieve`` loads), peak RSS growth while building, single-query
search latency p50/p99 over ``--latency-queries`` queries, recall@10 against exact search, and the query
latency a user sees: the model's own single-image embedding p50 (``--embed-ms``, from the in-domain table) plus
the search p50.

  python -m tools.scale_study --base runs/showcase/study/MODEL-flat --queries runs/showcase/q --n 1000000
"""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

from distill.core.atomic import atomic_write_json, write_between_markers
from distill.core.cli import positive_int, script, tool_parser
from distill.core.embeddings import l2_normalize
from distill.core.errors import DataError
from retrieval_demo.auto import approximate_neighbours, exact_neighbours, mean_recall
from retrieval_demo.kinds import build_faiss, set_search_params
from retrieval_demo.params import IndexParams


def extend(real: np.ndarray, n: int, noise: float, seed: int = 0) -> np.ndarray:
    """``n`` unit vectors: all of ``real`` plus noisy copies of random real vectors (see the module docstring)."""
    import faiss

    rng = np.random.default_rng(seed)
    real = l2_normalize(real)
    probe = real[rng.choice(len(real), size=min(2000, len(real)), replace=False)]
    flat = faiss.IndexFlatIP(real.shape[1])
    flat.add(real)
    sims, _ = flat.search(probe, 2)
    nn_dist = float(np.median(np.sqrt(np.maximum(0.0, 2 - 2 * sims[:, 1]))))  # typical distance to the nearest
    out = np.empty((n, real.shape[1]), np.float32)
    out[: len(real)] = real
    for start in range(len(real), n, 100_000):
        stop = min(n, start + 100_000)
        base = real[rng.integers(0, len(real), stop - start)]
        step = rng.standard_normal(base.shape).astype(np.float32) * (noise * nn_dist / np.sqrt(real.shape[1]))
        out[start:stop] = l2_normalize(base + step)
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(kind: str, params: IndexParams, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray,
            latency_queries: int, on_disk: np.ndarray | None = None) -> dict:
    """``on_disk``: the vectors memory-mapped from a .npy file, what re-ranking reads (as ``retrieve`` does)."""
    import faiss

    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    index = build_faiss(vectors, params)
    build_s = time.perf_counter() - t0
    set_search_params(index, params)
    size = len(faiss.serialize_index(index))

    recall = mean_recall(truth, approximate_neighbours(index, queries, 10, params.rerank, on_disk))
    times = []
    for q in queries[:latency_queries]:
        t = time.perf_counter()
        approximate_neighbours(index, q[None], 10, params.rerank, on_disk)
        times.append((time.perf_counter() - t) * 1000)
    return {"kind": kind, "params": {k: v for k, v in vars(params).items() if v is not None},
            "build_s": round(build_s, 1), "index_mb": round(size / 1e6, 1), "bytes_per_vector": round(size / len(vectors), 1),
            "rss_growth_mb": round(peak_rss_mb() - rss0, 1), "search_p50_ms": round(float(np.percentile(times, 50)), 3),
            "search_p99_ms": round(float(np.percentile(times, 99)), 3), "recall@10": round(recall, 4)}


CONFIGS = {
    "flat": IndexParams(kind="flat"),
    "ivf": IndexParams(kind="ivf", nprobe=16),
    "hnsw": IndexParams(kind="hnsw", m=32, ef_search=64),
    "ivfpq16": IndexParams(kind="ivfpq", pq_m=16, nprobe=32),
    "ivfpq16-opq": IndexParams(kind="ivfpq", pq_m=16, nprobe=32, opq=True),
    "ivfpq32": IndexParams(kind="ivfpq", pq_m=32, nprobe=32),
    "ivfpq16-rerank": IndexParams(kind="ivfpq", pq_m=16, nprobe=32, rerank=100),
    "ivfpq16-rerank300": IndexParams(kind="ivfpq", pq_m=16, nprobe=64, rerank=300),
}


def render(rows: list[dict], meta: dict) -> str:
    flat_mb = next((r["index_mb"] for r in rows if r["kind"] == "flat"), None)
    about = (f"{meta['n']:,} vectors of {meta['dim']} dimensions ({meta['real']:,} real, the rest real + noise "
             f"{meta['noise']} x the median nearest-neighbour distance), {meta['queries']:,} real queries, latency "
             f"over {meta['latency_queries']} single queries; embedding p50 {meta['embed_ms']} ms; {meta['machine']}.")
    header = ("| index | build s | index MB | x flat's | bytes/vector | search p50 ms | search p99 ms | query p50 ms "
              "(embed + search) | recall@10 vs exact |")
    lines = [f"Command: `{meta['command']}`", "", about, "", header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        knob = {"ivf": f"nprobe {r['params'].get('nprobe')}", "hnsw": f"M 32, efSearch {r['params'].get('ef_search')}",
                "ivfpq": f"PQ{r['params'].get('pq_m')}{', OPQ' if r['params'].get('opq') else ''}, nprobe "
                         f"{r['params'].get('nprobe')}"}.get(r["params"]["kind"], "exact")
        if r["params"].get("rerank"):
            knob += f", top {r['params']['rerank']} re-ranked from disk"
        ratio = f"{r['index_mb'] / flat_mb:.2f}" if flat_mb and r["index_mb"] else "-"
        lines.append(f"| {r['kind']} ({knob}) | {r['build_s']} | {r['index_mb']} | {ratio} | {r['bytes_per_vector']} | "
                     f"{r['search_p50_ms']} | {r['search_p99_ms']} | {meta['embed_ms'] + r['search_p50_ms']:.2f} | "
                     f"{r['recall@10']} |")
    return "\n".join(lines) + "\n"


@script("tools.scale_study")
def main(argv: list[str] | None = None) -> int:
    p = tool_parser("python -m tools.scale_study", __doc__)
    p.add_argument("--base", required=True, help="an index folder whose embeddings.npy holds the real vectors")
    p.add_argument("--queries", required=True, help="an index folder of query embeddings (same model)")
    p.add_argument("--n", type=positive_int, default=1_000_000)
    p.add_argument("--noise", type=float, default=0.5)
    p.add_argument("--kinds", default=",".join(CONFIGS))
    p.add_argument("--latency-queries", type=positive_int, default=500)
    p.add_argument("--embed-ms", type=float, required=True, help="the model's single-image embedding p50 (ms)")
    p.add_argument("--out", default="runs/scale")
    p.add_argument("--doc", help="write the table between <!-- scale:begin/end --> in this file")
    args = p.parse_args(argv)
    try:
        real = np.load(Path(args.base) / "embeddings.npy")
        queries = l2_normalize(np.load(Path(args.queries) / "embeddings.npy"))
    except OSError as exc:
        raise DataError(f"cannot read embeddings.npy: {exc}") from None
    vectors = extend(real, args.n, args.noise)
    truth = exact_neighbours(vectors, queries, 10)
    on_disk = None
    if any(CONFIGS[kind].rerank for kind in args.kinds.split(",")):
        Path(args.out).mkdir(parents=True, exist_ok=True)
        np.save(Path(args.out) / "vectors.npy", vectors)
        on_disk = np.load(Path(args.out) / "vectors.npy", mmap_mode="r")
    rows = []
    for kind in args.kinds.split(","):
        params = IndexParams(**vars(CONFIGS[kind]))
        rows.append(measure(kind, params, vectors, queries, truth, args.latency_queries, on_disk))
        print(json.dumps(rows[-1]), flush=True)
    import platform

    meta = {"n": args.n, "dim": int(vectors.shape[1]), "real": len(real), "noise": args.noise,
            "queries": len(queries), "latency_queries": args.latency_queries, "embed_ms": args.embed_ms,
            "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores",
            "command": "python -m tools.scale_study " + " ".join(argv or sys.argv[1:])}
    atomic_write_json(Path(args.out) / "scale.json", {"meta": meta, "rows": rows})
    table = render(rows, meta)
    if args.doc:
        write_between_markers(Path(args.doc), "scale", table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
