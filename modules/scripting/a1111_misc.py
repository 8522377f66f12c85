"""Small A1111 names that the facades re-export: helpers of ``devices``, ``extensions``, ``hashes``, ``lowvram``,
``safe``, ``ui_common``, constants of ``images``, ``shared``, ``sd_vae`` and ``infotext_utils``. Each resolves
what it needs from the running Engine when called."""
from __future__ import annotations

import logging
from typing import Any

import torch

from modules.models.hashes import sha256_file
from modules.scripting import runtime
from modules.scripting.a1111_shared import TotalTqdm

# --- shared ---------------------------------------------------------------------------------------------
log = logging.getLogger("sd")
total_tqdm = TotalTqdm()
hide_dirs = {"visible": True}
xformers_available = False


def reload_gradio_theme(theme_name: str | None = None) -> None:
    """A1111 rebuilds the Gradio theme; this app's page has its own."""


# --- devices --------------------------------------------------------------------------------------------
def get_optimal_device() -> torch.device:
    return runtime.current().devices.device


def get_optimal_device_name() -> str:
    return str(get_optimal_device())


class NansException(Exception):
    """A1111's ``devices.NansException``: raised when a tensor holds NaNs (this app reports NaNs in its own
    error); extensions catch it by name."""


def cond_cast_unet(tensor: Any) -> Any:
    return tensor


def cond_cast_float(tensor: Any) -> Any:
    return tensor.float() if getattr(tensor, "dtype", None) is not None and tensor.dtype.is_floating_point else tensor


# --- extensions -----------------------------------------------------------------------------------------
def active_extensions() -> list:
    return runtime.host().extensions.active()


def list_extensions() -> None:
    """A1111 re-reads the extension folders here."""
    runtime.host().extensions.refresh()


# --- hashes ---------------------------------------------------------------------------------------------
calculate_sha256 = sha256_file


def sha256(filename: str, title: str, use_addnet_hash: bool = False) -> str | None:
    cache = runtime.current().hash_cache
    return cache.get_addnet(filename, title) if use_addnet_hash else cache.get_sha256(filename, title)


def sha256_from_cache(filename: str, title: str, use_addnet_hash: bool = False) -> str | None:
    return runtime.current().hash_cache.cached(filename, title, "addnet" if use_addnet_hash else "sha256")


# --- lowvram --------------------------------------------------------------------------------------------
def lowvram_is_enabled(sd_model: Any = None) -> bool:
    engine = runtime.current(required=False)
    return bool(engine is not None and engine.devices.offload != "none")


def send_everything_to_cpu() -> None:
    """Nothing to do: offloaded models are moved by accelerate's hooks (``--medvram``/``--lowvram``)."""


def setup_for_low_vram(sd_model: Any, use_medvram: bool) -> None:
    """Done at load time here (``--medvram``/``--lowvram``)."""


# --- safe -----------------------------------------------------------------------------------------------
unsafe_torch_load = torch.load


def safe_load(filename: Any, *args: Any, **kwargs: Any) -> Any:
    """A1111's restricted unpickler: ``torch.load(weights_only=True)`` here."""
    kwargs.setdefault("weights_only", True)
    return torch.load(filename, *args, **kwargs)


# --- ui_common / images / sd_vae ------------------------------------------------------------------------
def open_folder(f: Any, path: Any = None) -> Any:
    """A1111 opens a file manager on the server; a local web UI here only names the folder."""
    return f


LANCZOS = 1  # PIL's resampling numbers, as A1111's images module exposes them
NEAREST = 0
unspecified = object()  # sd_vae's "no VAE given" marker

# --- infotext_utils -------------------------------------------------------------------------------------
infotext_to_setting_name_mapping = [
    ("Clip skip", "CLIP_stop_at_last_layers"), ("Conditional mask weight", "inpainting_mask_weight"),
    ("Model hash", "sd_model_checkpoint"), ("ENSD", "eta_noise_seed_delta"), ("Schedule type", "k_sched_type"),
    ("Schedule max sigma", "sigma_max"), ("Schedule min sigma", "sigma_min"), ("Schedule rho", "rho"),
    ("Noise multiplier", "initial_noise_multiplier"), ("Eta", "eta_ancestral"), ("Eta DDIM", "eta_ddim"),
    ("Sigma churn", "s_churn"), ("Sigma tmin", "s_tmin"), ("Sigma tmax", "s_tmax"), ("Sigma noise", "s_noise"),
    ("Discard penultimate sigma", "always_discard_next_to_last_sigma"), ("UniPC variant", "uni_pc_variant"),
    ("UniPC skip type", "uni_pc_skip_type"), ("UniPC order", "uni_pc_order"),
    ("UniPC lower order final", "uni_pc_lower_order_final"), ("Token merging ratio", "token_merging_ratio"),
    ("Token merging ratio hr", "token_merging_ratio_hr"), ("RNG", "randn_source"), ("NGMS", "s_min_uncond"),
    ("Pad conds", "pad_cond_uncond"), ("VAE", "sd_vae"), ("Emphasis", "emphasis"), ("Tiling", "tiling"),
]
PASTE_UI_NAMES = ("ParamBinding", "register_paste_params_button", "create_buttons", "bind_buttons", "paste_fields",
                  "add_paste_fields", "image_from_url_text", "connect_paste_params_buttons", "paste_bindings")


# --- shared_items -------------------------------------------------------------------------------------
def sd_vae_items() -> list[str]:
    return runtime.current().vaes.choices()


def refresh_vae_list() -> None:
    runtime.current().vaes.refresh()


def list_checkpoint_tiles(use_short: bool = False) -> list[str]:
    return [(c.short_title if use_short else c.title) for c in runtime.current().available_checkpoints()]


def refresh_checkpoints() -> None:
    runtime.current().refresh_checkpoints()


def sd_unet_items() -> list[str]:
    """A1111's list of UNet replacements (TensorRT...): none exist here."""
    return ["Automatic", "None"]
