"""Load Stable Diffusion checkpoints (single-file original layout, or diffusers folders) offline.

Nothing here ever asks the Hugging Face hub: component configs and tokenizer files ship with the
project (``modules/models/model_configs``), the original ldm/sgm keys are converted with diffusers' own
helpers from ``diffusers.loaders.single_file_utils``, and the modules are built on the meta
device and given the converted tensors directly (``load_state_dict(assign=True)``), so loading
costs little more than reading the file.

Entry points: :func:`load_checkpoint`, :func:`load_diffusers_folder`, :func:`load_vae` /
:func:`apply_vae`, :func:`load_tokenizer`.
"""
from __future__ import annotations

import os

# Before diffusers / transformers / huggingface_hub are imported by this module: never go online.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import json  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402
from typing import Any, Mapping  # noqa: E402

import torch  # noqa: E402

from modules.models import checkpoint_detect as cd  # noqa: E402
from modules.models.safe_load import CheckpointLoadError, load_state_dict  # noqa: E402

log = logging.getLogger(__name__)

__all__ = [
    "LoadedModel",
    "CheckpointLoadError",
    "load_any",
    "load_checkpoint",
    "load_checkpoint_state_dict",
    "load_diffusers_folder",
    "convert_original_state_dict",
    "build_empty_models",
    "load_vae",
    "apply_vae",
    "load_tokenizer",
    "scheduler_config_for",
    "native_size_from_metadata",
    "native_size_of_file",
    "TOKENIZER_DIR",
]

TOKENIZER_DIR = cd.CONFIG_ROOT / "clip_tokenizer"


@dataclass
class LoadedModel:
    family: str                       # "sd1" | "sd2" | "sdxl" | "sdxl-refiner"
    is_inpainting: bool
    prediction_type: str              # "epsilon" | "v_prediction"
    native_size: int | tuple[int, int]  # 512 / 768 / 1024, or the file's modelspec.resolution ((w, h) if not square)
    unet: Any                         # diffusers UNet2DConditionModel
    vae: Any                          # diffusers AutoencoderKL
    text_encoders: list               # transformers CLIPTextModel (+ CLIPTextModelWithProjection for SDXL)
    tokenizers: list                  # transformers CLIPTokenizer, one per text encoder
    scheduler_config: dict            # the family's scheduler config with the right prediction_type
    path: str
    config: dict[str, dict]           # inferred configs: unet, vae, text_encoder(_2), scheduler
    dtype: torch.dtype = torch.float32
    device: str = "cpu"
    has_baked_vae: bool = True        # False: the checkpoint had no VAE, vae_path supplied it
    vae_path: str | None = None       # external VAE applied at load time
    ignored_keys: list[str] = field(default_factory=list)   # unknown top-level keys, not loaded
    warnings: list[str] = field(default_factory=list)
    load_seconds: float = 0.0

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.unet.config.out_channels)


# --------------------------------------------------------------------------------------------
# tokenizers and schedulers


def load_tokenizer(family: str, index: int = 0):
    """A fresh CLIPTokenizer for text encoder ``index`` of ``family``, from the shipped files
    (each call returns a new instance: textual inversion adds tokens to it)."""
    from transformers import CLIPTokenizer

    name = "tokenizer" if index == 0 else f"tokenizer_{index + 1}"
    cfg = cd.shipped_config(family, name)
    return CLIPTokenizer(
        vocab=str(TOKENIZER_DIR / "vocab.json"),
        merges=str(TOKENIZER_DIR / "merges.txt"),
        pad_token=cfg.get("pad_token", "<|endoftext|>"),
        model_max_length=int(cfg.get("model_max_length", 77)),
    )


def scheduler_config_for(family: str, prediction_type: str, *, zero_terminal_snr: bool = False) -> dict:
    cfg = cd.shipped_config(family, "scheduler")
    cfg["prediction_type"] = prediction_type
    if zero_terminal_snr:
        cfg["rescale_betas_zero_snr"] = True
    return cfg


