"""The search web page and its JSON API (FastAPI).

    GET  /                      the page: upload an image or pick an indexed one at random; top-k thumbnails
    GET  /api/health            {"status": "ok", "num_images", "model", "index", "dim"}
    POST /api/search?k=10       multipart ``file`` -> {"results": [{"path", "score", "thumb"}], "embed_ms", "search_ms"}
    GET  /api/random?k=10       the same for a random indexed image, plus its "query" path
    GET  /thumb/<path>          a JPEG thumbnail of an indexed file (only inside the indexed root, else 404)
    GET  /metrics               request counts and latency histograms, Prometheus text format (retrieval_demo.telemetry)

Bad requests get a 4xx with a JSON ``detail``; the server never dies of one.
"""

import io
import os
import random
import time
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes

from distill.core.deps import require
from distill.core.errors import ConfigError, DataError
from distill.core.images import UNREADABLE, display_path, load_rgb
from retrieval_demo.search import Searcher
from retrieval_demo.telemetry import RequestMetrics

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_K = 100
THUMB_PX = 160


def _thumb_url(rel: str) -> str:
    """The thumbnail URL of an indexed path: its file-name bytes percent-encoded, so that a name that is not valid
    UTF-8 round-trips (the route reads the raw path back)."""
    return "/thumb/" + quote(os.fsencode(rel))


def create_app(index_dir: str | Path, max_upload_bytes: int = MAX_UPLOAD_BYTES, mmap: bool = False):
    require("fastapi", "demo")
    require("python_multipart", "demo")
    from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

    searcher = Searcher(index_dir, mmap=mmap)
    root = searcher.index.root.resolve()
    indexed = set(searcher.index.paths)
    app = FastAPI(title="edgedistill retrieval", docs_url="/api/docs", redoc_url=None)
    metrics = RequestMetrics({"index_vectors": len(searcher.index), "index_dim": searcher.index.manifest["dim"]})
    app.state.metrics = metrics

    @app.middleware("http")
    async def _observe(request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.observe(request.method, getattr(route, "path", "unmatched"), response.status_code,
                        time.perf_counter() - t0)
        return response

    @app.get("/metrics", response_class=PlainTextResponse)
    def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")
    page = files("retrieval_demo").joinpath("static/index.html").read_text()

    def _respond(result: dict, query: str | None = None) -> dict:
        rows = result["results"][0]
        for r in rows:
            r["thumb"], r["path"] = _thumb_url(r["path"]), display_path(r["path"])
        out = {"results": rows, "embed_ms": result["embed_ms"], "search_ms": result["search_ms"]}
        if query is not None:
            out.update(query=display_path(query), query_thumb=_thumb_url(query))
        return out

    @app.exception_handler(Exception)
    async def _unexpected(request, exc):  # a bug answers 500 and the server keeps serving
        return JSONResponse(status_code=500, content={"detail": f"{type(exc).__name__}: {exc}"})

    @app.get("/", response_class=HTMLResponse)
    def index_page() -> str:
        return page

    @app.get("/api/health")
    def health() -> dict:
        m = searcher.index.manifest
        return {"status": "ok", "num_images": len(searcher.index), "model": Path(m["model"]["path"]).name,
                "runtime": m["model"]["runtime"], "precision": m["model"]["precision"], "index": m["params"]["kind"],
                "dim": m["dim"]}

    @app.post("/api/search")
    def search(file: UploadFile = File(...), k: int = Query(10, ge=1, le=MAX_K)) -> dict:
        data = file.file.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise HTTPException(413, f"upload larger than {max_upload_bytes // (1024 * 1024)} MB")
        if not data:
            raise HTTPException(400, "empty upload: send an image file in the multipart field 'file'")
        try:
            decoded = searcher.decode(io.BytesIO(data))
        except DataError:
            raise HTTPException(
                415, f"'{file.filename}' is not a readable image; upload a JPEG, PNG, WebP or BMP"
            ) from None
        return _respond(searcher.search([decoded], k))

    @app.get("/api/random")
    def random_query(k: int = Query(10, ge=1, le=MAX_K)) -> dict:
        rel = random.choice(searcher.index.paths)
        try:
            decoded = searcher.decode(root / rel)
        except DataError:
            raise HTTPException(404, f"indexed image '{rel}' is no longer readable") from None
        return _respond(searcher.search([decoded], k), query=rel)

    @lru_cache(maxsize=4096)
    def _thumbnail(rel: str) -> bytes:
        img = load_rgb(root / rel)
        img.thumbnail((THUMB_PX, THUMB_PX))
        if max(img.size) < THUMB_PX // 2:  # tiny images (CIFAR) are enlarged so that they can be seen
            scale = THUMB_PX // max(img.size)
            img = img.resize((img.width * scale, img.height * scale), resample=0)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=85)
        return buf.getvalue()

    @app.get("/thumb/{rel:path}")
    def thumb(rel: str, request: Request):
        raw = request.scope.get("raw_path")  # the exact bytes: a file name need not be UTF-8
        if raw:
            rel = os.fsdecode(unquote_to_bytes(raw.decode("ascii", "replace").split("?")[0].removeprefix("/thumb/")))
        # only what the index holds, by its own relative path (no resolving: a symlinked class folder is fine, and
        # no other path, ".." included, is in the set)
        if rel not in indexed or not (root / rel).is_file():
            raise HTTPException(404, "not an indexed image")
        try:
            data = _thumbnail(rel)
        except UNREADABLE:
            raise HTTPException(404, "indexed image is no longer readable") from None
        return Response(content=data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    return app


def check_port(host: str, port: int) -> None:
    """Refuse a port that is taken before the server starts (uvicorn would log it and exit 3)."""
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port or stop the program that holds it"
        ) from None


def serve(index_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, mmap: bool = False) -> None:
    uvicorn = require("uvicorn", "demo")
    app = create_app(index_dir, mmap=mmap)
    check_port(host, port)
    print(f"serving {index_dir} on http://{host}:{port}  (Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
