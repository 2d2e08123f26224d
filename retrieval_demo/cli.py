"""Index an image folder with an exported model and search it: from the command line or a web page.

Examples:
  edgedistill retrieve index --model runs/seed/export/student-onnx-fp32.onnx --images photos/ --out photos.index
  edgedistill retrieve index --model ... --images photos/ --out photos.index --add     (new images only)
  edgedistill retrieve search --index photos.index query.jpg -k 5
  edgedistill retrieve serve --index photos.index                          (http://127.0.0.1:8000)
  edgedistill retrieve eval --index photos.index --queries labelled_queries/ -k 1,5,10
"""
from __future__ import annotations

import argparse

from distill.core.cli import add_json_flag, fraction, nonnegative_int, positive_int, positive_ints
from distill.core.errors import ConfigError
from retrieval_demo.kinds import kinds_help

HELP = "index an image folder with an exported model; search it from the command line or a web page"
DEVICE_HELP = ("cpu, or cuda[:N]: search a copy of the index on that GPU (flat and IVF indexes; needs the gpu extra, "
               "faiss-gpu)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    raw = argparse.RawDescriptionHelpFormatter
    idx = sub.add_parser("index", help="embed a folder and build a faiss index", formatter_class=raw,
                         description="Embed every image under --images with an exported model and write a faiss index "
                                     "folder (index.faiss, embeddings, paths, manifest).\n\nExamples:\n"
                                     "  edgedistill retrieve index --model student.onnx --images photos/ --out "
                                     "photos.index\n"
                                     "  edgedistill retrieve index --model student.onnx --images photos/ --out "
                                     "photos.index "
                                     "--add\n"
                                     "  edgedistill retrieve index --model student.onnx --images photos/ --out "
                                     "big.index "
                                     "--index auto --max-memory 2GiB")
    idx.add_argument("--model", required=True, metavar="ARTIFACT", help=".onnx, .xml, .engine or student.pt")
    idx.add_argument("--images", required=True, metavar="DIR", help="the images to index (searched recursively)")
    idx.add_argument("--out", required=True, metavar="INDEX_DIR", help="the index folder to write")
    idx.add_argument("--index", default="flat", metavar="KIND",
                     help=f"{kinds_help()}, or auto (chosen from the number of vectors and --max-memory, tuned to "
                          "--target-recall)")
    idx.add_argument("--max-memory", metavar="SIZE", help="auto: the index's memory budget, e.g. 512MB or 2GiB "
                     "(default: half the available memory)")
    idx.add_argument("--target-recall", type=fraction, default=0.9, metavar="R",
                     help="auto: recall@10 against exact search to reach (default 0.9)")
    idx.add_argument("--nlist", type=positive_int, metavar="N", help="IVF lists (default ~4 sqrt(N))")
    idx.add_argument("--nprobe", type=positive_int, default=8, metavar="N", help="IVF lists searched (saved as "
                                                                                 "default)")
    idx.add_argument("--m", type=positive_int, default=32, metavar="N", help="HNSW neighbours per node")
    idx.add_argument("--ef-search", type=positive_int, default=64, metavar="N", help="HNSW search beam (saved as "
                                                                                     "default)")
    idx.add_argument("--pq-m", type=positive_int, metavar="M", help="ivfpq: bytes per vector (divides the dim; "
                                                                    "default D/20)")
    idx.add_argument("--pq-bits", type=positive_int, default=8, metavar="B", help="ivfpq: bits per code (default 8)")
    idx.add_argument("--opq", action="store_true", help="ivfpq: learn an OPQ rotation before quantising")
    idx.add_argument("--rerank", type=nonnegative_int, default=0, metavar="N",
                     help="re-rank the top N candidates by exact cosine against embeddings.npy, memory-mapped "
                          "(for ivfpq: the codes' small RAM with the raw vectors' ordering; auto sets 100 for ivfpq)")
    idx.add_argument("--batch-size", type=positive_int, default=64, metavar="N", help="images per model call "
                     "(default 64)")
    idx.add_argument("--workers", type=nonnegative_int, default=2, metavar="N", help="image-decoding threads "
                     "(default 2)")
    idx.add_argument("--add", action="store_true",
                     help="bring an existing index up to date (same model only): embed new images, re-embed changed "
                          "ones (size or mtime), drop removed ones; unchanged images are not re-embedded")
    idx.add_argument("--overwrite", action="store_true",
                     help="replace an existing index at --out (the old one stays whole until the new one is complete)")
    add_json_flag(idx)

    s = sub.add_parser("search", help="ranked neighbours of query images", formatter_class=raw,
                       description="The k nearest indexed images (cosine) of each query image.\n\nExamples:\n"
                                   "  edgedistill retrieve search --index photos.index query.jpg -k 5\n"
                                   "  edgedistill retrieve search --index photos.index a.jpg b.jpg --json\n"
                                   "  edgedistill retrieve search --index big.index q.jpg --nprobe 32 --mmap")
    s.add_argument("--index", required=True, metavar="INDEX_DIR", help="an index folder from retrieve index")
    s.add_argument("--mmap", action="store_true", help="map the index file instead of reading it (IVF lists stay on "
                                                       "disk)")
    s.add_argument("images", nargs="+", metavar="IMAGE", help="query image file(s)")
    s.add_argument("-k", type=positive_int, default=10, metavar="N", help="neighbours per query (default 10)")
    s.add_argument("--nprobe", type=positive_int, metavar="N", help="IVF lists searched (default: the index's)")
    s.add_argument("--ef-search", type=positive_int, metavar="N", help="HNSW search beam (default: the index's)")
    s.add_argument("--device", default="cpu", help=DEVICE_HELP)
    add_json_flag(s)

    v = sub.add_parser("serve", help="the search web page and JSON API", formatter_class=raw,
                       description="A search page (upload or pick an image, see its neighbours) and a JSON API "
                                   "(/api/search), served from the index on this machine.\n\nExamples:\n"
                                   "  edgedistill retrieve serve --index photos.index                "
                                   "(http://127.0.0.1:8000)\n"
                                   "  edgedistill retrieve serve --index photos.index --host 0.0.0.0 --port 8080")
    v.add_argument("--index", required=True, metavar="INDEX_DIR", help="an index folder from retrieve index")
    v.add_argument("--mmap", action="store_true", help="map the index file instead of reading it (IVF lists stay on "
                                                       "disk)")
    v.add_argument("--host", default="127.0.0.1", help="bind address (default: this machine only)")
    v.add_argument("--port", type=positive_int, default=8000, metavar="N", help="port (default 8000)")
    add_json_flag(v)

    e = sub.add_parser("eval", help="precision@k, recall@k and mAP with class folders as labels", formatter_class=raw,
                       description="Retrieval quality of an index: each query image (its class folder is its label) "
                                   "searched, precision@k, recall@k and mAP against the indexed images' classes; "
                                   "for an approximate index also recall against exact search.\n\nExamples:\n"
                                   "  edgedistill retrieve eval --index photos.index --queries labelled/ -k 1,5,10\n"
                                   "  edgedistill retrieve eval --index big.index --queries labelled/ --nprobe 64 "
                                   "--device cuda")
    e.add_argument("--index", required=True, metavar="INDEX_DIR", help="an index folder from retrieve index")
    e.add_argument("--mmap", action="store_true", help="map the index file instead of reading it (IVF lists stay on "
                                                       "disk)")
    e.add_argument("--queries", required=True, metavar="DIR", help="labelled query images (DIR/<class>/<image>)")
    e.add_argument("-k", type=positive_ints, default=(1, 5, 10), metavar="1,5,10", help="the k of precision@k "
                   "and recall@k (default 1,5,10)")
    e.add_argument("--nprobe", type=positive_int, metavar="N", help="IVF lists searched (default: the index's)")
    e.add_argument("--ef-search", type=positive_int, metavar="N", help="HNSW search beam (default: the index's)")
    e.add_argument("--limit", type=positive_int, metavar="N", help="class-balanced subset of the queries")
    e.add_argument("--workers", type=nonnegative_int, default=2, metavar="N", help="image-decoding threads "
                   "(default 2)")
    e.add_argument("--device", default="cpu", help=DEVICE_HELP)
    add_json_flag(e)


def run(args: argparse.Namespace) -> dict:
    if args.action == "index":
        from retrieval_demo.auto import parse_bytes
        from retrieval_demo.params import IndexParams
        from retrieval_demo.store import build_index

        if args.index != "auto" and args.max_memory:
            raise ConfigError("--max-memory goes with --index auto")
        params = IndexParams(kind=args.index, nlist=args.nlist, m=args.m, nprobe=args.nprobe, ef_search=args.ef_search,
                             pq_m=args.pq_m, pq_bits=args.pq_bits, opq=args.opq, target_recall=args.target_recall,
                             rerank=args.rerank,
                             max_memory=parse_bytes(args.max_memory) if args.max_memory else None)
        if args.add and args.overwrite:
            raise ConfigError("--add extends the index at --out and --overwrite replaces it; use one of them")
        return build_index(args.model, args.images, args.out, params, batch_size=args.batch_size, add=args.add,
                           workers=args.workers, overwrite=args.overwrite)
    if args.action == "search":
        from retrieval_demo.search import Searcher

        searcher = Searcher(args.index, mmap=args.mmap, device=args.device)
        result = searcher.search_files(args.images, args.k, nprobe=args.nprobe, ef_search=args.ef_search)
        result["queries"] = list(args.images)
        return result
    if args.action == "eval":
        from retrieval_demo.metrics import evaluate_index
        from retrieval_demo.store import ImageIndex

        index = ImageIndex(args.index, mmap=args.mmap, device=args.device)
        return evaluate_index(index, args.queries, args.k, nprobe=args.nprobe,
                              ef_search=args.ef_search, limit=args.limit, workers=args.workers)
    from retrieval_demo.server import serve

    serve(args.index, args.host, args.port, mmap=args.mmap)
    return {"served": args.index}


def format_result(result: dict) -> str:
    from distill.core.images import display_path

    if "results" in result:
        lines = []
        for query, rows in zip(result.get("queries", []), result["results"]):
            lines.append(f"{display_path(query)}:")
            lines += [f"  {i + 1:>3}. {r['score']:.4f}  {display_path(r['path'])}" for i, r in enumerate(rows)]
        lines.append(f"embedding {result['embed_ms']:.2f} ms, search {result['search_ms']:.2f} ms")
        return "\n".join(lines)
    if "num_images" in result and "seconds" in result:
        changes = (f", {result['num_changed']} re-embedded, {result['num_removed']} removed"
                   if result.get("num_changed") or result.get("num_removed") else "")
        return (f"indexed {result['num_added']} new images{changes} ({result['num_images']} in all, "
                f"{result['num_skipped']} unreadable skipped), dim {result['dim']}, {result['index']} index, "
                f"{result.get('bytes_per_vector', '?')} bytes a vector, {result['seconds']:.1f} s -> {result['out']}")
    if "map" in result:
        keys = [k for k in result if k.startswith(("precision@", "recall@"))] + ["map"]
        return (
            "\n".join(f"{k:>22}: {result[k]:.4f}" if isinstance(result[k], float) else f"{k:>22}: -" for k in keys)
            + f"\n{result['num_queries']} queries, {result['num_indexed']} indexed, {result['index']} index"
        )
    return str(result)