def native_size_from_metadata(metadata: Mapping[str, Any]) -> int | tuple[int, int] | None:
    """``modelspec.resolution`` ("512x512", "1024x768" as width x height, or "64") as an int for a square
    size or (width, height); None when absent or malformed."""
    value = str(metadata.get("modelspec.resolution") or "").strip().lower()
    if not value:
        return None
    parts = value.replace(" ", "").split("x")
    try:
        dims = [int(p) for p in parts]
    except ValueError:
        return None
    if len(dims) == 1:
        dims = dims * 2
    if len(dims) != 2 or min(dims) < 8 or max(dims) > 16384:
        return None
    return dims[0] if dims[0] == dims[1] else (dims[0], dims[1])


def native_size_of_file(path: str | os.PathLike) -> int | tuple[int, int] | None:
    """The native size a checkpoint file declares or implies, from its header only (no weights read):
    ``modelspec.resolution``, else the family's size from the tensor shapes. None for other files."""
    from modules.models.safe_load import read_safetensors_metadata, read_safetensors_shapes

    if Path(path).suffix.lower() != ".safetensors":
        return None
    size = native_size_from_metadata(read_safetensors_metadata(path))
    if size is not None:
        return size
    try:
        det = cd.detect(cd.normalize_keys(read_safetensors_shapes(path)))
    except cd.UnsupportedArchitectureError:
        return None
    return det.native_size or cd.native_size_for(det.family, "epsilon", det.is_inpainting)


def _apply_declared_size(det: cd.Detection, models: Mapping[str, Any], size: int | tuple[int, int]) -> None:
    """Use the file's own resolution (e.g. a 64 px demo model) instead of the family's default."""
    width = size if isinstance(size, int) else size[0]
    cd.apply_native_size(det, width)
    det.native_size = size
    models["unet"].register_to_config(sample_size=det.configs["unet"]["sample_size"])
    if "vae" in models:
        models["vae"].register_to_config(sample_size=width)


# --------------------------------------------------------------------------------------------
# conversion (pure: works on meta tensors too)


def _diffusers_helpers():
    from diffusers.loaders import single_file_utils as sfu

    return sfu


def _open_clip_to_diffusers(sd: Mapping[str, Any], prefix: str, cfg: dict, *, with_projection: bool) -> dict:
    """OpenCLIP keys under ``prefix`` -> CLIPTextModel(WithProjection) keys (``text_model.*``)."""
    sfu = _diffusers_helpers()
    n_layers = cfg["num_hidden_layers"]
    sub = {}
    for k, v in sd.items():
        if not k.startswith(prefix):
            continue
        rest = k[len(prefix):]
        if rest.startswith("transformer.resblocks."):
            if int(rest.split(".")[2]) >= n_layers:
                continue  # SD2: the penultimate-layer model has no use for the last block
        elif rest == "text_projection":
            if not with_projection:
                continue
        elif rest not in ("token_embedding.weight", "positional_embedding", "ln_final.weight", "ln_final.bias"):
            continue
        sub[k] = v
    dummy = SimpleNamespace(config=SimpleNamespace(hidden_size=cfg["hidden_size"]))
    out = sfu.convert_open_clip_checkpoint(dummy, sub, prefix=prefix)
    if not with_projection:
        out.pop("text_projection.weight", None)
    return out


def _clip_to_diffusers(sd: Mapping[str, Any], prefix: str) -> dict:
    """HF-CLIP keys under ``prefix`` (``...transformer.text_model.``) -> ``text_model.*``."""
    sfu = _diffusers_helpers()
    outer = prefix[: -len("text_model.")]  # "cond_stage_model.transformer."
    sub = {k: v for k, v in sd.items() if k.startswith(prefix) and not k.endswith("embeddings.position_ids")}
    return sfu.convert_ldm_clip_checkpoint(sub, remove_prefix=outer)


