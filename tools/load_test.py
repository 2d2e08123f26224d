"""A bounded load test of ``edgedistill retrieve serve`` on this machine: N search requests, C at a time, with
a deadline, then the server's own ``/metrics`` read back and checked against what was sent.

The server is started in this process on 127.0.0.1 and a free port (or ``--url`` names one already running, which
must be a loopback address: this tool never sends load to another host). Each request uploads a query image
(``POST /api/search?k=10``); latency is measured at the client, end to end (upload, decode, embed, search, JSON).

  python -m tools.load_test --index runs/demo/index --queries cifar10/test --requests 500 --concurrency 8
"""
from __future__ import annotations

import ipaddress
import json
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from distill.core.atomic import atomic_write_json
from distill.core.cli import positive_int, script, tool_parser
from distill.core.errors import ConfigError

MAX_REQUESTS = 100_000


def check_loopback(url: str) -> None:
    host = urllib.parse.urlparse(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(f"'{url}' is not on this machine; the load test only targets 127.0.0.1 / localhost")


def multipart(image: bytes, name: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def run_load(url: str, images: list[tuple[str, bytes]], requests: int, concurrency: int, max_seconds: float,
             k: int = 10) -> dict:
    """Send ``requests`` searches, ``concurrency`` at a time, stopping early at ``max_seconds``."""
    check_loopback(url)
    if not 1 <= requests <= MAX_REQUESTS or not 1 <= concurrency <= 64:
        raise ConfigError(f"--requests must be 1..{MAX_REQUESTS} and --concurrency 1..64")
    bodies = [multipart(data, name) for name, data in images]
    deadline = time.perf_counter() + max_seconds
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []

    def one(i: int) -> None:
        if time.perf_counter() > deadline:
            return
        body, ctype = bodies[i % len(bodies)]
        req = urllib.request.Request(f"{url}/api/search?k={k}", data=body, headers={"Content-Type": ctype})
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                ok = resp.status == 200 and len(json.loads(resp.read())["results"]) > 0
                why = f"status {resp.status}"
        except Exception as exc:  # a refused connection, a 5xx, a timeout: counted, the test goes on
            ok, why = False, f"{type(exc).__name__}: {exc}"
        with lock:
            (latencies.append(time.perf_counter() - t0) if ok else errors.append(why))

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(requests)))
    wall = time.perf_counter() - t0
    ms = np.array(latencies) * 1000
    sent = len(latencies) + len(errors)
    return {"url": url, "requests": requests, "sent": sent, "ok": len(latencies), "errors": len(errors),
            "first_error": errors[0] if errors else None, "concurrency": concurrency, "wall_s": round(wall, 3),
            "requests_per_s": round(sent / wall, 1) if wall else None, "stopped_by_deadline": sent < requests,
            **({f"p{q}_ms": round(float(np.percentile(ms, q, method="higher")), 2) for q in (50, 90, 99)}
               if len(ms) else {}), "max_ms": round(float(ms.max()), 2) if len(ms) else None}


def read_metrics(url: str) -> dict[str, float]:
    """The counters of ``GET /metrics`` whose route is /api/search, by status."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    counts = {}
    for line in text.splitlines():
        if line.startswith("edgedistill_requests_total{") and 'route="/api/search"' in line:
            status = line.split('status="')[1].split('"')[0]
            counts[status] = counts.get(status, 0) + float(line.rsplit(" ", 1)[1])
    return counts


class LocalServer:
    """``retrieve serve``'s app on 127.0.0.1 and a free port, in a thread of this process."""

    def __init__(self, index: str) -> None:
        import uvicorn

        from retrieval_demo import create_app

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(create_app(index), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "LocalServer":
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        if not self.server.started:
            raise ConfigError("the server did not start within 60 s")
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def query_images(folder: str, limit: int = 256) -> list[tuple[str, bytes]]:
    from distill.core.images import scan_folder

    scanned = scan_folder(folder, limit)
    return [(Path(p).name, (Path(scanned.root) / p).read_bytes()) for p in scanned.paths]


@script("tools.load_test")
def main(argv: list[str] | None = None) -> int:
    p = tool_parser("python -m tools.load_test", __doc__)
    p.add_argument("--index", help="index folder: serve it here on 127.0.0.1 (or give --url)")
    p.add_argument("--url", help="a running server on this machine, e.g. http://127.0.0.1:8000")
    p.add_argument("--queries", required=True, help="query images (a folder; up to 256 are cycled)")
    p.add_argument("--requests", type=positive_int, default=500)
    p.add_argument("--concurrency", type=positive_int, default=8)
    p.add_argument("--max-seconds", type=float, default=120.0, help="stop sending after this long")
    p.add_argument("-k", type=positive_int, default=10)
    p.add_argument("--out", help="write the JSON report here")
    args = p.parse_args(argv)
    if bool(args.index) == bool(args.url):
        raise ConfigError("give --index (serve it here) or --url (a running server), not both")
    images = query_images(args.queries)

    def measure(url: str) -> dict:
        before = read_metrics(url)
        result = run_load(url, images, args.requests, args.concurrency, args.max_seconds, args.k)
        after = read_metrics(url)
        result["server_counted"] = {s: after.get(s, 0) - before.get(s, 0) for s in after}
        return result

    if args.url:
        result = measure(args.url.rstrip("/"))
    else:
        with LocalServer(args.index) as server:
            result = measure(server.url)
    if args.out:
        atomic_write_json(args.out, result)
    print(json.dumps(result))
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
