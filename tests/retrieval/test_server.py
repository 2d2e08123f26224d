"""The web API through FastAPI's test client, and the page in a real headless Chromium."""
import io

import pytest
from PIL import Image

from retrieval_demo import create_app

fastapi = pytest.importorskip("fastapi", reason="the demo extra is not installed (pip install 'edgedistill[demo]')")
from fastapi.testclient import TestClient  # noqa: E402


@pytest.fixture(scope="module")
def client(flat_index):
    return TestClient(create_app(flat_index, max_upload_bytes=200_000))


def _png(color=(220, 40, 40), size=(40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def test_health(client):
    h = client.get("/api/health").json()
    assert h["status"] == "ok" and h["num_images"] == 24 and h["index"] == "flat" and h["dim"] == 512


def test_search_returns_k_ranked_results_with_thumbnails(client):
    r = client.post("/api/search?k=5", files={"file": ("q.png", _png(), "image/png")})
    assert r.status_code == 200
    body = r.json()
    assert len(body["results"]) == 5 and body["embed_ms"] > 0 and body["search_ms"] > 0
    scores = [x["score"] for x in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert body["results"][0]["path"].startswith("red/")  # a red query finds red images
    thumb = client.get(body["results"][0]["thumb"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size[0] >= 80


def test_random_query(client):
    body = client.get("/api/random?k=3").json()
    assert len(body["results"]) == 3 and body["results"][0]["path"] == body["query"]


@pytest.mark.parametrize("payload,status", [(b"definitely not an image", 415), (b"", 400), (b"\0" * 300_000, 413)])
def test_bad_uploads_get_a_clear_4xx(client, payload, status):
    r = client.post("/api/search", files={"file": ("x.png", payload, "image/png")})
    assert r.status_code == status and r.json()["detail"]
    assert client.get("/api/health").status_code == 200  # still serving


def test_missing_file_field_and_bad_k_are_422(client):
    assert client.post("/api/search").status_code == 422
    assert client.post("/api/search?k=0", files={"file": ("q.png", _png(), "image/png")}).status_code == 422


@pytest.mark.parametrize("path", ["/thumb/../../../../etc/passwd", "/thumb/%2e%2e/%2e%2e/etc/passwd",
                                  "/thumb//etc/passwd", "/thumb/red/does-not-exist.png", "/thumb/red"])
def test_thumbnails_only_inside_the_indexed_root(client, path):
    assert client.get(path).status_code == 404


def test_page_is_served(client):
    r = client.get("/")
    assert r.status_code == 200 and 'id="file"' in r.text and "/api/search" in r.text


@pytest.mark.browser
def test_browser_uploads_an_image_and_sees_k_thumbnails(flat_index, gallery, tmp_path):
    """Headless Chromium opens the page, uploads a query, and waits until k thumbnails have loaded."""
    from PIL import Image as PILImage

    from tools.retrieval_screenshot import screenshot

    query = next((gallery / "queries" / "blue").iterdir())
    png = screenshot(str(flat_index), str(query), str(tmp_path / "page.png"), k=6, width=900, height=700)
    with PILImage.open(png) as shot:
        assert shot.size[0] >= 800
        colours = shot.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # thumbnails drawn, not a blank page


def test_metrics_count_requests_in_prometheus_text(flat_index):
    client = TestClient(create_app(flat_index))
    for _ in range(3):
        assert client.post("/api/search?k=2", files={"file": ("q.png", _png(), "image/png")}).status_code == 200
    assert client.post("/api/search", files={"file": ("x.png", b"nope", "image/png")}).status_code == 415
    client.get("/thumb/red/0.png")
    text = client.get("/metrics").text
    assert 'edgedistill_requests_total{method="POST",route="/api/search",status="200"} 3' in text
    assert 'edgedistill_requests_total{method="POST",route="/api/search",status="415"} 1' in text
    assert 'route="/thumb/{rel:path}"' in text and "red/0.png" not in text  # route templates, bounded series
    assert 'edgedistill_request_duration_seconds_count{route="/api/search"} 4' in text
    assert 'edgedistill_request_duration_seconds_bucket{route="/api/search",le="+Inf"} 4' in text
    assert "edgedistill_index_vectors 24" in text


def test_bounded_load_test_on_loopback(flat_index, gallery):
    from tools.load_test import LocalServer, query_images, read_metrics, run_load

    images = query_images(str(gallery / "queries"))
    with LocalServer(str(flat_index)) as server:
        assert server.url.startswith("http://127.0.0.1:")
        result = run_load(server.url, images, requests=40, concurrency=4, max_seconds=60)
        counted = read_metrics(server.url)
    assert result["sent"] == result["ok"] == 40 and result["errors"] == 0 and not result["stopped_by_deadline"]
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert counted == {"200": 40.0}


@pytest.mark.parametrize("url", ["http://10.0.0.5:8000", "http://example.com", "http://192.168.1.2"])
def test_load_test_refuses_other_hosts(url):
    from distill.core.errors import ConfigError
    from tools.load_test import run_load

    with pytest.raises(ConfigError, match="127.0.0.1"):
        run_load(url, [("q.png", _png())], requests=1, concurrency=1, max_seconds=1)


def test_load_test_is_bounded_in_time(flat_index, gallery):
    from tools.load_test import LocalServer, query_images, run_load

    with LocalServer(str(flat_index)) as server:
        result = run_load(server.url, query_images(str(gallery / "queries")), requests=100_000, concurrency=2,
                          max_seconds=1.0)
    assert result["stopped_by_deadline"] and result["sent"] < 100_000 and result["wall_s"] < 30
