"""edgedistill.retrieval_demo: index an image folder with an exported model (faiss), search it from the command
line or a small web page, and measure retrieval quality.

    from retrieval_demo import IndexParams, build_index, ImageIndex, Searcher, evaluate_index, create_app
"""
from retrieval_demo.metrics import evaluate_index, retrieval_metrics
from retrieval_demo.search import Searcher
from retrieval_demo.store import INDEX_KINDS, ImageIndex, IndexParams, build_index


def create_app(index_dir, **kw):
    """The FastAPI app serving ``index_dir`` (needs the ``demo`` extra)."""
    from retrieval_demo.server import create_app as _create

    return _create(index_dir, **kw)


__all__ = ["IndexParams", "INDEX_KINDS", "build_index", "ImageIndex", "Searcher", "evaluate_index",
           "retrieval_metrics", "create_app"]
