"""faiss on a GPU (retrieve eval/search --device cuda): the refusals on any machine, the search where a GPU is."""
import numpy as np
import pytest

from distill.core.errors import ConfigError
from retrieval_demo import ImageIndex, IndexParams
from retrieval_demo.gpu import parse_device
from tests.conftest import run_cli


def _faiss_has_gpu() -> bool:
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


@pytest.mark.parametrize("text,gpu", [("cpu", None), ("cuda", 0), ("cuda:1", 1)])
def test_devices(text, gpu):
    assert parse_device(text) == gpu


def test_an_unknown_device_lists_the_valid_ones(flat_index):
    with pytest.raises(ConfigError, match="valid: cpu, cuda, cuda:N"):
        ImageIndex(flat_index, device="tpu")


def test_hnsw_and_mmap_are_refused_on_the_gpu_with_the_fix(flat_index, tmp_path):
    from retrieval_demo.store import rebuild_index

    rebuild_index(flat_index, tmp_path / "hnsw", IndexParams(kind="hnsw", m=8))
    with pytest.raises(ConfigError, match="no GPU version of a hnsw index.*--device cpu"):
        ImageIndex(tmp_path / "hnsw", device="cuda")
    with pytest.raises(ConfigError, match="use one of them"):
        ImageIndex(flat_index, mmap=True, device="cuda")


def test_cuda_without_a_usable_gpu_is_one_line_naming_the_fix(flat_index, gallery):
    """A CPU faiss build names the gpu extra; a GPU build on a machine without a GPU says it sees none."""
    import faiss

    if _faiss_has_gpu():
        pytest.skip("faiss sees a GPU here: neither refusal can happen")
    proc = run_cli("retrieval_demo", "eval", "--index", str(flat_index), "--queries", str(gallery / "queries"),
                   "--device", "cuda")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("edgedistill: error:") and "--device cpu" in last
    if hasattr(faiss, "StandardGpuResources"):
        assert "sees no GPU" in last
    else:
        assert "edgedistill[gpu]" in last


@pytest.mark.gpu
@pytest.mark.parametrize("kind,params", [("flat", {}), ("ivf", {"nlist": 4, "nprobe": 4})])
def test_gpu_search_finds_what_cpu_search_finds(flat_index, tmp_path, kind, params):
    if not _faiss_has_gpu():
        pytest.skip("faiss has no GPU support here (pip install 'edgedistill[gpu]' on a CUDA machine)")
    from retrieval_demo.store import rebuild_index

    folder = flat_index if kind == "flat" else tmp_path / kind
    if kind != "flat":
        rebuild_index(flat_index, folder, IndexParams(kind=kind, **params))
    cpu, gpu = ImageIndex(folder), ImageIndex(folder, device="cuda")
    queries = cpu.embeddings()
    s_cpu, p_cpu = cpu.search(queries, 5)
    s_gpu, p_gpu = gpu.search(queries, 5)
    assert [r[0] for r in p_gpu] == [r[0] for r in p_cpu] == cpu.paths  # every image finds itself first
    assert np.allclose(s_gpu, s_cpu, atol=1e-4)
