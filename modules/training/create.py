"""Create a new embedding or hypernetwork file for the loaded model (A1111's Train tab, first two sub-tabs, and
``/sdapi/v1/create/*``). The file is written atomically and the catalogs are refreshed, so the new word or
``<hypernet:NAME>`` works at once."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from modules.training import files
from modules.training.files import CreateError

if TYPE_CHECKING:
    from modules.engine.engine import Engine

__all__ = ["create_embedding", "create_hypernetwork", "model_widths", "embeddings_target_dir",
           "hypernetworks_target_dir", "DEFAULT_SIZES"]

DEFAULT_SIZES = (768, 320, 640, 1280)  # A1111's default "Modules" choice


def embeddings_target_dir(engine: "Engine") -> Path:
    """Where new embeddings go: the ``--embeddings-dir`` folder when the app reads it, else the first embeddings
    folder (``<models>/embeddings``)."""
    folders = [Path(d) for d in engine.paths.embeddings_dirs]
    arg = getattr(engine.args, "embeddings_dir", None)
    if arg and Path(arg).absolute() in [f.absolute() for f in folders]:
        return Path(arg)
    return folders[0]


def hypernetworks_target_dir(engine: "Engine") -> Path:
    return Path(engine.paths.hypernetwork_dirs[0])


def model_widths(engine: "Engine") -> list[int]:
    """The context widths the loaded model's attention sees: the text width first, then its channel widths."""
    model = engine.model
    if model is None:
        return list(DEFAULT_SIZES)
    cross = model.unet.config.cross_attention_dim
    widths = [int(c) for c in (cross if isinstance(cross, (list, tuple)) else [cross])]
    widths += [int(c) for c in model.unet.config.block_out_channels]
    return list(dict.fromkeys(widths))


def _turn(engine: "Engine"):
    from modules.training.trainer import _queue_turn

    return _queue_turn(engine)


def _check_free(path: Path, overwrite: bool, field: str = "overwrite_old") -> None:
    if path.exists() and not overwrite:
        raise CreateError(field, f"file {path} already exists; tick overwrite to replace it")


def create_embedding(engine: "Engine", name: str, num_vectors_per_token: int = 1, overwrite_old: bool = False,
                     init_text: str = "*") -> Path:
    """``NAME.pt`` with ``num_vectors_per_token`` vectors started from ``init_text``'s token embeddings."""
    clean = files.sanitize_name(name)
    if isinstance(num_vectors_per_token, bool) or not isinstance(num_vectors_per_token, int) \
            or not 1 <= num_vectors_per_token <= 75:
        raise CreateError("num_vectors_per_token", f"must be a whole number from 1 to 75, got {num_vectors_per_token!r}")
    path = embeddings_target_dir(engine) / f"{clean}.pt"
    _check_free(path, bool(overwrite_old))
    with _turn(engine):
        engine.ensure_model()
        model = engine.model
        if model.family in ("sdxl", "sdxl-refiner"):
            raise CreateError("name", "creating SDXL embeddings is not supported; load an SD1 or SD2 checkpoint")
        vec = files.embedding_init_vectors(model.tokenizers[0], model.text_encoders[0], str(init_text or ""),
                                           num_vectors_per_token)
        info = engine.checkpoint_info
        files.save_embedding(path, clean, vec, 0, getattr(info, "shorthash", None), getattr(info, "model_name", None))
        files.remove_stale_optimizer(path)
        engine.networks.refresh(["embedding"])
    return path


def create_hypernetwork(engine: "Engine", name: str, enable_sizes: Sequence[Any] | None = None, overwrite_old: bool = False,
                        layer_structure: Any = None, activation_func: str | None = None, weight_init: str | None = None,
                        add_layer_norm: bool = False, use_dropout: bool = False, dropout_structure: Any = None,
                        activate_output: bool = False, last_layer_dropout: bool = False, seed: int = 0) -> Path:
    """``NAME.pt`` in the hypernetworks folder with a fresh key/value MLP pair for each width."""
    clean = files.sanitize_name(name)
    try:
        sizes = [int(s) for s in (enable_sizes if enable_sizes is not None else DEFAULT_SIZES)]
    except (TypeError, ValueError):
        raise CreateError("enable_sizes", f"must be a list of widths, got {enable_sizes!r}") from None
    ls = files.parse_number_list(layer_structure, "layer_structure")
    ds = files.parse_number_list(dropout_structure, "dropout_structure")
    act = None if activation_func in (None, "", "None") else str(activation_func)
    path = hypernetworks_target_dir(engine) / f"{clean}.pt"
    _check_free(path, bool(overwrite_old))
    hn = files.new_hypernetwork(clean, sizes, layer_structure=ls, activation_func=act,
                                weight_init=weight_init or "Normal", add_layer_norm=bool(add_layer_norm),
                                use_dropout=bool(use_dropout), dropout_structure=ds,
                                activate_output=bool(activate_output), last_layer_dropout=bool(last_layer_dropout),
                                seed=seed)
    info = engine.checkpoint_info
    files.save_hypernetwork(path, hn, clean, 0, getattr(info, "shorthash", None), getattr(info, "model_name", None))
    files.remove_stale_optimizer(path)
    engine.networks.refresh(["hypernet"])
    return path
