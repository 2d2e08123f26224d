"""The ``edgedistill`` command: one sub-command per module, collected from the ``edgedistill.commands`` entry
points (each package registers its own, so ``distill`` never imports its downstream packages).

A command module provides ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> dict``, and may
provide ``format_result(result) -> str`` for the human-readable summary. With ``--json`` the result is printed
as one JSON object on the last line of stdout. User errors (:class:`EdgeDistillError`) print
``edgedistill: error: <message>`` and exit 2, and so do file-system failures the user can fix (a full disk, a
path through a file: :mod:`distill.core.signals`); Ctrl-C exits 130 and SIGTERM 143, each with one line. Anything
else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import functools
import importlib
import json
import math
import os
import re
import sys
import warnings
from importlib.metadata import entry_points
from types import ModuleType

from distill.core.deps import missing_extra
from distill.core.errors import EdgeDistillError
from distill.core.log import configure_cli_logging, log
from distill.core.signals import environment_error, interrupt_message, sigterm_as_interrupt
from distill.core.threads import configure_threads

BUILTIN_COMMANDS = {"train": "distill.commands.train", "eval": "distill.commands.evaluate",
                    "pretrain": "distill.commands.pretrain", "cache-teacher": "distill.commands.cache_teacher"}


def command_modules() -> dict[str, str]:
    """Sub-command name -> module path: the built-in ones plus every registered entry point."""
    found = dict(BUILTIN_COMMANDS)
    for ep in entry_points(group="edgedistill.commands"):
        found.setdefault(ep.name, ep.value)
    return found


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    log.warning(f"warning: {message}")


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    """--quiet / --verbose, on every command (distill.core.log)."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument("-q", "--quiet", action="store_true", help="only warnings, errors and the result (no progress bars)")
    g.add_argument("-v", "--verbose", action="store_true", help="debug messages as well")


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("edgedistill")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown (not installed)"


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object on the last line of "
                                                            "stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgedistill", description="Label-free distillation of self-supervised "
                                     "vision models into small students, export, benchmark and retrieval.",
                                     epilog="Exit statuses: 0 done; 2 a user error (one line on stderr); 3 an "
                                     "artifact fails its parity gate; 4 a bench measured only some artifacts; "
                                     "130/143 stopped by Ctrl-C/SIGTERM. The API: import edgedistill.")
    parser.add_argument("--version", action="version", version=f"edgedistill {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, path in command_modules().items():
        module = importlib.import_module(path)
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        add_common_flags(p)
        p.set_defaults(_module=module, command=name)
    parser.commands = sub.choices  # name -> its parser (for given_flags)
    return parser


def execute(module: ModuleType, args: argparse.Namespace) -> int:
    """Run one command: print its result, turn user errors into one line and exit code 2."""
    warnings.showwarning = _show_warning
    quiet = getattr(args, "quiet", False)
    configure_cli_logging(quiet, getattr(args, "verbose", False))
    progress_env = os.environ.get("EDGEDISTILL_PROGRESS")
    if quiet:
        os.environ["EDGEDISTILL_PROGRESS"] = "0"
    try:
        return _execute(module, args)
    finally:
        if quiet:  # an in-process caller (a test, the API) gets its environment back
            os.environ.pop("EDGEDISTILL_PROGRESS", None)
            if progress_env is not None:
                os.environ["EDGEDISTILL_PROGRESS"] = progress_env


def _execute(module: ModuleType, args: argparse.Namespace) -> int:
    configure_threads(getattr(args, "threads", None))  # before the command imports torch
    try:
        with sigterm_as_interrupt():
            try:
                result = module.run(args)
            except ModuleNotFoundError as exc:  # the deploy install running a training-side command
                missing = missing_extra(exc, f"edgedistill {getattr(args, 'command', None) or module.__name__}")
                if missing is None:
                    raise
                raise missing from None
    except (EdgeDistillError, OSError, KeyboardInterrupt) as exc:
        partial = getattr(exc, "result", None)  # e.g. the export table, printed before the error
        if isinstance(exc, EdgeDistillError) and partial is not None:
            _print_result(module, args, partial)
        code = report_failure(exc, "edgedistill")
        if code is None:
            raise
        if getattr(args, "json", False):  # a script reading stdout gets the failure as JSON too
            print(json.dumps({"error": failure_message(exc), "exit_code": code}))
        return code
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 alone reports
        _print_result(module, args, result)
    return 0


def failure_message(exc: BaseException) -> str:
    """The one-line message of a user error, file-system failure or interrupt (what report_failure prints)."""
    if isinstance(exc, KeyboardInterrupt):
        return interrupt_message(exc)[0]
    error = exc if isinstance(exc, EdgeDistillError) else environment_error(exc) if isinstance(exc, OSError) else exc
    return str(error)


def report_failure(exc: BaseException, prog: str) -> int | None:
    """Print the one line for a user error, a file-system failure the user can fix, or an interrupt, and return
    the exit status; None for anything else (a bug: the caller re-raises it with its traceback)."""
    if isinstance(exc, KeyboardInterrupt):
        message, code = interrupt_message(exc)
        print(f"{prog}: {message}", file=sys.stderr)
        return code
    error = exc if isinstance(exc, EdgeDistillError) else environment_error(exc) if isinstance(exc, OSError) else None
    if error is None:
        return None
    print(f"{prog}: {getattr(error, 'label', 'error: ')}{error}", file=sys.stderr)
    return error.exit_code


def _print_result(module: ModuleType, args: argparse.Namespace, result: dict) -> None:
    if getattr(args, "json", False):
        print(json.dumps(result, default=str))
    else:
        formatter = getattr(module, "format_result", None)
        print(formatter(result) if formatter else json.dumps(result, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    from distill.core.config_file import given_flags

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args._given = given_flags(parser.commands[args.command], argv)  # what a --config file must not override
    return execute(args._module, args)


def main_single(module_path: str, prog: str, argv: list[str] | None = None) -> int:
    """``python -m <package>``: one command module as a program of its own."""
    module = importlib.import_module(module_path)
    parser = argparse.ArgumentParser(prog=prog, description=module.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(parser)
    return execute(module, parser.parse_args(argv))


def tool_parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    """The parser of a ``python -m`` helper: its module docstring as the description, kept as written."""
    return argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def script(prog: str):
    """Decorate a ``python -m`` helper's ``main(argv)``: a user error becomes one line, ``PROG: error: ...``, with
    the error's exit code, and Ctrl-C exits 130, as in the ``edgedistill`` commands."""

    def wrap(fn):
        @functools.wraps(fn)
        def main(argv: list[str] | None = None) -> int:
            configure_threads()  # before the helper imports torch, as the edgedistill commands do
            try:
                with sigterm_as_interrupt():
                    return fn(argv)
            except (EdgeDistillError, OSError, KeyboardInterrupt) as exc:
                code = report_failure(exc, prog)
                if code is None:
                    raise
                return code

        return main

    return wrap


# -- argparse types shared by every package's commands -------------------------------------------------------
def floats3(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers, got '{text}'") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers (R,G,B), got '{text}'")
    return values  # type: ignore[return-value]


def positive_int(text: str) -> int:
    value = _number(text, int)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _number(text: str, kind=float) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a {'whole ' if kind is int else ''}number, got '{text}'") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
    return value


def positive_float(text: str) -> float:
    """A finite number above 0 (a learning rate, a temperature, a time)."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text}")
    return value


def nonnegative_float(text: str) -> float:
    """A finite number, 0 or more (a weight decay, a warm-up, a loss weight)."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of 0 or more, got {text}")
    return value


def nonnegative_int(text: str) -> int:
    """A whole number, 0 or more (worker counts, step cadences where 0 means off)."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of 0 or more, got {text}")
    return value


def momentum(text: str) -> float:
    """A finite number in [0, 1): an exponential-moving-average momentum."""
    value = _number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number from 0 up to (not including) 1, got {text}")
    return value


def fraction(text: str) -> float:
    """A finite number in [0, 1] (a recall target, a share)."""
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text}")
    return value


def duration(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``1.5h`` -> seconds (positive)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", text.lower())
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration such as 300, 300s, 10m or 1.5h, got '{text}'")
    return float(match.group(1)) * {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}[match.group(2)]


def positive_ints(text: str) -> tuple[int, ...]:
    """``1,8,32`` -> (1, 8, 32): comma-separated positive whole numbers (batch sizes, k values)."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got '{text}'") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive numbers, got '{text}'")
    return values


def entry() -> None:
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)
