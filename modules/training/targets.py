"""What a training run changes: an embedding's vectors or a hypernetwork's MLPs, and everything that differs
between the two (where the file is, how conditioning is computed, how the file and its ``.optim`` are saved).

The model itself is never trained: the trainer turns ``requires_grad`` off for all of its weights, and a target
only adds its own parameters.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from modules.networks.embedding_files import Embedding
from modules.networks.hypernet_attention import HypernetworkPatch
from modules.networks.hypernetwork import Hypernetwork, HypernetworkLoadError
from modules.training import files
from modules.training.files import CreateError

if TYPE_CHECKING:
    from modules.engine.engine import Engine

__all__ = ["EmbeddingTarget", "HypernetworkTarget"]


def _checkpoint_ids(engine: "Engine") -> tuple[str | None, str | None]:
    info = engine.checkpoint_info
    if info is None:
        return None, None
    return getattr(info, "shorthash", None), getattr(info, "model_name", None)


class _TrainingLookup:
    """The embedding database's lookup, except that the word being trained finds the trainable vectors."""

    def __init__(self, db: Any, embedding: Embedding, ids: tuple[int, ...]):
        self.db = db
        self.embedding = embedding
        self.ids = ids

    def find_embedding_at_position(self, tokens: list[int], offset: int) -> tuple[Any, int]:
        n = len(self.ids)
        if n and tuple(tokens[offset:offset + n]) == self.ids:
            return self.embedding, n
        return self.db.find_embedding_at_position(tokens, offset)


def _conditioner(engine: "Engine", lookup: Any) -> Any:
    from modules.engine.conditioning import TextConditioner

    model = engine.model
    return TextConditioner(model.family, model.tokenizers, model.text_encoders, engine.conditioning_options(None),
                           embeddings=lookup)


class EmbeddingTarget:
    kind = "embedding"
    weight_decay = 0.0  # A1111 trains embeddings with AdamW without weight decay

    def __init__(self, engine: "Engine", name: str):
        self.engine = engine
        db = engine.networks.prepare_embeddings(force=False)
        found = db.word_embeddings.get(name)
        if found is None:
            raise CreateError("embedding_name", f"no embedding {name!r} for the loaded model "
                                                f"(known: {', '.join(db.word_embeddings) or 'none'})")
        if isinstance(found.vec, dict) or found.source != "file" or not found.filename:
            raise CreateError("embedding_name", f"{name!r} is not a single-encoder embedding file; only those "
                                                "can be trained")
        self.name = name
        self.source = Path(found.filename)
        self.path = self.source if self.source.suffix.lower() == ".pt" else self.source.with_suffix(".pt")
        self.step = int(found.step or 0)
        encoder = engine.model.text_encoders[0]
        device = next(encoder.parameters()).device
        self.vec = found.vec.detach().clone().float().to(device).requires_grad_(True)
        self.embedding = Embedding(name=name, vec=self.vec, filename=str(self.path), step=self.step)
        ids = engine.model.tokenizers[0](name, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        self.conditioner = _conditioner(engine, _TrainingLookup(db, self.embedding, tuple(int(i) for i in ids)))
        for enc in self.conditioner.encoders:
            enc.track_grad = True
        self.initial_checksum = files.embedding_checksum(self.vec)

    def parameters(self) -> list[torch.nn.Parameter | torch.Tensor]:
        return [self.vec]

    def train_mode(self) -> None:
        pass

    def conditioning(self, prompts: list[str]) -> torch.Tensor:
        return self.conditioner.get_learned_conditioning(prompts)

    def resume_state(self) -> dict | None:
        return files.load_optimizer(self.source, self.initial_checksum)

    def save(self, path: Path, step: int, optimizer: torch.optim.Optimizer | None) -> Path:
        ckpt_hash, ckpt_name = _checkpoint_ids(self.engine)
        files.save_embedding(path, self.name, self.vec, step, ckpt_hash, ckpt_name)
        if optimizer is not None:
            files.save_optimizer(path, optimizer, files.embedding_checksum(self.vec))
        return path

    def png_chunk(self, step: int) -> str:
        ckpt_hash, ckpt_name = _checkpoint_ids(self.engine)
        return files.embedding_png_chunk(self.name, self.vec, step, ckpt_hash, ckpt_name)

    def preview_prompt(self, prompt: str) -> str:
        return prompt

    def after_preview(self) -> None:
        pass

    def close(self) -> None:
        pass


class HypernetworkTarget:
    kind = "hypernetwork"
    weight_decay = 0.01  # torch's AdamW default, which A1111 keeps for hypernetworks

    def __init__(self, engine: "Engine", name: str):
        self.engine = engine
        catalog = engine.networks.hypernetworks
        entry = catalog.get(name)
        if entry is None:
            catalog.refresh()
            entry = catalog.get(name)
        if entry is None:
            raise CreateError("hypernetwork_name", f"no hypernetwork {name!r} (known: "
                                                   f"{', '.join(e.name for e in catalog.items()) or 'none'})")
        self.path = self.source = Path(entry.path)
        try:
            self.network = Hypernetwork.load(self.path)
        except HypernetworkLoadError as e:
            raise CreateError("hypernetwork_name", e.reason) from e
        self.name = entry.name
        self.step = int(self.network.step)
        self.initial_checksum = files.file_shorthash(self.path)
        unet = engine.model.unet
        self.device = next(unet.parameters()).device
        self.patch = HypernetworkPatch(unet)
        self.patch.set([(self.network, 1.0)])
        self.network.to(self.device, torch.float32)  # trained in float32 whatever the UNet's dtype
        self.train_mode()
        self.conditioner = _conditioner(engine, engine.networks.prepare_embeddings(force=False))

    def train_mode(self) -> None:
        for module in self.network.modules():
            module.train()
            module.requires_grad_(True)

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for m in self.network.modules() for p in m.parameters()]

    def conditioning(self, prompts: list[str]) -> torch.Tensor:
        with torch.no_grad():
            return self.conditioner.get_learned_conditioning(prompts)

    def resume_state(self) -> dict | None:
        return files.load_optimizer(self.source, self.initial_checksum)

    def save(self, path: Path, step: int, optimizer: torch.optim.Optimizer | None) -> Path:
        ckpt_hash, ckpt_name = _checkpoint_ids(self.engine)
        files.save_hypernetwork(path, self.network, self.name, step, ckpt_hash, ckpt_name)
        if optimizer is not None:
            files.save_optimizer(path, optimizer, files.file_shorthash(path))
        return path

    def preview_prompt(self, prompt: str) -> str:
        return f"{prompt} <hypernet:{self.name}:1>"

    def after_preview(self) -> None:
        """A preview generation installed the manager's own copy of the file; put the trained one back."""
        self.patch.set([(self.network, 1.0)])
        self.network.to(self.device, torch.float32)

    def close(self) -> None:
        self.patch.set([])
        self.network.eval()
