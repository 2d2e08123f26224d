"""``python -m bench ...`` is ``edgedistill bench ...``."""
import sys

from distill.core.cli import main_single

sys.exit(main_single("bench.cli", prog="python -m bench"))
