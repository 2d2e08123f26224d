"""TensorRT: a serialized engine run on CUDA through the TensorRT 10 name-based tensor API.

Device memory is managed with torch CUDA tensors (no pycuda). Needs ``pip install 'edgedistill[tensorrt]'``,
an NVIDIA GPU and torch with CUDA (JetPack ships NVIDIA's build; torch is imported only when an engine is loaded,
so the rest of the deploy side stays torch-free).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from distill.core.deps import require
from export.backends.base import Backend
from export.errors import ExportError
from export.metadata import read_metadata


class TensorRTBackend(Backend):
    runtime = "tensorrt"

    def __init__(self, path: str | Path, device: str = "cuda", threads: int | None = None):
        trt = require("tensorrt", "tensorrt", "TensorRT engines")
        torch = require("torch", "train", "TensorRT engines (CUDA buffers through torch; JetPack ships it)")
        if not torch.cuda.is_available():
            raise ExportError("TensorRT engines run on an NVIDIA GPU with CUDA; none is visible here")
        super().__init__(path, read_metadata(path))
        self.device = torch.device(device if device.startswith("cuda") else "cuda")
        logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise ExportError(f"TensorRT cannot deserialize '{self.path}' (built with another TensorRT version or "
                              "GPU?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        self.stream = torch.cuda.Stream(self.device)
        lo, _, hi = self.engine.get_tensor_profile_shape(self.input_name, 0)
        self.batch_range = (int(lo[0]), int(hi[0]))

    def __call__(self, x) -> np.ndarray:
        import torch  # loaded by __init__ (require): CUDA buffers

        t = (x if isinstance(x, torch.Tensor) else torch.from_numpy(self.as_numpy(x)))
        t = t.to(self.device, torch.float32).contiguous()  # on the current stream: the engine's waits for it below
        if not self.context.set_input_shape(self.input_name, tuple(t.shape)):
            lo, hi = self.batch_range
            raise ExportError(f"batch {t.shape[0]} is outside the engine's optimisation profile (batch {lo} to {hi}); "
                              "split the batch, or export with --dynamic-batch MIN,OPT,MAX covering it")
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        out = torch.empty(out_shape, dtype=torch.float32, device=self.device)
        self.context.set_tensor_address(self.input_name, t.data_ptr())
        self.context.set_tensor_address(self.output_name, out.data_ptr())
        self.stream.wait_stream(torch.cuda.current_stream(self.device))  # the copy/cast above must be done
        with torch.cuda.stream(self.stream):
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise ExportError(f"TensorRT execution of '{self.path}' failed")
        self.stream.synchronize()
        return out.cpu().numpy()
