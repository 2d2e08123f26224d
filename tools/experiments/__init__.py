"""One-off measurements behind figures in docs/ that are not a product feature (ablations, rewrites compared).

Each module is a script: ``python -m tools.experiments.NAME --help``. They import the product but nothing imports
them; tests only check that they parse their arguments."""
