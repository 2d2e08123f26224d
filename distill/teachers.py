"""Frozen teachers: anything that maps a normalised image batch to an embedding.

``load_teacher(spec)`` accepts

* ``timm:NAME`` / ``torchvision:NAME``: the library's architecture, classifier removed, weights from
  ``weights=FILE`` or (where the machine can fetch them) the library's pretrained weights;
* a TorchScript file (``*.pt`` written by ``torch.jit.save``);
* an ONNX file (run with onnxruntime: architecture-free, and often the fastest teacher on a CPU);
* a state-dict checkpoint plus ``arch`` (``timm:NAME``, ``torchvision:NAME``, ``package.module:factory`` or
  ``path/to/file.py:factory``), with self-supervised key layouts mapped by :mod:`distill.checkpoint_keys`.

Preprocessing comes from the sidecar JSON next to a file (``cifar_resnet56.json``), else from the library's
pretrained config, and flags override it. Teachers run in eval mode without gradients.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import sys
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from distill.checkpoint_keys import HEAD_PREFIXES, extract_state_dict, match_state_dict, remove_heads
from distill.core.errors import ModelError, first_line
from distill.core.pieces import run_in_pieces
from distill.core.preprocess import Preprocess, PreprocessOverrides, onnx_metadata, read_sidecar, sidecar_path
from distill.core.threads import ort_session_options
from distill.hub import create_hub_teacher, hub_name
from distill.students import drop_final_linear


@dataclass(frozen=True)
class TeacherOptions:
    """How to interpret a teacher spec (the ``--teacher-*`` flags)."""

    weights: str | None = None
    arch: str | None = None
    drop_head: tuple[str, ...] = ()
    input_size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    crop_pct: float | None = None
    embedding: str = "auto"  # a hub teacher's embedding: auto | cls | mean | cls+mean | head (distill.hub)


class Teacher:
    """A frozen embedder: ``teacher(x)`` with x a normalised (B, 3, S, S) float tensor (or numpy array: what
    :func:`distill.core.embeddings.embed_folder` passes) -> (B, D) float32 tensor."""

    kind = "teacher"

    def __init__(self, name: str, preprocess: Preprocess, source_files: tuple[Path, ...] = ()):
        self.name, self.preprocess, self.source_files = name, preprocess, source_files
        self.embedding_dim = 0
        self.licence: str | None = None  # the weights' licence where it is known (hub teachers: distill.hub)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def to(self, device: torch.device | str) -> "Teacher":
        return self

    def probe_dim(self) -> int:
        s = self.preprocess.input_size
        try:
            with torch.no_grad():
                out = self(torch.zeros(2, 3, s, s, device=getattr(self, "device", "cpu")))
        except ModelError:
            raise
        except Exception as exc:  # the model's own failure on this input (a fixed size, a wrong layout)
            text = first_line(exc)
            raise ModelError(f"teacher '{self.name}' fails on a {s} px input ({text[:200]}); check "
                             "--teacher-input-size or its sidecar JSON") from None
        if out.ndim != 2:
            raise ModelError(f"teacher '{self.name}' returns shape {tuple(out.shape)}, expected (batch, dim); "
                             "export the embedding (pooled features), not a feature map")
        self.embedding_dim = int(out.shape[1])
        return self.embedding_dim

    def fingerprint(self) -> str:
        """SHA-256 of the teacher's files (or name) and its preprocessing."""
        h = hashlib.sha256(self.name.encode())
        for path in self.source_files:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        h.update(json.dumps(self.preprocess.to_dict(), sort_keys=True).encode())
        return h.hexdigest()


