"""A1111's ``modules.sd_hijack``: A1111 patches the ldm model here; this app has nothing to patch. Extensions
mostly reach ``model_hijack.embedding_db`` (the textual-inversion embeddings) and call ``hijack``/``undo_hijack``
around their own patches. A thin facade; the code lives in ``modules.scripting.a1111_hijack``."""
from modules.scripting.a1111_hijack import model_hijack, apply_optimizations, undo_optimizations  # noqa: F401
