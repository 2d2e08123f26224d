"""TensorRT on a real GPU: run with ``pytest -m "gpu and tensorrt" tests/export/test_tensorrt_gpu.py`` on a machine
with an NVIDIA GPU and ``pip install 'edgedistill[tensorrt]'`` (TensorRT 10.x or 11.x). Skipped elsewhere, with
the reason. docs/EXPORT.md says what these check and what has been run."""
import numpy as np
import pytest

from export import ExportConfig, export_model, load_backend
from export.errors import ExportError

pytestmark = [pytest.mark.gpu, pytest.mark.tensorrt, pytest.mark.testbed, pytest.mark.slow]


def _export(ckpt, out, precision, **kw):
    cfg = ExportConfig(model=str(ckpt), formats=("tensorrt",), precisions=(precision,), calib_size=60,
                       parity_size=60, out=str(out), workers=0, dynamic_batch=(1, 4, 16), **kw)
    (art,) = export_model(cfg)["artifacts"]
    return art


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engines_build_run_and_pass_the_gate(student_ckpt, tmp_path, precision):
    art = _export(student_ckpt, tmp_path, precision)
    assert art["status"] == "ok", art  # the parity gate of its precision (export.tolerances) passed
    backend = load_backend(art["path"], device="cuda")
    for batch in (1, 4, 16):  # the profile's min, opt and max
        assert backend(np.zeros((batch, 3, 32, 32), np.float32)).shape == (batch, 512)
    with pytest.raises(ExportError, match=r"outside the engine's optimisation profile \(batch 1 to 16\)"):
        backend(np.zeros((17, 3, 32, 32), np.float32))


def test_numpy_and_cuda_tensor_inputs_agree(student_ckpt, tmp_path):
    import torch

    backend = load_backend(_export(student_ckpt, tmp_path, "fp32")["path"], device="cuda")
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    a = backend(x)
    b = backend(torch.from_numpy(x).double().cuda())  # needs a cast on the GPU before the engine's stream runs
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_timing_cache_is_reused_and_a_corrupt_one_refused(student_ckpt, tmp_path):
    _export(student_ckpt, tmp_path, "fp32")
    cache = tmp_path / "tensorrt.timing.cache"
    assert cache.stat().st_size > 0
    assert _export(student_ckpt, tmp_path, "fp16")["status"] == "ok"  # reads and extends the cache
    cache.write_bytes(b"not a timing cache")
    art = _export(student_ckpt, tmp_path, "fp32")
    assert art["status"] == "export_failed" and "timing cache" in art["error"]
