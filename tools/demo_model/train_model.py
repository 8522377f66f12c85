"""Train the demo model: a Stable Diffusion 1.x architecture at toy widths, 64 px native, from procedural scenes.

Stages (each resumable: state is saved every ``save_every`` steps under ``--work-dir``, default
``cache/demo_train/``; a restarted command continues where it stopped; a finished stage is skipped):

1. ``vae``: AutoencoderKL (factor 8: 64 px -> 8x8x4 latents), L1 + L2 reconstruction + a small KL term, first on
   32 px crops, then on whole images with an image-gradient term and the shape's pixels weighted up.
   Afterwards the latent statistics are folded into ``quant_conv`` / ``post_quant_conv`` so that
   ``latents * 0.18215`` (SD1's fixed scaling factor, which the loader reads from the shipped config)
   has zero mean and unit variance per channel. The reparametrisation is exact.
2. ``latents``: a pool of training scenes encoded once (posterior means, as the app's img2img encodes).
3. ``unet``: UNet2DConditionModel + CLIPTextModel (real CLIP tokenizer, 49408 tokens) with the VAE frozen:
   epsilon prediction on SD1's scaled-linear DDPM schedule (so every sampler of the app works unchanged),
   min-SNR-5 loss weighting, 10 % caption dropout for classifier-free guidance, EMA weights.
4. ``decoder``: the VAE decoder fine-tuned on whole images with the encoder frozen (as SD's vae-ft-mse),
   pixels on and around the shape weighted 10x, plus an L1 term on image gradients for sharp edges. The
   latent space does not change, so this stage may run at the same time as ``unet`` (two processes).
5. ``export``: the EMA weights as one fp16 single-file checkpoint in the original ldm layout
   (``modules.ldm_export.save_single_file``) with ``modelspec.*`` metadata.

``all`` runs them in order. ``--tiny`` shrinks every size for smoke tests (seconds).

    .venv/bin/python -m tools.demo_model.train_model all
    # or, on two cores: vae, latents, then `unet` and `decoder` as two processes, then export
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tools.demo_model import shapes  # noqa: E402


SCALING_FACTOR = 0.18215  # SD1's; the loader takes it from the shipped VAE config, not from the file
MODEL_VERSION = "1"
DEFAULT_OUT = REPO_ROOT / "models" / "demo" / "sd-demo-shapes-64.safetensors"
DEFAULT_WORK = REPO_ROOT / "cache" / "demo_train"


@dataclass
class Arch:
    """Widths and depths. Constraints of the single-file loader: channels multiples of 32 (GroupNorm),
    SD1 UNets have 8 heads, the text encoder 64-wide heads (one head below 64). The text width 32 is
    no UNet width, so a hypernetwork layer keyed 32 touches cross-attention only. The vocabulary is CLIP's
    49408 tokens, so the text width sets most of the file size (49408 x 32 in fp16 = 3.2 MB)."""
    # 64 at full resolution: the decoder's last GroupNorm (32 groups) must see 2+ channels per group, or a flat
    # colour region normalises to the same value whatever its colour.
    vae_channels: tuple[int, ...] = (64, 64, 64, 64)
    vae_layers: int = 1
    # 8x8, 4x4 and 2x2 latents: at 2x2 every cell touches two borders, so zero padding tells the quadrants
    # apart and "on the left" is learned early (a 2-level UNet ignored positions for 1500+ steps)
    unet_channels: tuple[int, ...] = (64, 96, 96)
    unet_layers: int = 1
    text_width: int = 32
    text_layers: int = 2
    text_ff: int = 128


class Phase(NamedTuple):
    """From step ``start`` on, a ``share`` of each UNet batch draws its timestep from [t_min, t_max] (the rest
    from all 1000); the loss is epsilon MSE with min-SNR weights (``gamma``, default the config's) whose
    x0-space weight is at least ``floor``."""
    start: int
    share: float
    t_min: int
    floor: float
    t_max: int = 999
    gamma: float | None = None


@dataclass
class TrainConfig:
    arch: Arch = field(default_factory=Arch)
    seed: int = 1234
    resolution: int = shapes.RESOLUTION
    vae_steps: int = 3250
    vae_crop_steps: int = 2200   # the first steps train on aligned 32 px crops (4x cheaper; the VAE is convolutional),
                                 # the rest on whole images at half the batch
    vae_batch: int = 16
    vae_lr: float = 1e-3
    vae_bf16: bool = True  # bf16 autocast for the VAE (fp32 weights): ~1.4x faster on CPUs with AMX / AVX512-BF16
    kl_weight: float = 1e-5
    edge_weight: float = 1.0  # L1 on image gradients: sharp shape edges (plain L1/L2 settles for blobs)
    decoder_steps: int = 1500  # decoder-only fine-tuning with the encoder frozen (as SD's vae-ft-mse), which can
    decoder_batch: int = 8      # run beside the UNet training: the latent space no longer changes
    decoder_lr: float = 4e-4
    edges_from: int = 2500  # (the shipped run added the two terms late; kept so the numbers reproduce it)
    weighted_from: int = 2750  # from this step on, pixels on and around the shape weigh 10x in the loss
    pool_size: int = 24000
    unet_steps: int = 17750
    unet_batch: int = 32
    unet_lr: float = 5e-4
    te_lr: float = 2.5e-4
    warmup: int = 100
    # the UNet's learning rate restarts its cosine at these steps (a later phase needs a higher rate to learn)
    unet_lr_restarts: tuple[int, ...] = (9250, 10750)
    ema_decay: float = 0.999
    min_snr_gamma: float = 5.0
    # Where a shape goes, and which shape it is, are decided at high and middle noise, where the epsilon loss
    # carries little signal: the model learned colours long before positions and shape names. So the timestep
    # distribution and loss weights change by phase (see Phase): plain min-SNR, a layout phase, a shape phase,
    # each followed by a mix. After step 10750 colours and positions were right in 99 % of held-out images but
    # shapes were blobs; a phase on t in [50, 600] helped a little (45 -> 49 %), and img2img of ideal pictures
    # showed where they were lost: 88 % survive the VAE, 78 % denoising 0.1, 65 % denoising 0.2. Corners are
    # drawn at the lowest noise levels, which min-SNR-5 weighs down; the last phase trains there at gamma 20.
    phases: tuple[Phase, ...] = (
        Phase(0, 0.0, 500, 0.0), Phase(2000, 0.5, 500, 0.1), Phase(2750, 0.5, 500, 0.5), Phase(3750, 1.0, 500, 1.0),
        Phase(5250, 0.5, 500, 0.5), Phase(5750, 0.25, 500, 0.25), Phase(7250, 1.0, 250, 1.0),
        Phase(8750, 0.5, 250, 0.5), Phase(9250, 1.0, 250, 1.0), Phase(10250, 0.5, 250, 0.5),
        Phase(10750, 0.75, 50, 0.0, 600), Phase(12500, 0.75, 0, 0.0, 250, 20.0))
    cond_drop: float = 0.1
    save_every: int = 250
    log_every: int = 25
    stats_images: int = 512  # images whose latents set the normalisation

    @classmethod
    def tiny(cls) -> "TrainConfig":
        return cls(arch=Arch(vae_channels=(32, 32, 32, 32), unet_channels=(32, 32), text_width=16, text_layers=1,
                             text_ff=32),
                   vae_steps=3, vae_crop_steps=1, vae_batch=2, stats_images=8, edges_from=1, weighted_from=2,
                   decoder_steps=2, decoder_batch=2, pool_size=16, unet_steps=3, unet_batch=4, save_every=2, log_every=1,
                   warmup=1)


# --- components ---------------------------------------------------------------------------------------

def component_configs(arch: Arch, resolution: int = shapes.RESOLUTION) -> dict[str, dict]:
    """diffusers / transformers configs, from the shipped SD1 configs with the demo's widths: exactly what
    ``modules.checkpoint_detect`` infers back from the file's shapes."""
    from modules.models import checkpoint_detect as cd

    n = len(arch.unet_channels)
    unet = cd.shipped_config("sd1", "unet")
    unet.update(block_out_channels=list(arch.unet_channels), layers_per_block=arch.unet_layers,
                down_block_types=["CrossAttnDownBlock2D"] * n, up_block_types=["CrossAttnUpBlock2D"] * n,
                cross_attention_dim=arch.text_width, attention_head_dim=8, sample_size=resolution // 8)
    vae = cd.shipped_config("sd1", "vae")
    vae.update(block_out_channels=list(arch.vae_channels), layers_per_block=arch.vae_layers,
               down_block_types=["DownEncoderBlock2D"] * len(arch.vae_channels),
               up_block_types=["UpDecoderBlock2D"] * len(arch.vae_channels), sample_size=resolution)
    te = cd.shipped_config("sd1", "text_encoder")
    te.update(hidden_size=arch.text_width, intermediate_size=arch.text_ff, num_hidden_layers=arch.text_layers,
              num_attention_heads=max(1, arch.text_width // 64), projection_dim=arch.text_width)
    return {"unet": unet, "vae": vae, "text_encoder": te}


def build_vae(arch: Arch, resolution: int = shapes.RESOLUTION):
    from diffusers import AutoencoderKL

    cfg = component_configs(arch, resolution)["vae"]
    return AutoencoderKL.from_config(cfg)


def build_unet_and_text(arch: Arch, resolution: int = shapes.RESOLUTION):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    cfgs = component_configs(arch, resolution)
    unet = UNet2DConditionModel.from_config(cfgs["unet"])
    te_cfg = CLIPTextConfig.from_dict({k: v for k, v in cfgs["text_encoder"].items() if k not in ("torch_dtype", "dtype")})
    te = CLIPTextModel(te_cfg)
    return unet, te


def tokenizer():
    from modules.models.checkpoint_loader import load_tokenizer

    return load_tokenizer("sd1")


def token_ids(tok, texts: list[str]) -> torch.Tensor:
    """[B, 77] ids as the app's conditioning builds a one-chunk SD1 prompt: BOS, tokens, EOS, EOS padding."""
    ids = tok(texts, truncation=False, add_special_tokens=False, verbose=False)["input_ids"]
    out = torch.full((len(texts), 77), tok.eos_token_id, dtype=torch.long)
    for i, row in enumerate(ids):
        row = row[:75]
        out[i, 0] = tok.bos_token_id
        out[i, 1:1 + len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def ddpm_alphas_cumprod() -> torch.Tensor:
    """SD1's training schedule: scaled_linear betas 0.00085 .. 0.012 over 1000 steps."""
    from modules.models import checkpoint_detect as cd

    cfg = cd.shipped_config("sd1", "scheduler")
    betas = torch.linspace(cfg["beta_start"] ** 0.5, cfg["beta_end"] ** 0.5, cfg["num_train_timesteps"],
                           dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


# --- images -------------------------------------------------------------------------------------------

def to_tensor(images: list) -> torch.Tensor:
    a = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) for im in images])
    return torch.from_numpy(a).permute(0, 3, 1, 2) / 127.5 - 1.0


def to_images(x: torch.Tensor) -> list:
    from PIL import Image

    a = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(v) for v in a]


def vae_batch(rng: np.random.Generator, n: int, resolution: int, crop: int | None = None,
              with_weights: bool = False):
    """Autoencoder data: the scene distribution widened (any colour, sepia, every pattern) so the decoder can
    draw what the adapters ask for later. ``crop``: random crops of that size on the 8 px latent grid.
    ``with_weights``: also per-pixel loss weights [N, 1, H, W] (heavier on and around the shape)."""
    images, weights = [], []
    for _ in range(n):
        pattern = shapes.PATTERNS[int(rng.integers(3))] if rng.random() < 0.25 else "plain"
        scene = shapes.sample_scene(rng, split="any", pattern=pattern)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3)) if rng.random() < 0.15 else None
        img = shapes.render(scene, resolution, colour_rgb=colour)
        if rng.random() < 0.1:
            img = shapes.sepia(img)
        w = shapes.shape_weight(scene, resolution)
        if crop:
            x0, y0 = (int(v) * 8 for v in rng.integers(0, (resolution - crop) // 8 + 1, 2))
            img = img.crop((x0, y0, x0 + crop, y0 + crop))
            w = w[y0:y0 + crop, x0:x0 + crop]
        images.append(img)
        weights.append(w)
    x = to_tensor(images)
    if with_weights:
        return x, torch.from_numpy(np.stack(weights))[:, None]
    return x


# --- state / resume -----------------------------------------------------------------------------------

def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _gradient_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of horizontal and vertical pixel differences."""
    dx = (a[..., :, 1:] - a[..., :, :-1]) - (b[..., :, 1:] - b[..., :, :-1])
    dy = (a[..., 1:, :] - a[..., :-1, :]) - (b[..., 1:, :] - b[..., :-1, :])
    return dx.abs().mean() + dy.abs().mean()


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _step_rng(seed: int, stage: int, step: int) -> np.random.Generator:
    """Data for a step depends on (seed, stage, step) only: resuming replays exactly the same batches."""
    return np.random.default_rng([seed, stage, step])


# --- stage 1: VAE -------------------------------------------------------------------------------------

def train_vae(cfg: TrainConfig, work: Path, *, progress: Callable[[str], None] = print, device: str = "cpu") -> Path:
    final = work / "vae_final.pt"
    if final.is_file():
        progress(f"vae: done already ({final})")
        return final
    torch.manual_seed(cfg.seed)
    vae = build_vae(cfg.arch, cfg.resolution).train().to(device)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    state_path = work / "vae_state.pt"
    start = 0
    if state_path.is_file():
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        vae.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])  # moves the optimiser state to the parameters' device
        start = st["step"]
        torch.set_rng_state(st["torch_rng"])
        progress(f"vae: resuming at step {start}")
    t0, acc = time.perf_counter(), []
    for step in range(start, cfg.vae_steps):
        crop = cfg.resolution // 2 if step < cfg.vae_crop_steps else None
        x, w = vae_batch(_step_rng(cfg.seed, 1, step), cfg.vae_batch if crop else max(1, cfg.vae_batch // 2),
                         cfg.resolution, crop, with_weights=True)
        x, w = x.to(device), w.to(device)
        if step < cfg.weighted_from:
            w = torch.ones_like(w)
        for g in opt.param_groups:
            g["lr"] = cfg.vae_lr * _lr_factor(step, cfg.vae_steps, cfg.warmup)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=cfg.vae_bf16):
            post = vae.encode(x).latent_dist
            rec = vae.decode(post.sample()).sample.float()
        w = w / w.mean()
        l1 = ((rec - x).abs() * w).mean()
        l2 = (((rec - x) ** 2) * w).mean()
        kl = post.kl().float().mean() / post.mean[0].numel()
        edges = _gradient_l1(rec, x)
        edge_weight = cfg.edge_weight if step >= cfg.edges_from else 0.0
        loss = l1 + l2 + edge_weight * edges + cfg.kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        acc.append((l1.item(), l2.item(), edges.item(), kl.item()))
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.vae_steps:
            m = np.mean(acc, axis=0)
            acc = []
            progress(f"vae step {step + 1}/{cfg.vae_steps} l1 {m[0]:.4f} mse {m[1]:.5f} edges {m[2]:.4f} kl {m[3]:.2f} "
                     f"({time.perf_counter() - t0:.0f}s)")
        if (step + 1) % cfg.save_every == 0 and step + 1 < cfg.vae_steps:
            _atomic_save({"model": vae.state_dict(), "opt": opt.state_dict(), "step": step + 1,
                          "torch_rng": torch.get_rng_state()}, state_path)
    vae.eval()
    normalise_latents(vae, cfg)
    _atomic_save({"model": {k: v.cpu() for k, v in vae.state_dict().items()}}, final)
    return final


@torch.no_grad()
def normalise_latents(vae, cfg: TrainConfig) -> tuple[list[float], list[float]]:
    """Fold per-channel latent mean/std into quant_conv / post_quant_conv (an exact reparametrisation) so that
    posterior means times SCALING_FACTOR have zero mean and unit variance. Returns the old (mean, std)."""
    rng = np.random.default_rng([cfg.seed, 99])
    device = next(vae.parameters()).device
    per = min(64, cfg.stats_images)
    means = torch.cat([vae.encode(vae_batch(rng, per, cfg.resolution).to(device)).latent_dist.mean
                       for _ in range(max(1, cfg.stats_images // per))])
    mu = means.mean(dim=(0, 2, 3))
    sd = means.std(dim=(0, 2, 3)).clamp_min(1e-6)
    k = 1.0 / (sd * SCALING_FACTOR)  # new raw latent z' = k (z - mu)
    c = mu.numel()
    q, pq = vae.quant_conv, vae.post_quant_conv
    q.weight[:c] *= k.view(-1, 1, 1, 1)
    q.bias[:c] = (q.bias[:c] - mu) * k
    q.bias[c:] += 2.0 * torch.log(k)  # logvar: the posterior std scales with the mean
    # post_quant(z) = W z + b with z = z'/k + mu
    pq.bias += (pq.weight[:, :, 0, 0] @ mu)
    pq.weight /= k.view(1, -1, 1, 1)
    return mu.tolist(), sd.tolist()


def load_vae(cfg: TrainConfig, work: Path, *, decoder: bool = True):
    """The trained VAE (latents normalised); with the fine-tuned decoder when that stage has run."""
    vae = build_vae(cfg.arch, cfg.resolution)
    vae.load_state_dict(torch.load(work / "vae_final.pt", map_location="cpu")["model"])
    if decoder and (work / "decoder_final.pt").is_file():
        part = torch.load(work / "decoder_final.pt", map_location="cpu")["model"]
        missing, unexpected = vae.load_state_dict(part, strict=False)
        if unexpected or any(k.startswith(("decoder.", "post_quant_conv.")) for k in missing):
            raise RuntimeError(f"{work / 'decoder_final.pt'} does not fit the VAE")
    return vae.eval().requires_grad_(False)


def _decoder_state(vae) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in vae.state_dict().items() if k.startswith(("decoder.", "post_quant_conv."))}


def train_decoder(cfg: TrainConfig, work: Path, *, progress: Callable[[str], None] = print, device: str = "cpu") -> Path:
    """Fine-tune the decoder (and post_quant_conv) on whole images with the encoder frozen."""
    final = work / "decoder_final.pt"
    if final.is_file():
        progress(f"decoder: done already ({final})")
        return final
    torch.manual_seed(cfg.seed + 5)
    vae = load_vae(cfg, work, decoder=False).to(device)
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    for p in params:
        p.requires_grad_(True)
    vae.decoder.train()
    opt = torch.optim.AdamW(params, lr=cfg.decoder_lr, weight_decay=0.0)
    state_path = work / "decoder_state.pt"
    start = 0
    if state_path.is_file():
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        vae.load_state_dict(st["model"], strict=False)
        opt.load_state_dict(st["opt"])
        start = st["step"]
        progress(f"decoder: resuming at step {start}")
    dev_type = torch.device(device).type
    t0, acc = time.perf_counter(), []
    for step in range(start, cfg.decoder_steps):
        x, w = vae_batch(_step_rng(cfg.seed, 4, step), cfg.decoder_batch, cfg.resolution, None, with_weights=True)
        x, w = x.to(device), w.to(device)
        for g in opt.param_groups:
            g["lr"] = cfg.decoder_lr * _lr_factor(step, cfg.decoder_steps, cfg.warmup)
        with torch.autocast(dev_type, dtype=torch.bfloat16, enabled=cfg.vae_bf16):
            with torch.no_grad():
                z = vae.encode(x).latent_dist.mean
            rec = vae.decode(z).sample.float()
        w = w / w.mean()
        l1 = ((rec - x).abs() * w).mean()
        l2 = (((rec - x) ** 2) * w).mean()
        edges = _gradient_l1(rec, x)
        loss = l1 + l2 + cfg.edge_weight * edges
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        acc.append((l1.item(), l2.item(), edges.item()))
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.decoder_steps:
            m = np.mean(acc, axis=0)
            acc = []
            progress(f"decoder step {step + 1}/{cfg.decoder_steps} l1 {m[0]:.4f} mse {m[1]:.5f} edges {m[2]:.4f} "
                     f"({time.perf_counter() - t0:.0f}s)")
        if (step + 1) % cfg.save_every == 0 and step + 1 < cfg.decoder_steps:
            _atomic_save({"model": _decoder_state(vae), "opt": opt.state_dict(), "step": step + 1}, state_path)
    _atomic_save({"model": _decoder_state(vae)}, final)
    return final


# --- stage 2: latent pool -----------------------------------------------------------------------------

@torch.no_grad()
def encode_pool(cfg: TrainConfig, work: Path, *, progress: Callable[[str], None] = print, device: str = "cpu") -> Path:
    path = work / "latents.pt"
    if path.is_file():
        progress(f"latents: done already ({path})")
        return path
    vae = load_vae(cfg, work, decoder=False).to(device)  # the encoder is all the pool needs
    rng = np.random.default_rng([cfg.seed, 2])
    captions, lat = [], []
    t0 = time.perf_counter()
    for start in range(0, cfg.pool_size, 64):
        scenes = [shapes.sample_scene(rng) for _ in range(min(64, cfg.pool_size - start))]
        x = to_tensor([shapes.render(s, cfg.resolution) for s in scenes])
        lat.append((vae.encode(x.to(device)).latent_dist.mean * SCALING_FACTOR).cpu())
        captions += [shapes.caption(s) for s in scenes]
        if (start // 64) % 50 == 0:
            progress(f"latents {start + len(scenes)}/{cfg.pool_size} ({time.perf_counter() - t0:.0f}s)")
    latents = torch.cat(lat).to(torch.float16)
    progress(f"latents: mean {latents.float().mean():.3f} std {latents.float().std():.3f}")
    _atomic_save({"latents": latents, "captions": captions}, path)
    return path


# --- stage 3: UNet + text encoder ---------------------------------------------------------------------

def min_snr_weights(alphas_cumprod: torch.Tensor, t: torch.Tensor, gamma: float, floor: float = 0.0) -> torch.Tensor:
    """min(SNR, gamma) / SNR: the epsilon-loss weights of "Efficient Diffusion Training via Min-SNR Weighting".
    ``floor``: the x0-space weight (epsilon weight x SNR) is at least this, so the noisiest steps, where the
    layout is decided, still count."""
    a = alphas_cumprod[t]
    snr = a / (1 - a)
    return (snr.clamp(max=gamma).clamp(min=floor) / snr).float()


class Ema:
    def __init__(self, modules: dict[str, torch.nn.Module], decay: float):
        self.decay = decay
        self.shadow = {name: {k: v.detach().clone().float() for k, v in m.state_dict().items()}
                       for name, m in modules.items()}

    @torch.no_grad()
    def update(self, modules: dict[str, torch.nn.Module], step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))  # short memory at first
        for name, m in modules.items():
            for k, v in m.state_dict().items():
                s = self.shadow[name][k]
                if v.dtype.is_floating_point:
                    s.mul_(d).add_(v.float(), alpha=1 - d)
                else:
                    s.copy_(v)


def diffusion_loss(unet, te, latents: torch.Tensor, ids: torch.Tensor, alphas_cumprod: torch.Tensor,
                   gen: torch.Generator, gamma: float, in_range: int = 0, floor: float = 0.0,
                   t_min: int = 500, t_max: int = 999) -> torch.Tensor:
    """Min-SNR-weighted epsilon loss; the first ``in_range`` samples draw t from [t_min, t_max]."""
    b = latents.shape[0]
    device = latents.device
    n = alphas_cumprod.numel()
    # the random numbers come from a CPU generator: the same on every device, and resumable
    t = torch.randint(0, n, (b,), generator=gen)
    if in_range:
        t[:in_range] = torch.randint(t_min, min(n, t_max + 1), (in_range,), generator=gen)
    noise = torch.randn(latents.shape, generator=gen).to(device)
    a = alphas_cumprod[t].float().view(-1, 1, 1, 1).to(device)
    t = t.to(device)
    ids = ids.to(device)
    noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
    ctx = te(input_ids=ids).last_hidden_state
    pred = unet(noisy, t, encoder_hidden_states=ctx).sample
    per = ((pred - noise) ** 2).mean(dim=(1, 2, 3))
    return (per * min_snr_weights(alphas_cumprod, t.cpu(), gamma, floor).to(device)).mean()


def train_unet(cfg: TrainConfig, work: Path, *, progress: Callable[[str], None] = print, device: str = "cpu") -> Path:
    final = work / "unet_final.pt"
    if final.is_file():
        progress(f"unet: done already ({final})")
        return final
    pool = torch.load(work / "latents.pt", map_location="cpu")
    latents, captions = pool["latents"].float(), pool["captions"]
    tok = tokenizer()
    torch.manual_seed(cfg.seed + 3)
    unet, te = build_unet_and_text(cfg.arch, cfg.resolution)
    unet.train().to(device)
    te.train().to(device)
    # Only the rows of the words we use ever get gradients; no weight decay keeps the others as initialised.
    opt = torch.optim.AdamW([{"params": list(unet.parameters()), "lr": cfg.unet_lr, "base": cfg.unet_lr},
                             {"params": list(te.parameters()), "lr": cfg.te_lr, "base": cfg.te_lr}],
                            weight_decay=0.0, betas=(0.9, 0.99))
    modules = {"unet": unet, "text_encoder": te}
    ema = Ema(modules, cfg.ema_decay)
    alphas = ddpm_alphas_cumprod()
    gen = torch.Generator().manual_seed(cfg.seed + 4)
    state_path = work / "unet_state.pt"
    start = 0
    if state_path.is_file():
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        unet.load_state_dict(st["unet"])
        te.load_state_dict(st["text_encoder"])
        opt.load_state_dict(st["opt"])
        ema.shadow = {n: {k: v.to(device) for k, v in sd.items()} for n, sd in st["ema"].items()}
        gen.set_state(st["gen"])
        start = st["step"]
        progress(f"unet: resuming at step {start}")
    latents = latents.to(device)
    t0, acc = time.perf_counter(), []
    for step in range(start, cfg.unet_steps):
        rng = _step_rng(cfg.seed, 3, step)
        idx = rng.integers(0, latents.shape[0], cfg.unet_batch)
        texts = ["" if rng.random() < cfg.cond_drop else captions[i] for i in idx]
        ids = token_ids(tok, texts)
        starts = [0] + [r for r in cfg.unet_lr_restarts if r <= step]
        ends = [r for r in cfg.unet_lr_restarts if r > step] + [cfg.unet_steps]
        cycle_factor = 0.5 if starts[-1] else 1.0  # restarts peak at half the first cycle's rate
        for g in opt.param_groups:
            g["lr"] = g["base"] * cycle_factor * _lr_factor(step - starts[-1], ends[0] - starts[-1], cfg.warmup)
        phase = [p for p in cfg.phases if p.start <= step][-1]
        loss = diffusion_loss(unet, te, latents[torch.from_numpy(idx).to(device)], ids, alphas, gen,
                              phase.gamma or cfg.min_snr_gamma, int(phase.share * cfg.unet_batch), phase.floor,
                              phase.t_min, phase.t_max)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(unet.parameters()) + list(te.parameters()), 1.0)
        opt.step()
        ema.update(modules, step)
        acc.append(loss.item())
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.unet_steps:
            progress(f"unet step {step + 1}/{cfg.unet_steps} loss {np.mean(acc):.4f} ({time.perf_counter() - t0:.0f}s)")
            acc = []
        if (step + 1) % cfg.save_every == 0 and step + 1 < cfg.unet_steps:
            _atomic_save({"unet": unet.state_dict(), "text_encoder": te.state_dict(), "opt": opt.state_dict(),
                          "ema": _cpu(ema.shadow), "gen": gen.get_state(), "step": step + 1}, state_path)
            _atomic_save({"ema": _cpu(ema.shadow), "step": step + 1}, work / "unet_ema_latest.pt")
    _atomic_save({"ema": _cpu(ema.shadow), "step": cfg.unet_steps}, final)
    return final


def _cpu(shadow: dict[str, dict[str, torch.Tensor]]) -> dict[str, dict[str, torch.Tensor]]:
    return {n: {k: v.detach().cpu() for k, v in sd.items()} for n, sd in shadow.items()}


# --- stage 4: export ----------------------------------------------------------------------------------

def load_components(cfg: TrainConfig, work: Path, ema_file: str = "unet_final.pt") -> dict:
    unet, te = build_unet_and_text(cfg.arch, cfg.resolution)
    shadow = torch.load(work / ema_file, map_location="cpu")["ema"]
    unet.load_state_dict(shadow["unet"])
    te.load_state_dict(shadow["text_encoder"])
    return {"unet": unet.eval(), "text_encoder": te.eval(), "vae": load_vae(cfg, work)}


def export(cfg: TrainConfig, work: Path, out: Path, *, ema_file: str = "unet_final.pt",
           extra_metadata: dict[str, str] | None = None) -> Path:
    from modules.models.ldm_export import save_single_file

    comps = load_components(cfg, work, ema_file)
    meta = {
        "modelspec.title": "SD demo shapes 64",
        "modelspec.architecture": "stable-diffusion-v1",
        "modelspec.implementation": "https://github.com/CompVis/stable-diffusion",
        "modelspec.resolution": f"{cfg.resolution}x{cfg.resolution}",
        "modelspec.description": ("Tiny SD1-architecture demo model trained on procedural coloured shapes: "
                                  "'a small red circle on the left, blue background'."),
        "modelspec.license": "Apache-2.0",
        "modelspec.prediction_type": "epsilon",
        "sd_webui_diffusers.demo_version": MODEL_VERSION,
        "sd_webui_diffusers.demo_train_config": json.dumps(asdict(cfg), sort_keys=True),
    }
    meta.update(extra_metadata or {})
    return save_single_file(comps, out, "sd1", metadata=meta, dtype=torch.float16)


# --- command line -------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Train the demo model (resumable).")
    ap.add_argument("stage", choices=["vae", "latents", "unet", "decoder", "export", "all"])
    ap.add_argument("--work-dir", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 is the most robust on a shared CPU: waiting threads are not wasted)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (training is faster on a GPU)")
    ap.add_argument("--tiny", action="store_true", help="toy sizes for smoke tests")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--vae-steps", type=int, default=None)
    ap.add_argument("--vae-crop-steps", type=int, default=None)
    ap.add_argument("--unet-steps", type=int, default=None)
    ap.add_argument("--pool-size", type=int, default=None)
    return ap.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    cfg = TrainConfig.tiny() if args.tiny else TrainConfig()
    over = {k: v for k, v in (("seed", args.seed), ("vae_steps", args.vae_steps),
                              ("vae_crop_steps", args.vae_crop_steps), ("unet_steps", args.unet_steps),
                              ("pool_size", args.pool_size)) if v is not None}
    return replace(cfg, **over)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    cfg = config_from_args(args)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)

    def progress(msg: str) -> None:
        print(time.strftime("%H:%M:%S"), msg, flush=True)

    stages = ["vae", "latents", "unet", "decoder", "export"] if args.stage == "all" else [args.stage]
    for stage in stages:
        if stage == "vae":
            train_vae(cfg, work, progress=progress, device=args.device)
        elif stage == "latents":
            encode_pool(cfg, work, progress=progress, device=args.device)
        elif stage == "unet":
            train_unet(cfg, work, progress=progress, device=args.device)
        elif stage == "decoder":
            train_decoder(cfg, work, progress=progress, device=args.device)
        else:
            path = export(cfg, work, args.out)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            progress(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, sha256 {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