def convert_original_state_dict(sd: Mapping[str, Any], det: cd.Detection) -> tuple[dict[str, dict], list[str]]:
    """Split a normalised original-layout state dict into diffusers-layout component state dicts.

    Returns ``({"unet": ..., "vae": ..., "text_encoder": ..., "text_encoder_2": ...}, ignored)``
    where ``ignored`` lists the keys that belong to no component (and are not known junk).
    Text-encoder dicts are keyed ``text_model.*`` (+ ``text_projection.weight``); see
    :func:`fit_text_encoder_keys` for the flattened transformers layout.
    """
    sfu = _diffusers_helpers()
    out: dict[str, dict] = {}
    unet_sub = {k: v for k, v in sd.items() if k.startswith(cd.UNET_PREFIX)}
    out["unet"] = sfu.convert_ldm_unet_checkpoint(unet_sub, det.configs["unet"])
    if det.has_vae:
        vae_sub = {k: v for k, v in sd.items()
                   if k.startswith(cd.VAE_PREFIX) and not k.startswith(cd.VAE_PREFIX + "loss.")}
        out["vae"] = sfu.convert_ldm_vae_checkpoint(vae_sub, det.configs["vae"])
    claimed = [cd.UNET_PREFIX, cd.VAE_PREFIX]
    for i, (layout, prefix) in enumerate(det.text_encoders):
        name = "text_encoder" if i == 0 else f"text_encoder_{i + 1}"
        if layout == "clip":
            out[name] = _clip_to_diffusers(sd, prefix)
            claimed.append(prefix[: -len("text_model.")])
        else:
            out[name] = _open_clip_to_diffusers(sd, prefix, det.configs[name], with_projection=(det.family in cd.SDXL_FAMILIES))
            claimed.append(prefix)
    ignored = [k for k in sd
               if not k.startswith(tuple(claimed))
               and k not in cd.IGNORED_KEYS and not k.startswith(cd.IGNORED_PREFIXES)]
    return out, ignored


def fit_text_encoder_keys(sd: dict, expected: Mapping[str, Any]) -> dict:
    """Match ``text_model.*`` keys to a model whose state dict is flattened (transformers >= 5.6
    CLIPTextModel) or not (CLIPTextModelWithProjection)."""
    wrapped = any(k.startswith("text_model.") for k in expected)
    if wrapped:
        return {(k if k.startswith("text_model.") or k == "text_projection.weight" else "text_model." + k): v
                for k, v in sd.items()}
    return {k.removeprefix("text_model."): v for k, v in sd.items()}


# --------------------------------------------------------------------------------------------
# building modules


def _text_encoder_class(cfg: dict):
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    arch = (cfg.get("architectures") or ["CLIPTextModel"])[0]
    return CLIPTextModelWithProjection if arch == "CLIPTextModelWithProjection" else CLIPTextModel


def _empty(factory):
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        return factory()


