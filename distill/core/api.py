"""The Python API's engine: a command run from keyword arguments, through the same parser and ``run()`` as the
command line, returning what ``--json`` prints and raising the project's typed errors instead of exiting.

``run_command("train", data="images", teacher="t.onnx", epochs=5)`` is ``edgedistill train --data images
--teacher t.onnx --epochs 5 --json``: keyword names are the flags' destinations (``batch_size`` for
``--batch-size``), ``True`` sets a switch, a list or tuple becomes the comma list the flag takes (or several
values for a flag that takes several), a positional argument is passed by its name (``targets`` for bench).
"""
from __future__ import annotations

import argparse
import importlib
from typing import Any

from distill.core.deps import missing_extra
from distill.core.errors import ConfigError
from distill.core.threads import configure_threads


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting."""

    def error(self, message: str):
        raise ConfigError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None):
        raise ConfigError(message or f"{self.prog} exited ({status})")


def command_parser(command: str) -> tuple[Any, argparse.ArgumentParser]:
    """(module, parser) of ``command`` ("train", "retrieve", ...), as the command line builds it."""
    from distill.core.cli import command_modules

    modules = command_modules()
    if command not in modules:
        raise ConfigError(f"unknown command '{command}'; valid commands: {', '.join(modules)}")
    module = importlib.import_module(modules[command])
    parser = _Parser(prog=f"edgedistill {command}")
    module.add_arguments(parser)
    return module, parser


def _argv(parser: argparse.ArgumentParser, options: dict[str, Any]) -> tuple[list[str], set[str]]:
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", argparse.SUPPRESS)}
    unknown = sorted(set(options) - set(actions))
    if unknown:
        raise ConfigError(f"{parser.prog} has no option {', '.join(unknown)}; its options: "
                          f"{', '.join(sorted(k for k in actions if k != 'json'))}")
    flags, positionals, given = [], [], set()
    for key, value in options.items():
        if value is None or value is False:
            continue
        action, given = actions[key], given | {key}
        if not action.option_strings:
            positionals += [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
            continue
        flag = action.option_strings[-1]
        if action.nargs == 0:  # store_true / store_const
            flags.append(flag)
        elif isinstance(value, (list, tuple)):
            flags += [flag, *map(str, value)] if action.nargs in ("+", "*") else [flag, ",".join(map(str, value))]
        else:
            flags += [flag, str(value)]
    return flags + positionals, given


def run_command(command: str, action: str | None = None, **options: Any) -> dict[str, Any]:
    """Run ``edgedistill COMMAND [ACTION]`` with ``options``; its ``--json`` result, or a typed error."""
    module, parser = command_parser(command)
    target = parser
    if action is not None:  # retrieve's sub-actions
        (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        target = sub.choices[action]
    argv, given = _argv(target, options)
    args = parser.parse_args(([action] if action else []) + argv)
    args.command, args._given, args.json = command, given, True
    configure_threads(options.get("threads"))
    try:
        return module.run(args)
    except ModuleNotFoundError as exc:  # the deploy install calling a training-side function
        missing = missing_extra(exc, f"edgedistill.{command}")
        if missing is None:
            raise
        raise missing from None
