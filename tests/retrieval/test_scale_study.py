"""tools.scale_study: the extension of real embeddings to a large collection, and one small study end to end."""
import json

import numpy as np

from tests.retrieval.test_auto import clustered
from tools.scale_study import extend, main


def test_extension_keeps_the_real_vectors_and_their_neighbourhoods():
    real = clustered(500, 16)
    out = extend(real, 2000, noise=0.5)
    assert out.shape == (2000, 16) and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    assert np.allclose(out[:500], real, atol=1e-6)
    nearest_real = (out[500:] @ real.T).max(1)  # each synthetic vector sits near a real one, not anywhere
    uniform = np.random.default_rng(1).standard_normal((1500, 16))
    uniform /= np.linalg.norm(uniform, axis=1, keepdims=True)
    assert np.median(nearest_real) > np.median((uniform @ real.T).max(1)) + 0.05


def test_small_study_writes_its_table(tmp_path):
    base, queries = tmp_path / "base", tmp_path / "queries"
    base.mkdir()
    queries.mkdir()
    np.save(base / "embeddings.npy", clustered(3000, 16))
    np.save(queries / "embeddings.npy", clustered(100, 16, seed=5))
    doc = tmp_path / "doc.md"
    assert main(["--base", str(base), "--queries", str(queries), "--n", "12000", "--kinds", "flat,ivf,hnsw",
                 "--latency-queries", "20", "--embed-ms", "1.0", "--out", str(tmp_path / "out"), "--doc", str(doc)]) == 0
    rows = json.loads((tmp_path / "out" / "scale.json").read_text())["rows"]
    assert [r["kind"] for r in rows] == ["flat", "ivf", "hnsw"] and rows[0]["recall@10"] == 1.0
    assert all(0 < r["recall@10"] <= 1 and r["search_p50_ms"] > 0 for r in rows)
    assert "<!-- scale:begin -->" in doc.read_text() and "| flat (exact) |" in doc.read_text()