class TorchTeacher(Teacher):
    """An ``nn.Module`` (TorchScript, timm, torchvision or a user's architecture), frozen."""

    def __init__(self, module: nn.Module, name: str, preprocess: Preprocess, source_files: tuple[Path, ...] = ()):
        super().__init__(name, preprocess, source_files)
        self.module = module.eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.device = torch.device("cpu")

    def to(self, device) -> "TorchTeacher":
        self.device = torch.device(device)
        self.module.to(self.device)
        return self

    @torch.no_grad()
    def __call__(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        out = self.module(torch.as_tensor(x).to(self.device))
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.float()


class OnnxTeacher(Teacher):
    """An ONNX file run with onnxruntime (CUDA provider when asked for and available, else CPU)."""

    def __init__(self, path: Path, preprocess: Preprocess, threads: int = 0):
        super().__init__(path.name, preprocess, (path,))
        import onnxruntime as ort

        opts = ort_session_options(threads or None)  # beside torch's pool: same size, no spinning
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a bad file
            raise ModelError(f"onnxruntime cannot load '{path}' ({str(exc).splitlines()[0]}); is it a valid ONNX "
                             "file?") from None
        first = self.session.get_inputs()[0]
        self.input_name, batch = first.name, (first.shape or [None])[0]
        # a fixed batch (torch.onnx.export's default is 1): the teacher runs in pieces of that size
        self.static_batch = batch if isinstance(batch, int) and batch > 0 else None
        self.device = torch.device("cpu")
        self._path, self._opts = path, opts

    def to(self, device) -> "OnnxTeacher":
        import onnxruntime as ort

        self.device = torch.device(device)
        if self.device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            self.session = ort.InferenceSession(str(self._path), self._opts,
                                                providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
        return self

    @torch.no_grad()
    def __call__(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            x = x.detach().to("cpu", torch.float32).numpy()
        arr = np.ascontiguousarray(x, dtype=np.float32)
        n = self.static_batch
        out = run_in_pieces(self._run, arr, n, static=True) if n and len(arr) != n else self._run(arr)
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).to(self.device)

    def _run(self, arr: np.ndarray) -> np.ndarray:
        try:
            return self.session.run(None, {self.input_name: arr})[0]
        except Exception as exc:  # onnxruntime's own exception types
            text = first_line(exc)
            raise ModelError(f"onnxruntime cannot run teacher '{self.name}' on a {tuple(arr.shape)} input: "
                             f"{text[:200]}; check --teacher-input-size or its sidecar JSON") from None


def is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files holding a ``code/`` folder."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any("/code/" in n or n.startswith("code/") for n in z.namelist())


def _load_callable(spec: str) -> Callable[[], nn.Module]:
    """``package.module:factory`` or ``path/to/file.py:factory``."""
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise ModelError(f"--teacher-arch '{spec}' must be timm:NAME, torchvision:NAME, module:factory or "
                         "file.py:factory")
    try:
        if target.endswith(".py"):
            file = Path(target).expanduser()
            if not file.is_file():
                raise ModelError(f"architecture file '{file}' does not exist")
            mod_name = f"_edgedistill_arch_{hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:8]}"
            spec_ = importlib.util.spec_from_file_location(mod_name, file)
            module = importlib.util.module_from_spec(spec_)
            sys.modules[mod_name] = module
            spec_.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except ImportError as exc:
        raise ModelError(f"cannot import '{target}' for --teacher-arch ({exc})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ModelError(f"'{target}' has no callable '{attr}' for --teacher-arch")
    return fn


def _library_model(spec: str, pretrained: bool) -> tuple[nn.Module, Preprocess]:
    """A timm/torchvision model with its classifier removed, and its preprocessing."""
    lib, _, name = spec.partition(":")
    if lib == "timm":
        import timm

        try:
            model = timm.create_model(name, pretrained=pretrained, num_classes=0)
        except Exception as exc:
            how = "pass --teacher-weights FILE (no network here?)" if pretrained else "check the name"
            raise ModelError(f"timm could not build teacher '{name}' ({str(exc).splitlines()[0]}); {how}") from None
        cfg = timm.data.resolve_data_config({}, model=model)
        pre = Preprocess(input_size=int(cfg["input_size"][-1]), mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
                         crop_pct=float(cfg.get("crop_pct", 0.875)))
        return model, pre
    if lib == "torchvision":
        import torchvision

        try:
            model = torchvision.models.get_model(name, weights="DEFAULT" if pretrained else None)
        except Exception as exc:
            how = "pass --teacher-weights FILE (no network here?)" if pretrained else "check the name"
            raise ModelError(f"torchvision could not build teacher '{name}' ({str(exc).splitlines()[0]}); "
                             f"{how}") from None
        drop_final_linear(model)
        return model, Preprocess(input_size=224, crop_pct=0.875)
    raise ModelError(f"unknown library '{lib}' in '{spec}'; use timm:NAME or torchvision:NAME")


def _load_weights_into(model: nn.Module, weights: Path, drop_head: tuple[str, ...]) -> None:
    if not weights.is_file():
        raise ModelError(f"teacher weights '{weights}' do not exist")
    try:
        obj = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"cannot read '{weights}' as a PyTorch checkpoint ({str(exc).splitlines()[0]})") from None
    remove_heads(model, drop_head)
    state = match_state_dict(extract_state_dict(obj, str(weights)), model, drop_head, str(weights))
    model.load_state_dict(state, strict=True)


def load_teacher(spec: str, options: TeacherOptions = TeacherOptions(), device: str | torch.device = "cpu") -> Teacher:
    """Build a frozen teacher from ``spec``; see the module docstring for what ``spec`` may be."""
    overrides = PreprocessOverrides(options.input_size, options.mean, options.std, options.crop_pct)
    drop = options.drop_head
    teacher: Teacher
    name = hub_name(spec)
    if name is None and options.embedding != "auto":
        raise ModelError(f"--teacher-embedding {options.embedding} chooses among a hub ViT's tokens; '{spec}' is not a "
                         "hub teacher (timm:NAME, hf-hub:timm/NAME or an alias): drop the flag")
    if name is not None:
        weights = Path(options.weights).expanduser() if options.weights else None
        model, pre, licence, embedding = create_hub_teacher(
            name, input_size=options.input_size, weights=weights, embedding=options.embedding,
            load_weights=lambda m: _load_weights_into(m, weights, drop))
        # the embedding is part of the name, so of the fingerprint: a cache of CLS tokens never serves a mean
        teacher = TorchTeacher(model, f"{spec} [{embedding}]", overrides.apply(pre),
                               (weights,) if weights else ())
        teacher.licence = licence
    elif spec.startswith("torchvision:"):
        model, pre = _library_model(spec, pretrained=options.weights is None)
        files: tuple[Path, ...] = ()
        if options.weights:
            _load_weights_into(model, Path(options.weights).expanduser(), drop)
            files = (Path(options.weights).expanduser(),)
        teacher = TorchTeacher(model, spec, overrides.apply(pre), files)
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ModelError(f"teacher '{spec}' is neither an existing file nor a model name (timm:NAME, "
                             "hf-hub:timm/NAME, torchvision:NAME or an alias such as dinov2/vits14: README, Teachers)")
        if path.suffix.lower() == ".onnx":
            teacher = OnnxTeacher(path, _file_preprocess(path, overrides))
        elif is_torchscript(path):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
                module = torch.jit.load(str(path), map_location="cpu")
            teacher = TorchTeacher(module, path.name, _file_preprocess(path, overrides), (path,))
        else:
            if not options.arch:
                raise ModelError(
                    f"'{path.name}' is a weights checkpoint, not TorchScript or ONNX: pass its architecture with "
                    "--teacher-arch (timm:NAME, torchvision:NAME, module:factory or file.py:factory)")
            lib_pre = None
            if options.arch.startswith(("timm:", "torchvision:")):
                model, lib_pre = _library_model(options.arch, pretrained=False)
            else:
                model = _load_callable(options.arch)()
                if not isinstance(model, nn.Module):
                    raise ModelError(f"--teacher-arch '{options.arch}' returned {type(model).__name__}, not an "
                                     "nn.Module")
            if lib_pre is not None and read_sidecar(path) is None:
                pre = overrides.apply(lib_pre)
            else:
                pre = _file_preprocess(path, overrides)
            _load_weights_into(model, path, drop)
            teacher = TorchTeacher(model, path.name, pre, (path,))
    teacher.to(device)
    teacher.probe_dim()
    return teacher


def _file_preprocess(path: Path, overrides: PreprocessOverrides) -> Preprocess:
    """Preprocessing for a teacher file: its sidecar JSON, else the ONNX input shape, else ImageNet at 224."""
    side = read_sidecar(path)
    if side is not None:
        return overrides.apply(Preprocess.from_dict(side))
    pre = Preprocess()
    if path.suffix.lower() == ".onnx":
        graph = _onnx_header(path)
        exported = _onnx_exported_preprocess(graph, path)
        if exported is not None:  # an edgedistill export (e.g. a pretrain run's model): its own preprocessing
            return overrides.apply(exported)
        size = _onnx_static_size(graph)
        if size:
            pre = pre.override(input_size=size)
    if overrides.input_size is None or overrides.mean is None or overrides.std is None:
        final = overrides.apply(pre)
        warnings.warn(f"no sidecar JSON for '{path.name}': using input {final.input_size}px, mean {final.mean}, "
                      f"std {final.std}; pass --teacher-input-size/--teacher-mean/--teacher-std or write "
                      f"'{sidecar_path(path).name}' to be explicit", stacklevel=3)
    return overrides.apply(pre)


def _onnx_header(path: Path):
    """The ONNX model without external weight files (enough for its metadata and input shape)."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelError(f"'{path}' is not a valid ONNX file ({type(exc).__name__}); re-export it") from None


def _onnx_exported_preprocess(model, path: Path) -> Preprocess | None:
    """The preprocessing `edgedistill export` embedded in an ONNX model's metadata, or ``None`` for other files."""
    try:
        meta = onnx_metadata(model)
        return None if meta is None else Preprocess.from_dict(meta["preprocess"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ModelError(f"'{path.name}' has damaged edgedistill metadata; re-export it or write a sidecar "
                         "JSON with input_size, mean and std") from None


def _onnx_static_size(model) -> int | None:
    """The square input size of an ONNX model with a fixed (B, 3, S, S) input, else ``None``."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) == 4 and dims[2].dim_value and dims[2].dim_value == dims[3].dim_value:
        return int(dims[2].dim_value)
    return None


def default_drop_heads(flag_values: list[str] | None) -> tuple[str, ...]:
    """``--teacher-drop-head`` alone drops the usual heads; with values, exactly those prefixes."""
    if flag_values is None:
        return ()
    return tuple(flag_values) if flag_values else HEAD_PREFIXES
