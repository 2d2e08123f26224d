"""``--index auto``: the choice under a memory budget, the recall it measures and tunes, and the built size."""
import faiss
import numpy as np
import pytest

from distill.core.errors import ConfigError
from retrieval_demo import ImageIndex, IndexParams, build_index
from retrieval_demo.auto import choose_index, estimate_bytes, parse_bytes, recall_at_k, tune_recall
from retrieval_demo.kinds import build_faiss
from retrieval_demo.store import build_measured


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((50, dim))
    x = centers[rng.integers(0, 50, n)] + 0.5 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_parse_bytes():
    assert parse_bytes("512MB") == 512 * 10**6 and parse_bytes("2GiB") == 2 * 2**30 and parse_bytes("300k") == 300_000
    for bad in ("lots", "12XB", "-5MB", "0"):
        with pytest.raises(ConfigError):
            parse_bytes(bad)


@pytest.mark.parametrize("n,dim,budget,kind", [
    (20_000, 64, 10**9, "flat"),  # small and fits: exact
    (1_000_000, 64, 10**9, "hnsw"),  # 256 MB of vectors + 270 MB of graph fit 1 GB
    (1_000_000, 64, 300 * 10**6, "ivf"),  # HNSW does not fit, the raw vectors do
    (1_000_000, 1280, 512 * 10**6, "ivfpq"),  # 5 GB of floats: only codes fit
])
def test_choice_follows_the_budget(n, dim, budget, kind):
    choice = choose_index(n, dim, budget)
    assert choice.kind == kind and choice.estimated_bytes <= budget and choice.reason
    if kind == "ivfpq":
        assert dim % choice.pq_m == 0 and estimate_bytes("ivfpq", n, dim, choice.pq_m * 2) > budget or \
            choice.pq_m * 2 > dim // 2  # the largest code that fits


def test_a_budget_nothing_fits_names_the_smallest():
    with pytest.raises(ConfigError, match="raise --max-memory"):
        choose_index(1_000_000, 64, 10**6)


@pytest.mark.parametrize("budget,kind", [(10**9, "flat"), (400_000, "ivfpq")])
def test_built_index_fits_its_budget_and_reaches_the_recall(budget, kind):
    # 10,000 x 16: flat 640 kB; under 100,000 vectors HNSW and IVF-flat are larger than flat, so a budget below
    # flat's size leaves the compressed codes (8 bytes a vector here)
    vectors = clustered(10_000, 16)
    params = IndexParams(kind="auto", max_memory=budget, target_recall=0.9)
    index, recall, auto, params = build_measured(vectors, params)
    assert params.kind == auto["chosen"] == kind and len(faiss.serialize_index(index)) <= budget
    if kind == "flat":
        assert recall is None and "trials" not in auto
    else:
        assert recall == pytest.approx(auto["trials"][-1]["recall@10"], abs=1e-4)
        assert params.rerank == 300 and recall == pytest.approx(recall_at_k(index, vectors, rerank=300), abs=1e-9)
        # product quantisation may cap recall below the target: then the last doubling stopped helping
        trials = auto["trials"]
        assert recall >= 0.9 or (len(trials) > 1 and trials[-1]["recall@10"] - trials[-2]["recall@10"] < 0.002)


def test_tuning_raises_the_effort_until_the_target():
    vectors = clustered(8_000, 32)
    params = IndexParams(kind="ivf", nlist=64, nprobe=1)
    index = build_faiss(vectors, params)
    recall, trials, params = tune_recall(index, vectors, params, target=0.98)
    assert trials[0]["nprobe"] == 1 and len(trials) > 1 and params.nprobe > 1
    assert recall >= 0.98 and trials[0]["recall@10"] < recall


def test_cli_auto_records_its_choice(tmp_path, onnx_model, gallery):
    out = tmp_path / "auto"
    result = build_index(onnx_model, str(gallery / "gallery"), str(out), IndexParams(kind="auto", max_memory=10**8),
                         workers=0)
    manifest = ImageIndex(out).manifest
    assert result["index"] == "flat" and manifest["params"]["kind"] == "flat" and manifest["auto"]["chosen"] == "flat"
    assert manifest["recall@10"] == 1.0 and manifest["auto"]["max_memory"] == 10**8
    assert manifest["index_bytes"] <= 10**8


def test_rerank_restores_the_exact_order_of_the_candidates():
    from retrieval_demo.store import rerank_exact

    vectors = clustered(10_000, 16, seed=2)
    q = clustered(50, 16, seed=3)
    params = IndexParams(kind="ivfpq", pq_m=4, nprobe=16)
    index = build_faiss(vectors, params)
    from retrieval_demo.kinds import set_search_params

    set_search_params(index, params)
    plain = recall_at_k(index, vectors, rerank=0)
    reranked = recall_at_k(index, vectors, rerank=100)
    assert reranked > plain + 0.1 and reranked > 0.8  # 4-byte codes cannot order near neighbours; exact scores can
    _, cand = index.search(q, 100)
    scores, ids = rerank_exact(vectors, q, cand, 10)
    exact = (vectors[ids] * q[:, None, :]).sum(-1)
    assert np.allclose(scores, exact, atol=1e-5) and (np.diff(scores, axis=1) <= 1e-7).all()
    assert all(set(row) <= set(c) for row, c in zip(ids, cand))


def test_an_index_with_rerank_searches_from_disk(tmp_path, onnx_model, gallery):
    out = tmp_path / "rr"
    build_index(onnx_model, str(gallery / "gallery"), str(out), IndexParams(kind="hnsw", m=8, rerank=20), workers=0)
    index = ImageIndex(out)
    assert index.params.rerank == 20 and index.manifest["recall@10"] == 1.0
    scores, paths = index.search(index.embeddings()[:3], 5)
    assert [row[0] for row in paths] == index.paths[:3] and scores.shape == (3, 5)
    assert isinstance(index.vectors_on_disk(), np.memmap)


def test_bad_index_flags_are_one_line(tmp_path, onnx_model, gallery):
    from tests.conftest import run_cli

    for flags, needle in ((["--index", "auto", "--max-memory", "lots"], "cannot read 'lots' as a size"),
                          (["--index", "hnsw", "--rerank", "-3"], "argument --rerank: expected a whole number of 0"),
                          (["--index", "flat", "--max-memory", "1GB"], "--max-memory goes with --index auto")):
        proc = run_cli("distill", "retrieve", "index", "--model", str(onnx_model), "--images",
                       str(gallery / "gallery"), "--out", str(tmp_path / "i"), "--workers", "0", *flags)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert needle in proc.stderr.strip().splitlines()[-1]
