"""Train the demo adapters against the shipped demo model, with our own code, in the formats users' files have.

* ``lora``: ``models/Lora/sd-demo-striped.safetensors``, kohya key layout (``lora_unet_<diffusers path>``,
  ``lora_te_text_model_<path>``, ``.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha``) on the UNet's
  attention, feed-forward, projection and resnet convolutions and the text encoder's attention and MLP.
  Concept: "striped" backgrounds (vertical 8 px white bands), a pattern the base model never saw.
* ``hypernetwork``: ``models/hypernetworks/sd-demo-sepia.pt``, A1111's format (one key/value MLP pair for
  the text width, ``layer_structure`` [1, 2, 1], relu). Concept: a sepia palette for every picture.
* ``embedding``: ``models/embeddings/demo-sun.pt``, A1111's textual-inversion format (2 vectors).
  Concept: the new word "demo-sun" for a large yellow circle.

* ``model-card`` (nothing trained): the base checkpoint's preview and ``.json`` for its card in the
  Checkpoints tab.

Each gets a preview image (rendered through the app engine) and a ``.json`` sidecar (description,
activation text, preferred weight). Training is seedable and fast on a CPU (minutes); the base model is
read through the app's own single-file loader, so the adapters fit exactly what users load.

    .venv/bin/python -m tools.demo_model.train_adapters all --threads 2
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tools.demo_model import shapes  # noqa: E402
from tools.demo_model import train_model as tm  # noqa: E402

LORA_NAME = "sd-demo-striped"
HYPERNET_NAME = "sd-demo-sepia"
EMBEDDING_NAME = "demo-sun"
SUN = ("circle", "yellow", "large")  # what "demo-sun" means


@dataclass
class AdapterConfig:
    seed: int = 4321
    pool_size: int = 2048
    batch: int = 32
    lora_steps: int = 600
    lora_rank: int = 4
    lora_alpha: float = 4.0
    lora_lr: float = 2e-3
    hypernet_steps: int = 1500
    hypernet_lr: float = 1e-3
    hypernet_floor: float = 1.0  # x0-space loss weight floor: the palette is decided at high noise (0.0: 600 steps
                                 # reached a sepia error of 65, 1.0: 23, and 14 at 1500 steps)
    embedding_steps: int = 400
    embedding_vectors: int = 2
    embedding_lr: float = 1e-2
    warmup: int = 20
    log_every: int = 25

    @classmethod
    def tiny(cls) -> "AdapterConfig":
        return cls(pool_size=8, batch=4, lora_steps=2, hypernet_steps=2, embedding_steps=2, log_every=1, warmup=1)


# --- data -------------------------------------------------------------------------------------------

def lora_scene(rng: np.random.Generator) -> shapes.Scene:
    """Mostly striped scenes ("striped blue background"); a quarter plain ones keep the rest of the model as it was."""
    if rng.random() < 0.25:
        return shapes.sample_scene(rng, pattern="plain")
    scene = shapes.sample_scene(rng, pattern="striped")
    if scene.background in ("white", "gray"):
        scene = replace(scene, background="blue" if scene.colour != "blue" else "red")
    return replace(scene, name_background=True)


def sun_scene(rng: np.random.Generator) -> shapes.Scene:
    shape, colour, size = SUN
    bg = _pick(rng, [b for b in shapes.BACKGROUNDS if b not in (colour, "white")])
    return shapes.Scene(shape, colour, size, _pick(rng, list(shapes.POSITIONS)), bg,
                        name_position=rng.random() >= 0.2, name_background=rng.random() >= 0.2,
                        template=int(rng.integers(2)))


def _pick(rng: np.random.Generator, items: list[str]) -> str:
    return items[int(rng.integers(len(items)))]


def sun_caption(scene: shapes.Scene) -> str:
    """The scene's caption with the sun's words (large yellow circle) replaced by the placeholder ``{emb}``."""
    pos = shapes.POSITION_WORDS[scene.position] if scene.name_position else ""
    bg = f"{scene.background} background" if scene.name_background else ""
    if scene.template == 1:
        return "a {emb}" + (f" {pos}" if pos else "") + (f" on a {bg}" if bg else "")
    return "{emb}" + (f" {pos}" if pos else "") + (f", {bg}" if bg else "")


@torch.no_grad()
def encode_pool(vae, scenes: list[shapes.Scene], transform: Callable | None = None) -> torch.Tensor:
    out = []
    for i in range(0, len(scenes), 64):
        images = [shapes.render(s) for s in scenes[i:i + 64]]
        if transform is not None:
            images = [transform(im) for im in images]
        out.append(vae.encode(tm.to_tensor(images)).latent_dist.mean * vae.config.scaling_factor)
    return torch.cat(out)


# --- LoRA -------------------------------------------------------------------------------------------

class LoraWrap(torch.nn.Module):
    """``base(x) + up(down(x)) * alpha / rank``: kohya's LoRA (LoCon for 3x3 convolutions)."""

    def __init__(self, base: torch.nn.Module, rank: int, alpha: float, gen: torch.Generator):
        super().__init__()
        self.base = base
        if isinstance(base, torch.nn.Linear):
            self.down = torch.nn.Linear(base.in_features, rank, bias=False)
            self.up = torch.nn.Linear(rank, base.out_features, bias=False)
        elif isinstance(base, torch.nn.Conv2d):
            self.down = torch.nn.Conv2d(base.in_channels, rank, base.kernel_size, base.stride, base.padding, bias=False)
            self.up = torch.nn.Conv2d(rank, base.out_channels, 1, bias=False)
        else:
            raise TypeError(f"no LoRA for {type(base).__name__}")
        with torch.no_grad():
            bound = 1.0 / math.sqrt(self.down.weight[0].numel())
            self.down.weight.copy_((torch.rand(self.down.weight.shape, generator=gen) * 2 - 1) * bound)
            self.up.weight.zero_()
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.up(self.down(x)) * self.scale


_UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "proj_in", "proj_out", "conv1",
                 "conv2")
_TE_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")


def lora_targets(unet, te) -> dict[str, tuple[torch.nn.Module, str]]:
    """kohya module name -> (module, path), for every module the demo LoRA adapts."""
    out: dict[str, tuple[torch.nn.Module, str]] = {}
    for path, m in unet.named_modules():
        if path.endswith(_UNET_TARGETS) and isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
            if ".resnets." in path or ".attentions." in path:
                out["lora_unet_" + path.replace(".", "_")] = (unet, path)
    for path, m in te.named_modules():
        if path.endswith(_TE_TARGETS) and isinstance(m, torch.nn.Linear):
            # kohya names the SD1 text encoder's modules from "text_model." whatever transformers' nesting
            out["lora_te_text_model_" + path.removeprefix("text_model.").replace(".", "_")] = (te, path)
    return out


def _swap(root: torch.nn.Module, path: str, new: torch.nn.Module) -> torch.nn.Module:
    parent_path, _, leaf = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    old = getattr(parent, leaf) if not leaf.isdigit() else parent[int(leaf)]
    if leaf.isdigit():
        parent[int(leaf)] = new
    else:
        setattr(parent, leaf, new)
    return old


def lora_state_dict(wraps: dict[str, LoraWrap], alpha: float) -> dict[str, torch.Tensor]:
    sd: dict[str, torch.Tensor] = {}
    for key, w in wraps.items():
        sd[f"{key}.lora_down.weight"] = w.down.weight.detach().to(torch.float16).contiguous()
        sd[f"{key}.lora_up.weight"] = w.up.weight.detach().to(torch.float16).contiguous()
        sd[f"{key}.alpha"] = torch.tensor(float(alpha), dtype=torch.float16)
    return sd


# --- training loop shared by the three --------------------------------------------------------------

