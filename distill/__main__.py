"""``python -m distill train ...`` is ``edgedistill train ...``."""
import sys

from distill.cli import main

sys.exit(main())
