"""``python -m edgedistill``: the console command, where its script is not on PATH."""
from distill.core.cli import entry

entry()
