"""Loading third-party self-supervised checkpoints into an architecture, with strict key checking.

Self-supervised checkpoints wrap the encoder in many ways: ``module.`` (DataParallel), ``encoder_q.`` /
``encoder_k.`` (MoCo), ``backbone.`` / ``head.`` (DINO), ``model.``, a momentum copy, projection heads and
prototypes. :func:`match_state_dict` maps such a checkpoint onto a model's own keys and reports what does not
fit in one error.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from distill.core.errors import ModelError

# Containers a training script saves the weights under, most specific first (DINO saves "teacher" and "student").
CONTAINER_KEYS = ("state_dict", "model", "teacher", "network", "student", "encoder")
# Wrapper prefixes stripped from a key when the key does not match the model as it is.
WRAPPER_PREFIXES = ("module.", "encoder_q.", "backbone.", "model.", "encoder.", "base_encoder.", "online_encoder.")
# Momentum / target encoders and contrastive queues: never part of the encoder being loaded.
MOMENTUM_PREFIXES = ("encoder_k.", "momentum_encoder.", "target_encoder.", "key_encoder.", "model_ema.",
                     "ema.", "teacher_encoder.")
NON_ENCODER_KEYS = ("queue", "queue_ptr", "queue_ids")
# Classifier and projection heads, dropped on request (--teacher-drop-head).
HEAD_PREFIXES = ("fc", "head", "heads", "classifier", "linear", "projector", "projection_head", "prototypes",
                 "predictor", "mlp")


def extract_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """The tensor dict inside a loaded checkpoint (a bare state dict or one of :data:`CONTAINER_KEYS`)."""
    if isinstance(obj, nn.Module):
        return obj.state_dict()
    if not isinstance(obj, Mapping):
        raise ModelError(f"'{source}' does not hold a state dict (found {type(obj).__name__})")
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj)
    for key in CONTAINER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            return dict(inner)
    raise ModelError(
        f"'{source}' holds no tensor state dict at its top level or under {', '.join(CONTAINER_KEYS)} "
        f"(top-level keys: {', '.join(map(str, list(obj)[:8]))})"
    )


def _strip(key: str, prefix: str) -> str:
    return key[len(prefix):] if key.startswith(prefix) else key


def _canonical(key: str, model_keys: set[str]) -> str:
    """Strip wrapper prefixes one at a time until the key matches the model (or nothing more can go)."""
    changed = True
    while key not in model_keys and changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
                break
    return key


def _is_head(key: str, heads: tuple[str, ...]) -> bool:
    return any(key == h or key.startswith(h + ".") for h in heads)


def match_state_dict(state: Mapping[str, torch.Tensor], model: nn.Module, drop_heads: tuple[str, ...] = (),
                     source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Map ``state`` onto ``model``'s keys; raise one :class:`ModelError` listing missing, unexpected and
    mis-shaped keys. ``drop_heads`` are key prefixes (``fc``, ``head``...) removed from the checkpoint."""
    own = model.state_dict()
    own_keys = set(own)
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        bare = _strip(key, "module.")
        if bare.startswith(MOMENTUM_PREFIXES) or bare in NON_ENCODER_KEYS:
            continue
        canon = _canonical(key, own_keys)
        if drop_heads and _is_head(canon, drop_heads):
            continue
        mapped[canon] = value
    # BatchNorm's step counter is absent from checkpoints older than PyTorch 0.4.1; BatchNorm fills it in itself.
    missing = sorted(k for k in own_keys - set(mapped) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(mapped) - own_keys)
    shape = sorted(k for k in own_keys & set(mapped) if tuple(own[k].shape) != tuple(mapped[k].shape))
    if missing or unexpected or shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_few(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_few(unexpected)})")
        if shape:
            parts.append(f"{len(shape)} with another shape ({_few(shape)})")
        fix = "check --teacher-arch"
        if unexpected and all(_is_head(k, HEAD_PREFIXES) for k in unexpected):
            fix = "pass --teacher-drop-head to drop the classifier/projection head"
        raise ModelError(f"'{source}' does not fit the architecture: {'; '.join(parts)}; {fix}")
    return mapped


def _few(keys: list[str], n: int = 4) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def remove_heads(model: nn.Module, heads: tuple[str, ...]) -> list[str]:
    """Replace the model's top-level head modules named in ``heads`` with ``Identity``; return the names."""
    removed = []
    for name in heads:
        if isinstance(getattr(model, name, None), nn.Module):
            setattr(model, name, nn.Identity())
            removed.append(name)
    return removed
