"""The shared layer of edgedistill: what ``distill``, ``export``, ``bench`` and ``retrieval_demo`` all use.

* :mod:`~distill.core.errors`: the user-facing error hierarchy (one line, exit code 2);
* :mod:`~distill.core.deps`: optional dependencies, failing with the extra that provides them;
* :mod:`~distill.core.atomic`: atomic writes (temp file, fsync, rename) and the doc-section writer;
* :mod:`~distill.core.images`: scanning and decoding image folders; :mod:`~distill.batches`: batches of them;
* :mod:`~distill.core.preprocess`: resize, crop and normalisation, and teacher sidecars;
* :mod:`~distill.core.device`: ``--device``; :mod:`~distill.core.progress`: progress bars;
* :mod:`~distill.core.cli`: the command framework and argparse types;
* :mod:`~distill.core.embeddings`: the embedding math (normalisation, cosine, search, kNN, neighbour overlap).

Nothing here imports training code (``distill.trainer``, losses, students). The modules are imported where
used (this package imports none of them), so the command-line parser stays free of torch.
"""
