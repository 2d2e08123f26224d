"""The project's error hierarchy.

Every error a user can cause (a bad path, a wrong checkpoint, an unknown name) is raised as a subclass of
:class:`EdgeDistillError` with a one-line message that names the problem and the fix. The command line catches
this base class, prints ``edgedistill: error: <message>`` and exits with status 2; anything else is a bug and
keeps its traceback.
"""
from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of a (third-party) exception's message, or its type's name when it has none: what goes into
    a one-line error, never a C++ stack."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class EdgeDistillError(Exception):
    """Base class of every user-facing error. ``result``: what the command did produce before failing (the export
    table, the rows a bench could measure), printed before the error line."""

    exit_code = 2
    label = "error: "  # printed after "edgedistill: "; a stop on a signal is not an error ("" : distill.stopping)

    def __init__(self, *args, result: dict | None = None):
        super().__init__(*args)
        self.result = result


class PartialResult(EdgeDistillError):
    """A command finished part of its work (a bench that measured some artifacts and not others): its result
    holds what was done."""

    exit_code = 4


class DataError(EdgeDistillError):
    """An image folder is missing, empty, unreadable or has the wrong layout."""


class ModelError(EdgeDistillError):
    """A model name, checkpoint, architecture or weight file cannot be used."""


class ConfigError(EdgeDistillError):
    """A flag or configuration value is out of range or inconsistent with another."""


class CheckpointError(EdgeDistillError):
    """A checkpoint or run folder is missing, foreign, or incompatible with the request."""


class MissingDependencyError(EdgeDistillError):
    """An optional dependency is not installed; the message names the extra that provides it."""


class TrainingError(EdgeDistillError):
    """Training cannot go on (for example a non-finite loss)."""
