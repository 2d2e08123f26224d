"""The PyTorch student's variants (bench --torch): names checked in one line, half precisions and torch.compile
computing what eager fp32 does, CUDA graphs and onnxruntime's CUDA binding on a GPU (skipped without one)."""
import numpy as np
import pytest
import torch

from distill.checkpoint import save_student
from distill.core.errors import ConfigError
from distill.core.preprocess import Preprocess
from distill.students import create_student
from export.backends import load_backend
from export.backends.torch_variants import parse_variant, torch_variants


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("variants") / "student.pt"
    save_student(path, create_student("resnet10t", img_size=32).eval(), Preprocess(input_size=32), {})
    return path


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _batch(n: int = 4) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, 3, 32, 32)).astype(np.float32)


def test_variant_names_are_checked_in_one_line():
    assert parse_variant("eager") == ("eager", "fp32") and parse_variant("compiled-bf16") == ("compiled", "bf16")
    assert parse_variant("cudagraphs-fp16", "cuda:0") == ("cudagraphs", "fp16")
    assert len(torch_variants()) == len(set(torch_variants())) == 9
    with pytest.raises(ConfigError, match="unknown PyTorch variant 'eager-fp32'; choose from eager, eager-fp16"):
        parse_variant("eager-fp32")
    with pytest.raises(ConfigError, match="needs --device cuda; on the CPU use 'compiled'"):
        parse_variant("cudagraphs", "cpu")


@pytest.mark.parametrize("variant, worst", [("eager-bf16", 0.99), ("eager-fp16", 0.999)])
def test_half_precision_computes_what_fp32_does(student, variant, worst):
    x = _batch()
    reference = load_backend(student, threads=1)(x)
    half = load_backend(student, threads=1, variant=variant)
    out = half(x)
    assert half.precision == variant.split("-")[1] and next(half.model.parameters()).dtype != torch.float32
    assert out.dtype == np.float32 and out.shape == reference.shape
    assert _cosines(out, reference).min() > worst
    assert not np.array_equal(out, reference)  # it did run in half precision
    half.bound(x)()


@pytest.mark.slow
def test_compiled_student_matches_eager(student):
    x = _batch()
    compiled = load_backend(student, threads=1, variant="compiled")
    assert compiled.forward is not compiled.model  # torch.compile's wrapper, not the module
    np.testing.assert_allclose(compiled(x), load_backend(student, threads=1)(x), rtol=1e-3, atol=1e-4)
    assert compiled.bound(x)().shape == (4, compiled.embedding_dim)


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.parametrize("variant", ["eager-fp16", "cudagraphs", "cudagraphs-fp16"])
def test_cuda_variants_match_eager_fp32(student, variant):
    x = _batch(8)
    reference = load_backend(student, threads=1)(x)
    gpu = load_backend(student, device="cuda", threads=1, variant=variant)
    run = gpu.bound(x)
    for _ in range(3):
        run()
    gpu.synchronize()
    assert _cosines(gpu(x), reference).min() > 0.999


@pytest.mark.gpu
def test_onnxruntime_cuda_binding_computes_what_the_cpu_does(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime has no CUDA provider (onnxruntime-gpu is not installed)")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    torch.onnx.export(net, torch.zeros(1, 3, 16, 16), str(tmp_path / "m.onnx"), input_names=["input"],
                      output_names=["embedding"], dynamic_axes={"input": {0: "batch"}}, dynamo=False)
    (tmp_path / "m.json").write_text('{"input_size": 16}')
    x = np.random.default_rng(1).normal(size=(3, 3, 16, 16)).astype(np.float32)
    cpu, gpu = load_backend(tmp_path / "m.onnx"), load_backend(tmp_path / "m.onnx", device="cuda")
    gpu.bound(x)()
    np.testing.assert_allclose(gpu(x), cpu(x), rtol=1e-3, atol=1e-4)
