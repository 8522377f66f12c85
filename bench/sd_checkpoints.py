"""Random-weight checkpoints with the full SD1.5 / SDXL architecture, written once in the original single-file
layout (ldm key names, what users download), and diffusers' own single-file loader pointed at them offline.

Nothing is downloaded: the architectures come from the configs the app ships (``modules/models/model_configs``),
the weights are seeded random numbers, and the files go to a cache folder outside the repository
(``$SD_BENCH_CACHE``, default ``/tmp/sd-webui-bench-cache``) so that each bench writes them only on its first run.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "modules" / "models" / "model_configs"


def cache_dir() -> Path:
    folder = Path(os.environ.get("SD_BENCH_CACHE", "/tmp/sd-webui-bench-cache"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _config(family: str, component: str) -> dict:
    from modules.models import checkpoint_detect as cd

    return {k: v for k, v in cd.shipped_config(family, component).items() if not k.startswith("_")}


def random_components(family: str, seed: int = 0, device: str = "cpu") -> dict:
    """UNet, VAE and text encoder(s) of ``family`` ("sd1" or "sdxl") at full size with random weights (initialised
    on ``device``: a GPU makes SDXL's 3.5 B numbers in seconds)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    with torch.no_grad(), torch.device(device):
        parts = {"unet": UNet2DConditionModel(**_config(family, "unet")).eval(),
                 "vae": AutoencoderKL(**_config(family, "vae")).eval(),
                 "text_encoder": CLIPTextModel(CLIPTextConfig(**_config(family, "text_encoder"))).eval()}
        if family == "sdxl":
            parts["text_encoder_2"] = CLIPTextModelWithProjection(
                CLIPTextConfig(**_config(family, "text_encoder_2"))).eval()
    return parts


def checkpoint(family: str = "sd1", dtype: torch.dtype = torch.float16, device: str = "cpu") -> Path:
    """The cached random-weight single-file checkpoint of ``family`` (written on first use, atomically)."""
    from modules.models.ldm_export import save_single_file

    tag = str(dtype).replace("torch.", "")
    path = cache_dir() / f"random-{family}-{tag}.safetensors"
    if not path.is_file():
        print(f"writing {path} (once) ...", flush=True)
        parts = {name: module.to("cpu") for name, module in random_components(family, device=device).items()}
        save_single_file(parts, path, family, dtype=dtype)
    return path


def diffusers_config_folder(family: str) -> Path:
    """A diffusers folder with only configs and tokenizers (the shipped ones), for ``from_single_file(config=...)``:
    the loader then never asks a hub."""
    folder = cache_dir() / f"config-{family}"
    if (folder / "model_index.json").is_file():
        return folder
    tmp = Path(tempfile.mkdtemp(prefix=f"config-{family}-", dir=cache_dir()))
    shutil.copytree(SHIPPED / family, tmp, dirs_exist_ok=True)
    for tok in ("tokenizer", "tokenizer_2"):
        if (tmp / tok).is_dir():
            for f in ("vocab.json", "merges.txt"):
                shutil.copy(SHIPPED / "clip_tokenizer" / f, tmp / tok / f)
    json.loads((tmp / "model_index.json").read_text())  # a broken copy fails here, not in diffusers
    if folder.exists():
        shutil.rmtree(tmp)
    else:
        os.replace(tmp, folder)
    return folder


def config_folder_for(components: dict, family: str, name: str) -> Path:
    """Like :func:`diffusers_config_folder`, with the configs of ``components`` (e.g. the tests' tiny models)."""
    folder = cache_dir() / f"config-{name}"
    if (folder / "model_index.json").is_file():
        return folder
    tmp = Path(tempfile.mkdtemp(prefix=f"config-{name}-", dir=cache_dir()))
    shutil.copytree(diffusers_config_folder(family), tmp, dirs_exist_ok=True)
    for part, module in components.items():
        config = module.config.to_dict() if hasattr(module.config, "to_dict") else dict(module.config)
        target = "scheduler_config.json" if part == "scheduler" else "config.json"
        (tmp / part).mkdir(exist_ok=True)
        (tmp / part / target).write_text(json.dumps(config, default=str))
    os.replace(tmp, folder)
    return folder


def reference_pipeline(ckpt: Path, family: str, device: str = "cpu", dtype: torch.dtype = torch.float32,
                       config: Path | None = None):
    """diffusers' own loader on ``ckpt`` (``from_single_file``), offline, with the Euler scheduler."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    cls = StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline
    kwargs = {} if family == "sdxl" else {"safety_checker": None, "requires_safety_checker": False}
    pipe = cls.from_single_file(str(ckpt), config=str(config or diffusers_config_folder(family)), local_files_only=True,
                                torch_dtype=dtype, **kwargs).to(device)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe
