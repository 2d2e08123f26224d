"""``python -m retrieval_demo ...`` is ``edgedistill retrieve ...``."""
import sys

from distill.core.cli import main_single

sys.exit(main_single("retrieval_demo.cli", prog="python -m retrieval_demo"))
