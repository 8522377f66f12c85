"""The model a fresh install opens on: the shipped demo checkpoint, or a generated placeholder.

:func:`default_model` is what the engine loads when ``models/Stable-diffusion`` is empty: the trained demo
model shipped in the repository (``models/demo/sd-demo-shapes-64.safetensors``, 64 px, draws coloured shapes
from prompts such as "a red circle on a blue background"; see ``tools/demo_model``), or, if that file is
missing (a trimmed install), the untrained placeholder below.

:func:`ensure_builtin_model` writes ``builtin-tiny-sd1.safetensors`` into a cache folder once and
returns its path. It is an ordinary single-file checkpoint in the original layout (it loads through
``modules.checkpoint_loader.load_checkpoint`` like any user file): the SD1 architecture at toy
widths, with the real CLIP tokenizer vocabulary (49408 tokens).

Its weights are untrained and deterministic: they come from a counter-based SplitMix64 generator
evaluated with exact integer and IEEE arithmetic in numpy (no torch RNG, whose kernels differ
between CPUs), so the file is byte-identical on every machine. Bump ``BUILTIN_VERSION`` whenever the bytes
change.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

__all__ = ["BUILTIN_FILENAME", "BUILTIN_VERSION", "DEMO_FILENAME", "DEMO_PATH", "DEMO_SHA256", "DEMO_VERSION",
           "SEED", "builtin_configs", "build_builtin_components", "default_model", "ensure_builtin_model"]

DEMO_FILENAME = "sd-demo-shapes-64.safetensors"
DEMO_PATH = Path(__file__).resolve().parents[2] / "models" / "demo" / DEMO_FILENAME
# sha256 of the shipped file (`python -m tools.demo_model.train_model export` prints it; see README, "Demo model").
DEMO_SHA256 = "976c3c4e97342824b7c97f26221ab1b6c330c4c52f1a1ecfd570470053e1789d"
DEMO_VERSION = "1"  # the file's sd_webui_diffusers.demo_version metadata

BUILTIN_FILENAME = "builtin-tiny-sd1.safetensors"
BUILTIN_VERSION = "1"
SEED = 20240531
_META_KEY = "sd_webui_diffusers.builtin_version"


def builtin_configs() -> dict[str, dict]:
    """Component configs: the shipped SD1 configs at toy widths."""
    from modules.models import checkpoint_detect as cd

    unet = cd.shipped_config("sd1", "unet")
    unet.update(block_out_channels=[32, 64], layers_per_block=1,
                down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"], cross_attention_dim=32, attention_head_dim=8)
    vae = cd.shipped_config("sd1", "vae")
    vae.update(block_out_channels=[32, 32, 64, 64], layers_per_block=1)
    te = cd.shipped_config("sd1", "text_encoder")
    te.update(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=1, projection_dim=32)
    return {"unet": unet, "vae": vae, "text_encoder": te}


_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(counter: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = counter * _GAMMA
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def _uniform(start: int, n: int) -> np.ndarray:
    """n numbers in [0, 1) (multiples of 2**-24, exact in float32), stream position ``start``."""
    counter = np.arange(n, dtype=np.uint64) + np.uint64(start) + np.uint64(SEED) * np.uint64(1 << 32)
    return (_splitmix64(counter) >> np.uint64(40)).astype(np.float64) / float(1 << 24)


def _init_value(name: str, shape: tuple[int, ...], start: int) -> torch.Tensor:
    n = math.prod(shape)
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "bias":
        return torch.zeros(shape, dtype=torch.float32)
    if len(shape) == 1:  # GroupNorm / LayerNorm scales
        return torch.ones(shape, dtype=torch.float32)
    if "embedding" in name and "time_embedding" not in name:
        bound = 0.02 * math.sqrt(3.0)  # std 0.02, like CLIP's initialiser
    else:
        bound = 1.0 / math.sqrt(math.prod(shape[1:]))  # PyTorch's default for Linear / Conv
    u = _uniform(start, n)
    values = (u * 2.0 - 1.0) * bound
    return torch.from_numpy(values.astype(np.float32).reshape(shape))


def build_builtin_components() -> dict:
    """The built-in model as diffusers modules (deterministic weights)."""
    from modules.models.checkpoint_loader import build_empty_models

    models = build_empty_models(builtin_configs())
    position = 0
    for comp in ("unet", "vae", "text_encoder"):
        model = models[comp]
        sd = {}
        for name, t in model.state_dict().items():
            shape = tuple(t.shape)
            sd[name] = _init_value(f"{comp}.{name}", shape, position)
            position += math.prod(shape)
        model.load_state_dict(sd, strict=True, assign=True)
        model.to("cpu")
        model.eval().requires_grad_(False)
    return models


def _is_current(path: Path) -> bool:
    from modules.models.safe_load import CheckpointLoadError, read_safetensors_metadata

    try:
        return read_safetensors_metadata(path).get(_META_KEY) == BUILTIN_VERSION
    except CheckpointLoadError:
        return False


def ensure_builtin_model(cache_dir: str | os.PathLike) -> Path:
    """Path of the built-in tiny SD1 checkpoint in ``cache_dir``, writing it first if needed."""
    from modules.models.ldm_export import save_single_file

    cache_dir = Path(cache_dir)
    path = cache_dir / BUILTIN_FILENAME
    if path.is_file() and _is_current(path):
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    components = build_builtin_components()
    metadata = {
        _META_KEY: BUILTIN_VERSION,
        "modelspec.title": "Built-in tiny SD1 (untrained)",
        "modelspec.architecture": "stable-diffusion-v1",
        "modelspec.description": "Deterministic untrained placeholder with the SD1 layout at toy widths.",
    }
    return save_single_file(components, path, "sd1", metadata=metadata, dtype=torch.float16)


def default_model(cache_dir: str | os.PathLike) -> Path:
    """The checkpoint to use when the user has none: the shipped demo model, else the generated placeholder
    (written into ``cache_dir`` once)."""
    if DEMO_PATH.is_file():
        return DEMO_PATH
    return ensure_builtin_model(cache_dir)
