"""The project's messages go through ``logging.getLogger("edgedistill")`` (and its children): a library user
routes or silences them as with any library (``logging.getLogger("edgedistill").setLevel(logging.ERROR)``); the
command line installs one handler on stderr, at INFO, WARNING with ``--quiet`` or DEBUG with ``--verbose``.
Results go to stdout, never through logging.
"""
from __future__ import annotations

import logging
import sys

LOGGER = "edgedistill"
log = logging.getLogger(LOGGER)


class _StderrHandler(logging.StreamHandler):
    """Writes to the *current* sys.stderr (a test's capture, a redirected stream), one line per record."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # logging.StreamHandler.__init__ sets it; the property always reads sys.stderr
        pass


class _Format(logging.Formatter):
    """``note: ...`` and information as they are; warnings as ``edgedistill: warning: ...`` (the error line of a
    failure is the only other line that starts with the program's name)."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno < logging.WARNING or text.startswith("note:"):
            return text
        return f"edgedistill: {text if text.startswith('warning:') else f'{record.levelname.lower()}: {text}'}"


def configure_cli_logging(quiet: bool = False, verbose: bool = False) -> None:
    """The command line's handler (installed once): INFO by default, WARNING with --quiet, DEBUG with --verbose."""
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_Format())
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
