"""Repository tools, not part of the installed packages: the documentation generators and experiment
scripts that the Makefile runs from the checkout (``python -m tools.<name>``).

* ``tools.results``: the reproduction table (docs/RESULTS.md, docs/results.json), ``make results``;
* ``tools.sweep``: a grid of short training runs, one JSON line each;
* ``tools.bench_suite``: the standard benchmark (docs/BENCHMARKS.md, docs/EXPORT.md), ``make bench``;
* ``tools.bench_training``: the training-step throughput benchmark (docs/BENCHMARKS.md);
* ``tools.retrieval_study``, ``tools.retrieval_screenshot``: docs/RETRIEVAL.md and its screenshot.
"""