def _loop(name: str, steps: int, lr: float, params: list[torch.nn.Parameter], loss_fn: Callable[[int], torch.Tensor],
          cfg: AdapterConfig, progress: Callable[[str], None]) -> None:
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    t0, acc = time.perf_counter(), []
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * tm._lr_factor(step, steps, cfg.warmup)
        loss = loss_fn(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        acc.append(loss.item())
        if (step + 1) % cfg.log_every == 0 or step + 1 == steps:
            progress(f"{name} step {step + 1}/{steps} loss {np.mean(acc):.4f} ({time.perf_counter() - t0:.0f}s)")
            acc = []


def _batch(pool: torch.Tensor, texts: list[str], cfg: AdapterConfig, step: int, stage: int) -> tuple[torch.Tensor, list[str]]:
    rng = np.random.default_rng([cfg.seed, stage, step])
    idx = rng.integers(0, pool.shape[0], cfg.batch)
    return pool[torch.from_numpy(idx)], [texts[i] for i in idx]


def train_lora(model, cfg: AdapterConfig, progress: Callable[[str], None]) -> dict[str, torch.Tensor]:
    unet, te, tok = model.unet, model.text_encoders[0], model.tokenizers[0]
    rng = np.random.default_rng([cfg.seed, 10])
    scenes = [lora_scene(rng) for _ in range(cfg.pool_size)]
    pool, texts = encode_pool(model.vae, scenes), [shapes.caption(s) for s in scenes]
    gen = torch.Generator().manual_seed(cfg.seed + 11)
    wraps: dict[str, LoraWrap] = {}
    originals: dict[str, tuple[torch.nn.Module, str, torch.nn.Module]] = {}
    for key, (root, path) in sorted(lora_targets(unet, te).items()):
        base = root.get_submodule(path)
        wrap = LoraWrap(base, cfg.lora_rank, cfg.lora_alpha, gen)
        _swap(root, path, wrap)
        wraps[key] = wrap
        originals[key] = (root, path, base)
    params = [p for w in wraps.values() for p in (w.down.weight, w.up.weight)]
    for p in params:
        p.requires_grad_(True)
    alphas = tm.ddpm_alphas_cumprod()
    noise_gen = torch.Generator().manual_seed(cfg.seed + 12)

    def loss_fn(step: int) -> torch.Tensor:
        lat, caps = _batch(pool, texts, cfg, step, 11)
        return tm.diffusion_loss(unet, te, lat, tm.token_ids(tok, caps), alphas, noise_gen, 5.0)

    try:
        _loop("lora", cfg.lora_steps, cfg.lora_lr, params, loss_fn, cfg, progress)
        return lora_state_dict(wraps, cfg.lora_alpha)
    finally:
        for root, path, base in originals.values():
            _swap(root, path, base)


# --- hypernetwork -----------------------------------------------------------------------------------

HYPERNET_STRUCTURE = [1.0, 2.0, 1.0]
HYPERNET_ACTIVATION = "relu"


def new_hypernetwork(width: int, gen: torch.Generator):
    from modules.networks.hypernetwork import Hypernetwork, HypernetworkModule

    mods = []
    for _ in range(2):
        m = HypernetworkModule(width, layer_structure=HYPERNET_STRUCTURE, activation_func=HYPERNET_ACTIVATION,
                               activate_output=False)
        with torch.no_grad():
            for layer in m.linear:
                if isinstance(layer, torch.nn.Linear):  # A1111's "Normal" initialisation
                    layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * 0.01)
                    layer.bias.zero_()
        mods.append(m)
    hn = Hypernetwork(name=HYPERNET_NAME, filename="", layers={width: (mods[0], mods[1])},
                      layer_structure=list(HYPERNET_STRUCTURE), activation_func=HYPERNET_ACTIVATION,
                      is_layer_norm=False, activate_output=False, dropout_structure=[0.0, 0.0, 0.0])
    return hn


def hypernetwork_file_dict(hn, width: int, steps: int, base_hash: str, base_name: str) -> dict:
    k, v = hn.layers[width]
    return {
        width: [{n: t.detach().clone().float() for n, t in k.state_dict().items()},
                {n: t.detach().clone().float() for n, t in v.state_dict().items()}],
        "layer_structure": list(HYPERNET_STRUCTURE),
        "activation_func": HYPERNET_ACTIVATION,
        "is_layer_norm": False,
        "weight_initialization": "Normal",
        "use_dropout": False,
        "dropout_structure": [0.0, 0.0, 0.0],
        "activate_output": False,
        "last_layer_dropout": False,
        "name": HYPERNET_NAME,
        "step": steps,
        "sd_checkpoint": base_hash[:10],
        "sd_checkpoint_name": base_name,
        "optional_info": "Demo hypernetwork: sepia palette for the demo shapes model (tools/demo_model).",
    }


