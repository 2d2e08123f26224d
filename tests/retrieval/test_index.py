"""Index building, self-retrieval, --add, approximate indexes against exact search, retrieval metrics."""
import json

import numpy as np
import onnx
import pytest

from distill.core.errors import ConfigError, DataError, ModelError
from retrieval_demo import ImageIndex, IndexParams, Searcher, build_index, evaluate_index, retrieval_metrics
from retrieval_demo.metrics import average_precision
from retrieval_demo.kinds import build_faiss, set_search_params
from tests.conftest import make_image, run_cli


def test_every_indexed_image_finds_itself_first(flat_index, gallery):
    index = ImageIndex(flat_index)
    assert len(index) == 24 and index.manifest["dim"] == 512 and len(index.manifest["model"]["sha256"]) == 64
    searcher = Searcher(flat_index)
    files = [gallery / "gallery" / p for p in index.paths]
    result = searcher.search_files(files, k=3)
    for path, rows in zip(index.paths, result["results"]):
        assert rows[0]["path"] == path and rows[0]["score"] == pytest.approx(1.0, abs=1e-4)
        assert rows[0]["score"] >= rows[1]["score"] >= rows[2]["score"]
    assert result["embed_ms"] > 0 and result["search_ms"] > 0


def test_index_files_are_complete_and_relative(flat_index):
    manifest = json.loads((flat_index / "manifest.json").read_text())
    paths = json.loads((flat_index / "paths.json").read_text())
    emb = np.load(flat_index / "embeddings.npy")
    assert manifest["num_images"] == len(paths) == len(emb) == 24
    assert all(not p.startswith("/") and p.split("/")[0] in ("red", "green", "blue") for p in paths)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert manifest["preprocess"]["input_size"] == 32 and manifest["params"]["kind"] == "flat"
    assert not list(flat_index.glob("*.tmp*"))


def test_corrupt_images_are_skipped_and_counted(tmp_path, onnx_model, gallery):
    images = tmp_path / "imgs"
    for i in range(3):
        make_image(images / f"{i}.png", seed=i)
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    result = build_index(onnx_model, str(images), str(tmp_path / "idx"), workers=0)
    assert result["num_images"] == 3 and result["num_skipped"] == 1


def test_add_appends_new_images_and_refuses_another_model(tmp_path, onnx_model, gallery):
    images = tmp_path / "imgs"
    for i in range(3):
        make_image(images / f"{i}.png", seed=i)
    out = tmp_path / "idx"
    build_index(onnx_model, str(images), str(out), workers=0)
    with pytest.raises(ConfigError, match="already holds an index"):
        build_index(onnx_model, str(images), str(out), workers=0)
    make_image(images / "new.png", seed=7)
    added = build_index(onnx_model, str(images), str(out), add=True, workers=0)
    assert added["num_added"] == 1 and added["num_images"] == 4 and len(ImageIndex(out)) == 4
    with pytest.raises(DataError, match="no new, changed or removed images"):
        build_index(onnx_model, str(images), str(out), add=True, workers=0)
    other = tmp_path / "other.onnx"
    model = onnx.load(onnx_model)
    model.producer_version = "another build"  # same graph, other bytes: another model as far as the index knows
    onnx.save(model, str(other))
    with pytest.raises(ModelError, match="embeddings of two models do not mix"):
        build_index(str(other), str(images), str(out), add=True, workers=0)


def test_rebuild_reuses_the_embeddings_for_another_kind(flat_index, tmp_path):
    from retrieval_demo.store import rebuild_index

    out = rebuild_index(flat_index, tmp_path / "hnsw", IndexParams(kind="hnsw", m=8))
    hnsw, flat = ImageIndex(tmp_path / "hnsw"), ImageIndex(flat_index)
    assert out["num_images"] == 24 and hnsw.paths == flat.paths and hnsw.params.kind == "hnsw"
    assert hnsw.manifest["model"] == flat.manifest["model"]
    _, got = hnsw.search(flat.embeddings(), 1)
    assert [row[0] for row in got] == flat.paths  # every image still finds itself first


@pytest.mark.parametrize("kind,params,floor", [("hnsw", dict(m=16, ef_search=64), 0.95),
                                               ("ivf", dict(nlist=32, nprobe=32), 0.999),
                                               ("ivf", dict(nlist=32, nprobe=8), 0.8),
                                               ("ivfpq", dict(nlist=16, nprobe=16, pq_m=32, pq_bits=6), 0.6),  # measured 0.70
                                               ("ivfpq", dict(nlist=16, nprobe=16, pq_m=32, pq_bits=6, opq=True), 0.6)])
def test_approximate_indexes_recall_exact_search(kind, params, floor):
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((40, 64))
    base = centers[rng.integers(0, 40, 3000)] + 0.5 * rng.standard_normal((3000, 64))
    base = (base / np.linalg.norm(base, axis=1, keepdims=True)).astype(np.float32)
    queries = base[:200] + 0.05 * rng.standard_normal((200, 64)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = build_faiss(base, IndexParams(kind="flat"))
    _, truth = exact.search(queries, 10)
    p = IndexParams(kind=kind, **params)
    approx = build_faiss(base, p)
    set_search_params(approx, p)
    _, got = approx.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)])
    assert recall >= floor
    if kind == "ivfpq":  # 24 bytes of codes a vector instead of 256 bytes of floats
        import faiss

        assert len(faiss.serialize_index(approx)) < len(faiss.serialize_index(exact)) / 4
    if kind == "ivf":
        approx.nprobe = 1  # faiss's default, which the index never keeps
        _, one = approx.search(queries, 10)
        assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(one, truth)]) < recall


