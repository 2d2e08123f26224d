"""The training methods, the heads and the loss options: the one list of each, without torch.

The command-line parsers (``train --method/--head`` and the loss flags, ``pretrain --method``), the loss registry
(``distill.losses.LOSSES``, which imports each row's class) and the config's ``--head auto`` rule all read these
tables, so a method is its loss file plus one row here. tests/distill/test_registry.py checks that every loss
keyword option has a flag row (or is set through a config field), that each flag's stated default is the loss's
own, and that the parsers offer exactly these names.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from distill.core.cli import nonnegative_float, positive_float


@dataclass(frozen=True)
class Method:
    name: str
    summary: str  # for --help
    loss: str  # "module:Class" of its DistillLoss
    teacher: bool = True  # distillation (train) or self-supervised from scratch (pretrain)
    head: str = "mlp"  # the head under --head auto

    def loss_class(self):
        module, _, cls = self.loss.partition(":")
        return getattr(importlib.import_module(module), cls)


# --head auto, whichever measured better (docs/RESULTS.md, the one-epoch MobileNetV3 rows): CompRess-1q in its
# official form, the backbone through the loss's own Linear (45.5 kNN, against 39.3 with the MLP head); CompRess-2q
# keeps the MLP head (24.8, against 21.6 on the backbone feature, --head none); SimReg regresses through its
# 4-layer MLP.
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("seed", "SEED: student and teacher similarity distributions over a queue of teacher embeddings",
           "distill.losses.seed:SEEDLoss"),
    Method("compress", "CompRess-2q: teacher and momentum-student queues, KL between the two similarity rows",
           "distill.losses.compress:CompRessLoss"),
    Method("compress-1q", "CompRess-1q: one queue of teacher embeddings for both sides",
           "distill.losses.compress:CompRess1qLoss", head="none"),
    Method("disco", "DisCo: MoCo-v2 on the student plus MSE to the teacher on both views",
           "distill.losses.disco:DisCoLoss"),
    Method("regress", "SimReg: regress the teacher's embedding through a 4-layer MLP",
           "distill.losses.regress:RegressLoss", head="mlp4"),
    Method("mocov2", "MoCo-v2, no teacher (pretrain)", "distill.losses.contrastive:MoCoV2Loss", teacher=False),
    Method("simclr", "SimCLR, no teacher (pretrain)", "distill.losses.contrastive:SimCLRLoss", teacher=False),
)}
DISTILL_METHODS = tuple(name for name, m in METHODS.items() if m.teacher)
PRETRAIN_METHODS = tuple(name for name, m in METHODS.items() if not m.teacher)

HEADS = ("mlp", "mlp4", "linear", "none")  # distill.heads.create_head builds each


@dataclass(frozen=True)
class LossOption:
    """A loss keyword option the command line sets directly (``--flag`` -> ``loss_options[name]``)."""

    flag: str
    name: str
    type: object  # an argparse type, or "flag" for a switch
    help: str  # ends with the loss's own default, "(default X)", checked against its signature


LOSS_OPTIONS = (
    LossOption("--tau-s", "tau_s", positive_float, "SEED student temperature (default 0.2)"),
    LossOption("--tau-t", "tau_t", positive_float, "SEED teacher temperature (the official code uses 1e-4) (default "
                                                   "0.01)"),
    LossOption("--tau", "tau", positive_float, "CompRess temperature, both sides (default 0.04)"),
    LossOption("--temperature", "temperature", positive_float, "DisCo InfoNCE temperature (default 0.2)"),
    LossOption("--mse-weight", "mse_weight", nonnegative_float, "DisCo weight of the MSE-to-teacher term (default "
                                                                "1.0)"),
    LossOption("--only-mse", "only_mse", "flag", "DisCo without its contrastive term (the official --only-mse) "
                                                 "(default False)"),
)
# loss options set from config fields rather than flags of their own
CONFIG_LOSS_OPTIONS = {"queue_size": "queue_size"}


def method(name: str, *, teacher: bool | None = None) -> Method:
    """The row of ``name``; an unknown name (or one of the other family) is refused with the valid ones."""
    from distill.core.errors import ConfigError

    names = METHODS if teacher is None else (DISTILL_METHODS if teacher else PRETRAIN_METHODS)
    if name not in names:
        raise ConfigError(f"unknown method '{name}'; valid methods: {', '.join(names)}")
    return METHODS[name]


def methods_help(names: tuple[str, ...]) -> str:
    return "; ".join(f"{n}: {METHODS[n].summary}" for n in names)