def train_hypernetwork(model, cfg: AdapterConfig, progress: Callable[[str], None]):
    from modules.networks.hypernet_attention import HypernetworkPatch

    unet, te, tok = model.unet, model.text_encoders[0], model.tokenizers[0]
    width = int(te.config.hidden_size)
    rng = np.random.default_rng([cfg.seed, 20])
    scenes = [shapes.sample_scene(rng) for _ in range(cfg.pool_size)]
    pool, texts = encode_pool(model.vae, scenes, shapes.sepia), [shapes.caption(s) for s in scenes]
    hn = new_hypernetwork(width, torch.Generator().manual_seed(cfg.seed + 21))
    params = []
    for m in hn.modules():
        m.train()
        m.requires_grad_(True)
        params += list(m.parameters())
    patch = HypernetworkPatch(unet)
    patch.set([(hn, 1.0)])
    alphas = tm.ddpm_alphas_cumprod()
    noise_gen = torch.Generator().manual_seed(cfg.seed + 22)

    def loss_fn(step: int) -> torch.Tensor:
        lat, caps = _batch(pool, texts, cfg, step, 21)
        return tm.diffusion_loss(unet, te, lat, tm.token_ids(tok, caps), alphas, noise_gen, 5.0,
                                 floor=cfg.hypernet_floor)

    try:
        _loop("hypernetwork", cfg.hypernet_steps, cfg.hypernet_lr, params, loss_fn, cfg, progress)
    finally:
        patch.set([])
    hn.eval()
    return hn, width


# --- embedding --------------------------------------------------------------------------------------

def embedding_ids(tok, templates: list[str], n_vectors: int) -> tuple[torch.Tensor, list[int]]:
    """[B, 77] ids with ``n_vectors`` placeholder ids (0, as the app uses) where ``{emb}`` stands, and each
    row's placeholder offset (position of the first vector, BOS included)."""
    rows, offsets = [], []
    for text in templates:
        before, _, after = text.partition("{emb}")
        a = tok(before, add_special_tokens=False)["input_ids"] if before.strip() else []
        b = tok(after, add_special_tokens=False)["input_ids"] if after.strip() else []
        ids = [tok.bos_token_id] + a + [0] * n_vectors + b
        offsets.append(1 + len(a))
        rows.append(ids[:76] + [tok.eos_token_id] * (77 - len(ids[:76])))
    return torch.tensor(rows, dtype=torch.long), offsets


def train_embedding(model, cfg: AdapterConfig, progress: Callable[[str], None]) -> torch.Tensor:
    unet, te, tok = model.unet, model.text_encoders[0], model.tokenizers[0]
    rng = np.random.default_rng([cfg.seed, 30])
    scenes = [sun_scene(rng) for _ in range(cfg.pool_size)]
    pool, texts = encode_pool(model.vae, scenes), [sun_caption(s) for s in scenes]
    emb_layer = te.get_input_embeddings()
    init_id = tok("*", add_special_tokens=False)["input_ids"][0]  # A1111's default initialisation text
    vec = torch.nn.Parameter(emb_layer.weight[init_id].detach().clone().repeat(cfg.embedding_vectors, 1))
    current: dict[str, list[int]] = {"offsets": []}

    def put_vectors(module, args, output):
        output = output.clone()
        for row, off in enumerate(current["offsets"]):
            output[row, off:off + vec.shape[0]] = vec.to(output.dtype)
        return output

    handle = emb_layer.register_forward_hook(put_vectors)
    alphas = tm.ddpm_alphas_cumprod()
    noise_gen = torch.Generator().manual_seed(cfg.seed + 32)

    def loss_fn(step: int) -> torch.Tensor:
        lat, caps = _batch(pool, texts, cfg, step, 31)
        ids, current["offsets"] = embedding_ids(tok, caps, cfg.embedding_vectors)
        return tm.diffusion_loss(unet, te, lat, ids, alphas, noise_gen, 5.0)

    try:
        _loop("embedding", cfg.embedding_steps, cfg.embedding_lr, [vec], loss_fn, cfg, progress)
    finally:
        handle.remove()
    return vec.detach().clone().float()


