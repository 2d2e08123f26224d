"""The one list of methods, heads and loss options (distill.methods) is what the loss registry, the config and the
command-line parsers use, and the parsers' defaults are the config's."""
import argparse
import dataclasses
import re

import pytest

from distill.commands.common import NOT_FIELDS
from distill.config import TrainConfig, resolve_config
from distill.core.cli import build_parser
from distill.core.errors import ConfigError
from distill.heads import create_head
from distill.losses import LOSSES, loss_options
from distill.methods import (CONFIG_LOSS_OPTIONS, DISTILL_METHODS, HEADS, LOSS_OPTIONS, METHODS, PRETRAIN_METHODS,
                             method)


def subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices[name]


def action(parser: argparse.ArgumentParser, dest: str) -> argparse.Action:
    (found,) = [a for a in parser._actions if a.dest == dest]
    return found


def test_the_registry_is_the_list_of_methods():
    assert list(LOSSES) == list(METHODS)
    for name, m in METHODS.items():
        assert LOSSES[name].needs_teacher == m.teacher, name


def test_parsers_offer_exactly_the_listed_names():
    train, pretrain = subparser("train"), subparser("pretrain")
    assert tuple(action(train, "method").choices) == DISTILL_METHODS
    assert tuple(action(pretrain, "method").choices) == PRETRAIN_METHODS
    assert tuple(action(train, "head").choices) == ("auto", *HEADS)
    help_text = "".join(train.format_help().split())
    for name in DISTILL_METHODS:
        assert f"{name}:" in help_text, f"train --help does not name {name}"


@pytest.mark.parametrize("head", HEADS)
def test_every_listed_head_builds(head):
    out = 16 if head == "none" else 8
    assert create_head(head, 16, 32, out) is not None
    with pytest.raises(ConfigError, match="valid heads: mlp, mlp4, linear, none"):
        create_head("mlp9", 16, 32, 8)


def test_every_loss_option_has_a_flag_with_the_loss_default():
    flagged = {o.name: o for o in LOSS_OPTIONS}
    for name in DISTILL_METHODS:
        for option, default in loss_options(name).items():
            assert option in flagged or option in CONFIG_LOSS_OPTIONS, f"{name}.{option} has no flag"
            if option in flagged:
                stated = re.search(r"\(default ([^)]+)\)$", flagged[option].help).group(1)
                assert stated == str(default), f"{flagged[option].flag} says {stated}, {name} uses {default}"
    used = {o for name in DISTILL_METHODS for o in loss_options(name)}
    assert set(flagged) <= used, "a flag row names an option no method has"
    train = subparser("train")
    for o in LOSS_OPTIONS:
        assert action(train, o.name).option_strings == [o.flag]


def test_train_flag_defaults_are_the_config_defaults():
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    checked = 0
    for a in subparser("train")._actions:
        if a.dest in fields and a.dest not in NOT_FIELDS and a.default is not None:
            assert a.default == fields[a.dest].default, f"--{a.dest}: parser {a.default}, TrainConfig {fields[a.dest].default}"
            checked += 1
    assert checked >= 15
    args = build_parser().parse_args(["train", "--data", "d", "--teacher", "t"])
    cfg = args._module.config_from_args(args)
    assert cfg == TrainConfig(data="d", teacher="t", teacher_options=cfg.teacher_options)


def test_head_auto_is_the_methods_row():
    for name in DISTILL_METHODS:
        cfg = TrainConfig(data="d", teacher="t", method=name)
        resolved = resolve_config(cfg, teacher_dim=64, teacher_input_size=32, student_features=lambda size: 128)
        assert resolved.head == METHODS[name].head
    with pytest.raises(ConfigError, match="valid methods: mocov2, simclr"):
        method("seed", teacher=False)