def build_empty_models(configs: Mapping[str, dict]) -> dict[str, Any]:
    """Modules for the given component configs with parameters on the meta device."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig

    models: dict[str, Any] = {}
    for name, cfg in configs.items():
        if name == "unet":
            models[name] = _empty(lambda c=cfg: UNet2DConditionModel.from_config(c))
        elif name == "vae":
            models[name] = _empty(lambda c=cfg: AutoencoderKL.from_config(c))
        elif name.startswith("text_encoder"):
            cls = _text_encoder_class(cfg)
            conf = CLIPTextConfig.from_dict({k: v for k, v in cfg.items() if k not in ("torch_dtype", "dtype")})
            models[name] = _empty(lambda c=conf, k=cls: k(c))
    return models


def _default_fill(key: str, shape: tuple) -> torch.Tensor:
    fill = 1.0 if key.endswith(("layer_norm1.weight", "layer_norm2.weight", "final_layer_norm.weight")) else 0.0
    return torch.full(shape, fill, dtype=torch.float32)


def _first(keys, n=5) -> str:
    keys = sorted(keys)
    more = f" ... ({len(keys)} in all)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _key_mismatch(name: str, missing: list[str], unexpected: list[str]) -> str:
    parts = []
    if missing:
        parts.append(f"missing {name} keys: {_first(missing)}")
    if unexpected:
        parts.append(f"unexpected {name} keys: {_first(unexpected)}")
    return "; ".join(parts)


def _assign(model, sd: dict, *, name: str, path: str, device, dtype, optional: list[str] = (),
            warnings: list[str] | None = None) -> None:
    """Give ``model`` (built on meta) the tensors of ``sd``: keys and shapes must match exactly."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in sd]
    if missing and optional:
        opt = set(optional)
        filled = [k for k in missing if k in opt]
        for k in filled:
            sd[k] = _default_fill(k, expected[k])
        if filled and warnings is not None:
            warnings.append(f"{name}: {len(filled)} unused key(s) missing from the file, filled with defaults "
                            f"({_first(filled, 3)})")
        missing = [k for k in missing if k not in opt]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        raise CheckpointLoadError(path, _key_mismatch(name, missing, unexpected))
    bad = [f"{k} {tuple(sd[k].shape)} != {expected[k]}" for k in expected if tuple(sd[k].shape) != expected[k]]
    if bad:
        raise CheckpointLoadError(path, f"{name} tensor shapes do not fit the architecture: {_first(bad, 3)}")
    ready = {}
    for k, v in sd.items():
        v = v.to(device=device)  # move first: a GPU casts faster, and fp16 moves half the bytes
        if v.is_floating_point() and dtype is not None:
            v = v.to(dtype=dtype)
        ready[k] = v
    model.load_state_dict(ready, strict=True, assign=True)
    model.to(device)  # non-persistent buffers (CLIP position_ids) were built on the CPU
    leftovers = [n for n, p in list(model.named_parameters()) + list(model.named_buffers()) if p.is_meta]
    if leftovers:
        raise CheckpointLoadError(path, f"{name} has uninitialised tensors: {_first(leftovers)}")
    model.eval()
    model.requires_grad_(False)


# --------------------------------------------------------------------------------------------
# single-file checkpoints


