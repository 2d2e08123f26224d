"""An index kind is one row of retrieval_demo.kinds.INDEX_KINDS: a fake row (IVF with 8-bit scalar-quantised
vectors, a real faiss index the project does not ship) goes through build, save, load, search, evaluation, the
command line, auto's estimate, the GPU refusal and the tuning loop with nothing else changed."""
import numpy as np
import pytest

from distill.core.errors import ConfigError
from retrieval_demo import ImageIndex, IndexParams, Searcher, build_index, evaluate_index
from retrieval_demo.auto import estimate_bytes, tune_recall
from retrieval_demo.kinds import INDEX_KINDS, IndexKind, build_faiss, default_nlist, index_kind


def _ivf_sq8(vectors, params):
    import faiss

    nlist = params.nlist or default_nlist(len(vectors))
    index = faiss.index_factory(vectors.shape[1], f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
    index.train(np.ascontiguousarray(vectors))
    return index


FAKE = IndexKind("fake-ivfsq8", "IVF over 8-bit scalar-quantised vectors", _ivf_sq8,
                 lambda n, dim, pq_m: n * (dim + 8) + default_nlist(n) * dim * 4, knob="nprobe", uses_nlist=True)


@pytest.fixture
def fake_kind(monkeypatch):
    monkeypatch.setitem(INDEX_KINDS, FAKE.name, FAKE)
    return FAKE


def test_a_row_is_enough_for_build_search_and_eval(fake_kind, tmp_path, onnx_model, gallery):
    out = tmp_path / "fake"
    built = build_index(onnx_model, str(gallery / "gallery"), str(out), IndexParams(kind=fake_kind.name), workers=0)
    index = ImageIndex(out)
    assert built["index"] == fake_kind.name == index.params.kind and index.params.nlist == 1  # recorded once built
    assert 0 < index.manifest["bytes_per_vector"] < 4 * index.manifest["dim"]  # one byte a dimension, plus ids
    files = [gallery / "gallery" / p for p in index.paths[:6]]
    rows = Searcher(out).search_files(files, k=1)["results"]
    # 8-bit codes may swap near-identical images of one colour, never the colour
    assert [r[0]["path"].split("/")[0] for r in rows] == [p.split("/")[0] for p in index.paths[:6]]
    ev = evaluate_index(index, str(gallery / "queries"), (1, 5), workers=0)
    assert ev["index"] == fake_kind.name and ev["nprobe"] == 8 and ev["ef_search"] is None
    assert ev["recall@5_vs_exact"] is not None


def test_the_command_line_takes_the_row(fake_kind, tmp_path, onnx_model, gallery, capsys):
    from distill.core.cli import main

    with pytest.raises(SystemExit):
        main(["retrieve", "index", "--help"])
    assert "fake-ivfsq8(IVFover8-bitscalar-quantisedvectors)" in "".join(capsys.readouterr().out.split())
    code = main(["retrieve", "index", "--model", onnx_model, "--images", str(gallery / "gallery"),
                 "--out", str(tmp_path / "cli"), "--index", fake_kind.name, "--workers", "0", "--json"])
    assert code == 0, capsys.readouterr().err
    assert ImageIndex(tmp_path / "cli").params.kind == fake_kind.name


def test_estimate_gpu_and_tuning_come_from_the_row(fake_kind):
    assert estimate_bytes(fake_kind.name, 1000, 64) == 1000 * 72 + default_nlist(1000) * 256
    with pytest.raises(ConfigError, match="no GPU version of a fake-ivfsq8 index"):
        from retrieval_demo.gpu import GpuIndex

        GpuIndex(object(), fake_kind, 0)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 16))
    vectors = (centres[rng.integers(0, 20, 4000)] + 0.3 * rng.normal(size=(4000, 16))).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    params = IndexParams(kind=fake_kind.name, nlist=32, nprobe=1)
    recall, trials, tuned = tune_recall(build_faiss(vectors, params), vectors, params, target=0.95)
    assert params.nprobe == 1 and tuned.nprobe > 1 and trials[-1]["recall@10"] > trials[0]["recall@10"]


def test_an_unknown_kind_lists_the_rows():
    with pytest.raises(ConfigError, match="valid indexes: flat, ivf, hnsw, ivfpq, auto"):
        index_kind("annoy")
    with pytest.raises(ConfigError, match="unknown index 'annoy'"):
        IndexParams(kind="annoy").validate()
