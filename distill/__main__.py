"""``python -m distill train ...`` is ``edgedistill train ...``."""
import sys

from distill.core.cli import main

sys.exit(main())