def load_checkpoint_state_dict(path: str | os.PathLike, *, allow_unsafe_pickle: bool = False,
                               device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The normalised original-layout state dict of a checkpoint file."""
    return cd.normalize_keys(load_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle, device=device))


def _dev(device) -> str:
    return str(torch.device(device))


def load_any(path: str | os.PathLike, *, device: str | torch.device = "cpu",
             dtype: torch.dtype | None = torch.float32, vae_dtype: torch.dtype | None = None,
             allow_unsafe_pickle: bool = False, vae_path: str | os.PathLike | None = None) -> LoadedModel:
    """A diffusers folder through :func:`load_diffusers_folder`, a file through :func:`load_checkpoint`."""
    if Path(path).is_dir():
        return load_diffusers_folder(path, device=device, dtype=dtype, vae_dtype=vae_dtype, vae_path=vae_path,
                                     allow_unsafe_pickle=allow_unsafe_pickle)
    return load_checkpoint(path, device=device, dtype=dtype, vae_dtype=vae_dtype,
                           allow_unsafe_pickle=allow_unsafe_pickle, vae_path=vae_path)


def load_checkpoint(path: str | os.PathLike, *, device: str | torch.device = "cpu",
                    dtype: torch.dtype | None = torch.float32, vae_dtype: torch.dtype | None = None,
                    allow_unsafe_pickle: bool = False, vae_path: str | os.PathLike | None = None) -> LoadedModel:
    """Load an SD1/SD2/SDXL single-file checkpoint (.safetensors, or .ckpt through the safe
    unpickler) into diffusers modules. ``dtype=None`` keeps the file's own dtypes; ``vae_dtype``
    (default: ``dtype``) lets the VAE stay in float32 (--no-half-vae).

    ``vae_path`` applies an external VAE after loading (the baked VAE is then overwritten; keep
    ``{k: v.clone() for k, v in model.vae.state_dict().items()}`` first if you need to restore it).
    Raises :class:`CheckpointLoadError` naming the file for every failure.
    """
    t0 = time.perf_counter()
    path = str(path)
    device = _dev(device)
    sd = load_checkpoint_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle, device="cpu")
    try:
        det = cd.detect(sd)
    except cd.UnsupportedArchitectureError as e:
        raise CheckpointLoadError(path, str(e)) from e

    warnings: list[str] = list(det.notes)
    components, ignored = convert_original_state_dict(sd, det)
    del sd
    if ignored:
        log.warning("%s: ignoring %d unknown key(s): %s", path, len(ignored), _first(ignored))
        warnings.append(f"ignored {len(ignored)} unknown key(s): {_first(ignored)}")

    external_vae = None
    if vae_path is not None:
        external_vae = load_vae(vae_path, allow_unsafe_pickle=allow_unsafe_pickle)
    if not det.has_vae:
        if external_vae is None:
            raise CheckpointLoadError(path, "the checkpoint has no VAE (no first_stage_model.* keys); choose a VAE file")
        det.configs["vae"] = vae_config_from_diffusers_state_dict(external_vae, cd.shipped_config(det.family, "vae"))
        components["vae"] = dict(external_vae)

    try:
        models = build_empty_models(det.configs)
    except (ValueError, TypeError, RuntimeError) as e:
        raise CheckpointLoadError(path, f"cannot build the inferred architecture: {e}") from e

    for name, model in models.items():
        comp = components[name]
        if name.startswith("text_encoder"):
            comp = fit_text_encoder_keys(comp, model.state_dict())
            optional = list(fit_text_encoder_keys(dict.fromkeys(det.optional_text_keys.get(name, [])),
                                                  model.state_dict()))
        else:
            optional = []
        _assign(model, comp, name=name, path=path, device=device,
                dtype=(vae_dtype or dtype) if name == "vae" else dtype, optional=optional, warnings=warnings)
    components.clear()

    if det.has_vae and external_vae is not None:
        try:
            apply_vae(models["vae"], external_vae)
        except ValueError as e:
            raise CheckpointLoadError(vae_path, str(e)) from e

    prediction_type = det.prediction_type
    if prediction_type is None:  # SD2 (non-inpainting): ask the UNet
        prediction_type = "v_prediction" if cd.sd2_uses_v_prediction(models["unet"]) else "epsilon"
        det.prediction_type = prediction_type
        cd.apply_native_size(det, cd.native_size_for(det.family, prediction_type, det.is_inpainting))
        models["unet"].register_to_config(sample_size=det.configs["unet"]["sample_size"])
        models["vae"].register_to_config(sample_size=det.native_size)

    if path.lower().endswith(".safetensors"):
        from modules.models.safe_load import read_safetensors_metadata

        declared = native_size_from_metadata(read_safetensors_metadata(path))
        if declared is not None:
            _apply_declared_size(det, models, declared)

    sched = scheduler_config_for(det.family, prediction_type, zero_terminal_snr=det.zero_terminal_snr)
    config = dict(det.configs)
    config["scheduler"] = sched
    n_te = len(det.text_encoders)
    text_encoders = [models["text_encoder" if i == 0 else f"text_encoder_{i + 1}"] for i in range(n_te)]
    tokenizers = [load_tokenizer(det.family, i) for i in range(n_te)]
    for w in warnings:
        log.info("%s: %s", path, w)
    return LoadedModel(
        family=det.family, is_inpainting=det.is_inpainting, prediction_type=prediction_type,
        native_size=det.native_size, unet=models["unet"], vae=models["vae"], text_encoders=text_encoders,
        tokenizers=tokenizers, scheduler_config=sched, path=path, config=config, dtype=dtype or torch.float32,
        device=device, has_baked_vae=det.has_vae, vae_path=str(vae_path) if vae_path is not None else None,
        ignored_keys=ignored, warnings=warnings, load_seconds=time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------
# VAE files


# attention names of diffusers VAE files written before diffusers 0.14
_OLD_ATTN_NAMES = ((".query.", ".to_q."), (".key.", ".to_k."), (".value.", ".to_v."), (".proj_attn.", ".to_out.0."))


def load_vae(path: str | os.PathLike, *, allow_unsafe_pickle: bool = False) -> dict[str, torch.Tensor]:
    """A VAE file as an AutoencoderKL state dict (diffusers layout).

    Accepts the original layout (``encoder.down.0.block.0...``, e.g. vae-ft-mse-840000), with or
    without a ``first_stage_model.`` prefix, and the diffusers layout (old attention names too).
    Training leftovers (``loss.*``, ``model_ema.*``) are dropped."""
    path = str(path)
    raw = load_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle)
    sd = {}
    for k, v in raw.items():
        for pre in ("first_stage_model.", "vae."):
            if k.startswith(pre):
                k = k[len(pre):]
                break
        if k.startswith(("loss.", "model_ema.")) or k in cd.IGNORED_KEYS:
            continue
        sd[k] = v
    if "encoder.down_blocks.0.resnets.0.conv1.weight" in sd:
        out = {}
        for k, v in sd.items():
            for old, new in _OLD_ATTN_NAMES:
                k = k.replace(old, new)
            if ".attentions." in k and k.endswith(".weight") and v.ndim > 2:
                v = v[:, :, 0, 0] if v.ndim == 4 else v[:, :, 0]
            out[k] = v
        return out
    if "encoder.down.0.block.0.conv1.weight" in sd:
        try:
            cfg = cd.infer_vae_config({k: cd.shape_of(v) for k, v in sd.items()}, cd.shipped_config("sd1", "vae"))
        except cd.UnsupportedArchitectureError as e:
            raise CheckpointLoadError(path, str(e)) from e
        return _diffusers_helpers().convert_ldm_vae_checkpoint(sd, cfg)
    raise CheckpointLoadError(path, "not a VAE: no encoder.down.0.block.0.conv1.weight "
                                    "(original layout) nor encoder.down_blocks.0.resnets.0.conv1.weight (diffusers)")


def vae_config_from_diffusers_state_dict(sd: Mapping[str, Any], base: dict) -> dict:
    """AutoencoderKL config for a diffusers-layout VAE state dict (shapes only)."""
    cfg = dict(base)
    levels = sorted({int(k.split(".")[2]) for k in sd if k.startswith("encoder.down_blocks.")})
    cfg["block_out_channels"] = [int(sd[f"encoder.down_blocks.{i}.resnets.0.conv2.weight"].shape[0]) for i in levels]
    cfg["layers_per_block"] = len({k.split(".")[4] for k in sd if k.startswith("encoder.down_blocks.0.resnets.")})
    cfg["down_block_types"] = ["DownEncoderBlock2D"] * len(levels)
    cfg["up_block_types"] = ["UpDecoderBlock2D"] * len(levels)
    cfg["in_channels"] = int(sd["encoder.conv_in.weight"].shape[1])
    cfg["out_channels"] = int(sd["decoder.conv_out.weight"].shape[0])
    cfg["latent_channels"] = int(sd["decoder.conv_in.weight"].shape[1])
    cfg["mid_block_add_attention"] = any(k.startswith("encoder.mid_block.attentions.") for k in sd)
    return cfg


def apply_vae(vae, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Copy a diffusers-layout VAE state dict into ``vae`` (strict; cast to its dtype/device)."""
    expected = vae.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        raise ValueError("the VAE does not fit this model: " + _key_mismatch("VAE", missing, unexpected))
    bad = [f"{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
           if tuple(state_dict[k].shape) != tuple(v.shape)]
    if bad:
        raise ValueError(f"the VAE does not fit this model: {_first(bad, 3)}")
    with torch.no_grad():
        vae.load_state_dict(dict(state_dict), strict=True)


# --------------------------------------------------------------------------------------------
# diffusers folders


def _has_component(index: dict, name: str) -> bool:
    spec = index.get(name)
    return isinstance(spec, list) and bool(spec) and spec[0] is not None


def _family_of_folder(index: dict, unet_cfg: dict, te_cfg: dict) -> str:
    if unet_cfg.get("addition_embed_type") == "text_time" and not _has_component(index, "text_encoder"):
        return "sdxl-refiner"  # diffusers' refiner: text_encoder is [null, null], bigG is text_encoder_2
    if "text_encoder_2" in index or unet_cfg.get("addition_embed_type") == "text_time":
        return "sdxl"
    if te_cfg.get("hidden_act") == "gelu" or unet_cfg.get("use_linear_projection"):
        return "sd2"
    return "sd1"


def load_diffusers_folder(path: str | os.PathLike, *, device: str | torch.device = "cpu",
                          dtype: torch.dtype | None = torch.float32, vae_dtype: torch.dtype | None = None,
                          vae_path: str | os.PathLike | None = None, allow_unsafe_pickle: bool = False
                          ) -> LoadedModel:
    """Load a diffusers pipeline folder (model_index.json, unet/, vae/, text_encoder/ ...) offline."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    t0 = time.perf_counter()
    root = Path(path)
    device = _dev(device)
    index_file = root / "model_index.json"
    if not index_file.is_file():
        raise CheckpointLoadError(root, "not a diffusers folder (no model_index.json)")
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
        unet_cfg = json.loads((root / "unet" / "config.json").read_text(encoding="utf-8"))
        te_file = root / "text_encoder" / "config.json"
        te_cfg = json.loads(te_file.read_text(encoding="utf-8")) if _has_component(index, "text_encoder") else {}
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointLoadError(root, f"incomplete diffusers folder: {e}") from e
    family = _family_of_folder(index, unet_cfg, te_cfg)
    names = {"sdxl": ["text_encoder", "text_encoder_2"], "sdxl-refiner": ["text_encoder_2"]}.get(family, ["text_encoder"])
    kw = dict(local_files_only=True)
    try:
        unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet", torch_dtype=dtype, **kw)
        vae = AutoencoderKL.from_pretrained(root, subfolder="vae", torch_dtype=vae_dtype or dtype, **kw)
        text_encoders = []
        for name in names:
            cfg = json.loads((root / name / "config.json").read_text(encoding="utf-8"))
            cls = _text_encoder_class(cfg)
            text_encoders.append(cls.from_pretrained(root / name, dtype=dtype, **kw))
    except (OSError, ValueError, RuntimeError) as e:
        raise CheckpointLoadError(root, f"cannot load the diffusers folder: {e}") from e
    tokenizers = []
    for i, name in enumerate(names):
        tdir = root / name.replace("text_encoder", "tokenizer")
        if (tdir / "vocab.json").is_file() or (tdir / "tokenizer.json").is_file():
            from transformers import CLIPTokenizer

            tokenizers.append(CLIPTokenizer.from_pretrained(tdir, local_files_only=True))
        else:
            tokenizers.append(load_tokenizer(family, i))
    sched_file = root / "scheduler" / "scheduler_config.json"
    if sched_file.is_file():
        sched = json.loads(sched_file.read_text(encoding="utf-8"))
    else:
        sched = cd.shipped_config(family, "scheduler")
    prediction_type = sched.get("prediction_type", "epsilon")
    sched["prediction_type"] = prediction_type
    for m in [unet, vae, *text_encoders]:
        m.to(device)
        m.eval()
        m.requires_grad_(False)
    if vae_path is not None:
        try:
            apply_vae(vae, load_vae(vae_path, allow_unsafe_pickle=allow_unsafe_pickle))
        except ValueError as e:
            raise CheckpointLoadError(vae_path, str(e)) from e
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    is_inpainting = unet.config.in_channels == 2 * unet.config.out_channels + 1
    config = {"unet": dict(unet.config), "vae": dict(vae.config), "scheduler": sched}
    for i, te in enumerate(text_encoders):  # by position, as for single files (the refiner's bigG is its first)
        config["text_encoder" if i == 0 else f"text_encoder_{i + 1}"] = te.config.to_dict()
    return LoadedModel(
        family=family, is_inpainting=is_inpainting, prediction_type=prediction_type,
        native_size=int(unet.config.sample_size) * scale, unet=unet, vae=vae, text_encoders=text_encoders,
        tokenizers=tokenizers, scheduler_config=sched, path=str(root), config=config,
        dtype=dtype or torch.float32, device=device, vae_path=str(vae_path) if vae_path else None,
        load_seconds=time.perf_counter() - t0)