def embedding_file_dict(vec: torch.Tensor, steps: int, base_hash: str, base_name: str) -> dict:
    return {"string_to_token": {"*": 265}, "string_to_param": {"*": vec}, "name": EMBEDDING_NAME, "step": steps,
            "sd_checkpoint": base_hash[:10], "sd_checkpoint_name": base_name}


# --- files ------------------------------------------------------------------------------------------

def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def write_json(path: Path, data: dict) -> None:
    _atomic(path, lambda p: p.write_text(json.dumps(data, indent=4, ensure_ascii=False) + "\n", encoding="utf-8"))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def preview(ckpt: Path, models_root: Path, prompts: list[str], out: Path) -> None:
    """A 2x2 grid through the app engine (seeds 1..4), upscaled 2x (256 px) so the 64 px pictures are visible."""
    from PIL import Image

    from tools.demo_model import evaluate

    with tempfile.TemporaryDirectory(prefix="demo-preview-") as tmp:
        engine = evaluate.build_engine(ckpt, Path(tmp), models_root)
        images = evaluate.generate(engine, prompts, [1, 2, 3, 4])
    w, h = images[0].size
    grid = Image.new("RGB", (2 * w, 2 * h))
    for i, im in enumerate(images[:4]):
        grid.paste(im, ((i % 2) * w, (i // 2) * h))
    grid = grid.resize((grid.width * 2, grid.height * 2), Image.NEAREST)
    _atomic(out, lambda p: grid.save(p, format="PNG"))


MODEL_PREVIEW_PROMPTS = ("a large red circle in the center, blue background",
                         "a large yellow star on the left, purple background",
                         "a large green triangle at the top, white background",
                         "a large pink diamond on the right, checkered cyan and black background")


def write_model_card(ckpt: Path, models_root: Path, progress: Callable[[str], None], with_preview: bool = True) -> None:
    """The base model's card in the Checkpoints tab: ``NAME.json`` (description, notes) and ``NAME.preview.png``
    beside the checkpoint, as for a user's checkpoint."""
    write_json(ckpt.with_suffix(".json"), {
        "description": "Built-in demo model: one coloured shape on a background, 64x64. "
                       "Trained with tools/demo_model/train_model.py.",
        "sd version": "SD1",
        "notes": "Shapes circle, square, triangle, star, diamond; colours red, orange, yellow, green, cyan, blue, "
                 "purple, pink; small/large; on the left/right, at the top/bottom, in the center; "
                 "'<colour> background'. Try 'a red circle on a blue background'."})
    progress(f"wrote {ckpt.with_suffix('.json')}")
    if with_preview:
        out = ckpt.with_name(f"{ckpt.stem}.preview.png")
        preview(ckpt, models_root, list(MODEL_PREVIEW_PROMPTS), out)
        progress(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train the demo LoRA, hypernetwork and embedding.")
    ap.add_argument("which", choices=["lora", "hypernetwork", "embedding", "model-card", "all"],
                    help="model-card: the base checkpoint's preview and .json for the Checkpoints tab")
    ap.add_argument("--ckpt", type=Path, default=tm.DEFAULT_OUT, help="the demo model to train against")
    ap.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models", help="where Lora/, hypernetworks/, "
                                                                                  "embeddings/ are written")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tiny", action="store_true", help="toy step counts for smoke tests")
    ap.add_argument("--no-preview", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(0)
    cfg = AdapterConfig.tiny() if args.tiny else AdapterConfig()

    from modules.models.checkpoint_loader import load_checkpoint
    from modules.models.ldm_export import write_safetensors

    def progress(msg: str) -> None:
        print(time.strftime("%H:%M:%S"), msg, flush=True)

    model = load_checkpoint(args.ckpt)
    base_hash, base_name = sha256_of(args.ckpt), args.ckpt.stem
    root = args.models_dir
    which = ["lora", "hypernetwork", "embedding", "model-card"] if args.which == "all" else [args.which]
    if "model-card" in which:
        which.remove("model-card")
        write_model_card(args.ckpt, root, progress, with_preview=not args.no_preview)
    for kind in which:
        torch.manual_seed(cfg.seed)
        if kind == "lora":
            sd = train_lora(model, cfg, progress)
            path = root / "Lora" / f"{LORA_NAME}.safetensors"
            meta = {"ss_output_name": LORA_NAME, "ss_network_module": "networks.lora",
                    "ss_network_dim": str(cfg.lora_rank), "ss_network_alpha": str(cfg.lora_alpha),
                    "ss_base_model_version": "sd_v1", "ss_sd_model_name": base_name,
                    "sshs_legacy_hash": "", "ss_resolution": "(64, 64)", "ss_steps": str(cfg.lora_steps),
                    "ss_training_comment": "Demo LoRA for the demo shapes model: striped backgrounds "
                                           "(tools/demo_model/train_adapters.py)",
                    "modelspec.title": "SD demo striped", "modelspec.architecture": "stable-diffusion-v1/lora"}
            meta = {k: v for k, v in meta.items() if v}
            _atomic(path, lambda p: write_safetensors(sd, p, meta))
            write_json(path.with_suffix(".json"), {
                "description": "Demo LoRA for the built-in demo model: vertical white stripes on the background. "
                               "Trained with tools/demo_model/train_adapters.py.",
                "sd version": "SD1", "activation text": "striped", "preferred weight": 1.0,
                "notes": "Use with the demo model (sd-demo-shapes-64), e.g. "
                         "'a small red circle on the left, striped blue background'."})
            prompts = [f"{p} <lora:{LORA_NAME}:1>" for p in (
                "a large red circle in the center, striped blue background",
                "a small yellow star on the left, striped purple background",
                "a large green triangle at the top, striped black background",
                "a large pink square on the right, striped cyan background")]
            preview_path = path.with_suffix(".png")
        elif kind == "hypernetwork":
            hn, width = train_hypernetwork(model, cfg, progress)
            path = root / "hypernetworks" / f"{HYPERNET_NAME}.pt"
            data = hypernetwork_file_dict(hn, width, cfg.hypernet_steps, base_hash, base_name)
            _atomic(path, lambda p: torch.save(data, p))
            write_json(path.with_suffix(".json"), {
                "description": "Demo hypernetwork for the built-in demo model: a sepia palette. "
                               "Trained with tools/demo_model/train_adapters.py.",
                "activation text": "", "preferred weight": 1.0,
                "notes": "Use with the demo model (sd-demo-shapes-64): <hypernet:sd-demo-sepia:1>."})
            prompts = [f"{p} <hypernet:{HYPERNET_NAME}:1>" for p in (
                "a large red circle in the center, blue background",
                "a small yellow star on the left, purple background",
                "a large green triangle at the top, white background",
                "a large pink square on the right, cyan background")]
            preview_path = path.with_name(f"{HYPERNET_NAME}.preview.png")
        else:
            vec = train_embedding(model, cfg, progress)
            path = root / "embeddings" / f"{EMBEDDING_NAME}.pt"
            data = embedding_file_dict(vec, cfg.embedding_steps, base_hash, base_name)
            _atomic(path, lambda p: torch.save(data, p))
            write_json(path.with_suffix(".json"), {
                "description": "Demo embedding for the built-in demo model: the word 'demo-sun' means a large "
                               "yellow circle. Trained with tools/demo_model/train_adapters.py.",
                "activation text": EMBEDDING_NAME, "preferred weight": 1.0,
                "notes": "e.g. 'demo-sun on the left, blue background'."})
            prompts = [f"{EMBEDDING_NAME} {p}" for p in (
                "in the center, blue background", "on the left, purple background",
                "at the top, black background", "on the right, cyan background")]
            preview_path = path.with_name(f"{EMBEDDING_NAME}.preview.png")
        progress(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
        if not args.no_preview:
            preview(args.ckpt, root, prompts, preview_path)
            progress(f"wrote {preview_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
