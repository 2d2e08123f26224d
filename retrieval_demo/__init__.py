"""edgedistill.retrieval_demo: index an image folder with an exported model (faiss), search it from the command
line or a small web page, and measure retrieval quality.

    from retrieval_demo import IndexParams, build_index, ImageIndex, Searcher, evaluate_index, create_app

The names are imported lazily (PEP 562), so that building the command-line parser imports no runtime.
"""
from distill.core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "retrieval_demo.metrics": ("evaluate_index", "retrieval_metrics"),
    "retrieval_demo.search": ("Searcher",),
    "retrieval_demo.kinds": ("INDEX_KINDS", "IndexKind"),
    "retrieval_demo.params": ("IndexParams",),
    "retrieval_demo.store": ("ImageIndex", "build_index"),
    "retrieval_demo.server": ("create_app",),
})
