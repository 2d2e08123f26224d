"""``python -m export ...`` is ``edgedistill export ...``."""
import sys

from distill.core.cli import main_single

sys.exit(main_single("export.cli", prog="python -m export"))
