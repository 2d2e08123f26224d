"""Command-line sub-commands of the ``distill`` package (see :mod:`distill.core.cli`)."""