def test_metrics_by_hand():
    assert average_precision(np.array([1.0, 0, 1, 0]), 2) == pytest.approx((1 + 2 / 3) / 2)
    m = retrieval_metrics([["a", "b", "a"], ["b", "b", "a"]], ["a", "b"], {"a": 2, "b": 4}, ks=(1, 3))
    assert m["precision@1"] == pytest.approx(1.0) and m["precision@3"] == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert m["recall@3"] == pytest.approx((2 / 2 + 2 / 4) / 2)
    assert m["map"] == pytest.approx(((1 + 2 / 3) / 2 + (1 + 1) / 3) / 2)


def test_eval_reports_precision_recall_map_and_recall_vs_exact(tmp_path, onnx_model, gallery, flat_index):
    flat = evaluate_index(ImageIndex(flat_index), str(gallery / "queries"), ks=(1, 5), workers=0)
    assert flat["num_queries"] == 6 and flat["recall@10_vs_exact"] is None
    assert flat["precision@1"] > 0.5  # coloured noise: colour dominates even with random weights
    hnsw_dir = tmp_path / "hnsw"
    build_index(onnx_model, str(gallery / "gallery"), str(hnsw_dir), IndexParams(kind="hnsw", m=8), workers=0)
    hnsw = evaluate_index(ImageIndex(hnsw_dir), str(gallery / "queries"), ks=(1, 5, 10), workers=0)
    assert hnsw["recall@10_vs_exact"] == pytest.approx(1.0)  # 24 vectors: the graph reaches every one
    with pytest.raises(DataError, match="no class folders"):
        flat_dir = tmp_path / "flat"
        flat_dir.mkdir()
        make_image(flat_dir / "x.png")
        evaluate_index(ImageIndex(flat_index), str(flat_dir), workers=0)


def test_cli_search_and_eval_print_the_json_contract(flat_index, gallery):
    query = str(next((gallery / "queries" / "red").iterdir()))
    proc = run_cli("retrieval_demo", "search", "--index", str(flat_index), query, query, "-k", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(out["results"]) == 2 and len(out["results"][0]) == 4
    assert set(out["results"][0][0]) == {"path", "score"} and out["embed_ms"] >= 0 and out["search_ms"] >= 0
    proc = run_cli("retrieval_demo", "eval", "--index", str(flat_index), "--queries", str(gallery / "queries"),
                   "-k", "1,10", "--json", "--workers", "0")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"precision@10", "recall@10", "map", "recall@10_vs_exact", "num_queries"} <= set(out)


def test_cli_user_errors_are_one_line(tmp_path, onnx_model):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (("index", "--model", onnx_model, "--images", str(empty), "--out", str(tmp_path / "i")),
                 ("index", "--model", str(tmp_path / "m.tflite"), "--images", str(empty), "--out", str(tmp_path / "i")),
                 ("index", "--model", onnx_model, "--images", str(empty), "--out", str(tmp_path / "i"), "--index", "lsh"),
                 ("search", "--index", str(empty), "x.jpg")):
        proc = run_cli("retrieval_demo", *args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("edgedistill: error:")


def test_a_damaged_index_file_is_one_line_and_left_as_it_is(flat_index, gallery, tmp_path):
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(flat_index, damaged)
    data = (damaged / "index.faiss").read_bytes()
    (damaged / "index.faiss").write_bytes(data[: len(data) // 2])  # truncated
    query = str(next((gallery / "queries" / "red").iterdir()))
    proc = run_cli("retrieval_demo", "search", "--index", str(damaged), query)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "damaged or missing index.faiss" in proc.stderr.strip().splitlines()[-1]
    assert (damaged / "index.faiss").read_bytes() == data[: len(data) // 2]


def test_add_drops_removed_files_and_re_embeds_only_changed_ones(tmp_path, onnx_model, monkeypatch):
    import os

    import retrieval_demo.store as store

    images = tmp_path / "imgs"
    for i in range(4):
        make_image(images / f"{i}.png", seed=i)
    out = tmp_path / "idx"
    build_index(onnx_model, str(images), str(out), workers=0)
    before = ImageIndex(out)
    old = dict(zip(before.paths, before.embeddings()))
    (images / "3.png").unlink()  # removed
    make_image(images / "1.png", seed=11, size=(44, 30))  # changed: other pixels and size
    os.utime(images / "1.png", ns=(1, 1))
    embedded = []
    real = store.embed_folder
    monkeypatch.setattr(store, "embed_folder", lambda b, folder, **kw: embedded.extend(folder.paths) or real(b, folder, **kw))
    r = build_index(onnx_model, str(images), str(out), add=True, workers=0)
    assert embedded == ["1.png"]  # only the changed image went through the model again
    assert (r["num_added"], r["num_changed"], r["num_removed"], r["num_images"]) == (0, 1, 1, 3)
    after = ImageIndex(out)
    assert sorted(after.paths) == ["0.png", "1.png", "2.png"] and after.index.ntotal == 3
    emb = dict(zip(after.paths, after.embeddings()))
    assert np.array_equal(emb["0.png"], old["0.png"]) and not np.allclose(emb["1.png"], old["1.png"])


def test_mmap_loading_answers_like_reading(flat_index, tmp_path):
    from retrieval_demo.store import rebuild_index

    ivf = tmp_path / "ivf"
    rebuild_index(flat_index, ivf, IndexParams(kind="ivf", nlist=1, nprobe=1))
    read, mapped = ImageIndex(ivf), ImageIndex(ivf, mmap=True)
    queries = read.embeddings()[:5]
    assert read.search(queries, 3)[1] == mapped.search(queries, 3)[1]
    manifest = json.loads((ivf / "manifest.json").read_text())
    assert manifest["bytes_per_vector"] > 0 and manifest["index_bytes"] == (ivf / "index.faiss").stat().st_size
