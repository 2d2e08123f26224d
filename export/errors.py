"""Errors of the export package (all user-facing, see :mod:`distill.core.errors`)."""
from distill.core.errors import EdgeDistillError


class ExportError(EdgeDistillError):
    """A format could not be built (converter failure, missing runtime, unsupported option)."""


class ParityError(EdgeDistillError):
    """An artifact was built but its outputs differ from PyTorch's beyond the tolerance."""

    exit_code = 3
