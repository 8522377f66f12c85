"""``sd_hijack.model_hijack``: the parts extensions read (``embedding_db`` with ``word_embeddings``,
``optimization_method``, ``comments``); the patching methods do nothing (there is no ldm model to patch)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modules.scripting import runtime

if TYPE_CHECKING:
    from modules.engine.engine import Engine


class _EmbeddingDb:
    """A1111's ``EmbeddingDatabase`` read side: ``word_embeddings`` {name: embedding} and ``skipped_embeddings``."""

    def __init__(self, engine: "Engine") -> None:
        self._engine = engine

    def _db(self) -> Any:
        return self._engine.networks.prepare_embeddings(rescan=False)

    @property
    def word_embeddings(self) -> dict:
        db = self._db()
        return dict(getattr(db, "word_embeddings", None) or getattr(db, "loaded", None) or {})

    @property
    def skipped_embeddings(self) -> dict:
        return dict(getattr(self._db(), "skipped", None) or {})

    def load_textual_inversion_embeddings(self, force_reload: bool = False) -> None:
        self._engine.networks.prepare_embeddings(rescan=True)


class ModelHijack:
    optimization_method = "sdp"
    comments: list = []
    layers = None
    circular_enabled = False
    clip = None
    extra_generation_params: dict = {}

    @property
    def embedding_db(self) -> Any:
        return _EmbeddingDb(runtime.current())

    def hijack(self, m: Any) -> None:
        pass

    def undo_hijack(self, m: Any) -> None:
        pass

    def apply_circular(self, enable: bool) -> None:
        pass

    def clear_comments(self) -> None:
        self.comments = []

    def get_prompt_lengths(self, text: str) -> tuple[int, int]:
        from modules.core import token_counter  # noqa: F401 - token counting needs the loaded model

        engine = runtime.current()
        if engine.conditioner is None:
            return 0, 75
        used = engine.conditioner.count_tokens(text) if hasattr(engine.conditioner, "count_tokens") else 0
        used = used[0] if isinstance(used, tuple) else used
        return int(used), max(75, -(-int(used) // 75) * 75)


model_hijack = ModelHijack()


def apply_optimizations(option: Any = None) -> str:
    return ModelHijack.optimization_method


def undo_optimizations() -> None:
    pass
