"""Measure the demo model and its adapters through the real app engine, with no learned classifier.

Base model: every held-out caption (combinations never seen in training) is rendered at 20 steps (the app's
default sampler, CFG 7, 64x64). The background colour is the median of the image border; the shape is the
largest connected region of pixels far from it. Then

* colour right: the saturation-weighted mean hue of that region is nearest to the named colour's hue;
* shape right: among the ideal masks of every shape at the named size and position, the named shape's has
  the highest IoU with the region, and that IoU is at least 0.5.

Adapters (each at multipliers 0, 0.5, 1, plus "none" without the adapter; 0 must equal none bit for bit):

* LoRA ``sd-demo-striped``: stripe amplitude, the strength of the 16 px period along x in the image's
  column means (0..255 units);
* hypernetwork ``sd-demo-sepia``: sepia error, the distance of the background colour from the sepia tone of
  the named background (0..441 RGB units; lower is more sepia);
* embedding ``demo-sun`` (a large yellow circle): share of images showing one (anywhere: the word tends to
  override the position), and share whose shape is yellow, at prompt weights ``(demo-sun:w)``; weight 0 is the
  prompt without the word.

    .venv/bin/python -m tools.demo_model.evaluate [--ckpt FILE] [--limit 200] [--adapters] [--vae] [--json out.json]
"""
from __future__ import annotations

import argparse
import colorsys
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tools.demo_model import shapes  # noqa: E402
from tools.demo_model.train_adapters import EMBEDDING_NAME, HYPERNET_NAME, LORA_NAME  # noqa: E402
MULTIPLIERS = (0.0, 0.5, 1.0)
SEG_THRESHOLD = 60.0   # RGB distance from the background colour that counts as "shape"
IOU_MIN = 0.5
POSITION_TOLERANCE = 6.0


# --- image measurements (pure numpy) ------------------------------------------------------------------

def background_colour(a: np.ndarray) -> np.ndarray:
    """Median colour of the 2 px border."""
    border = np.concatenate([a[:2].reshape(-1, 3), a[-2:].reshape(-1, 3), a[:, :2].reshape(-1, 3),
                             a[:, -2:].reshape(-1, 3)])
    return np.median(border, axis=0)


def segment(img: Image.Image) -> np.ndarray:
    """Boolean mask of the largest connected region that differs from the background colour.

    A pixel belongs to the shape when it is nearer the shape's colour (the median of the pixels farthest
    from the background) than the background's, and at least SEG_THRESHOLD from the background: so
    anti-aliased edges count when at least half covered, as in the ideal masks."""
    from scipy import ndimage

    a = np.asarray(img.convert("RGB"), dtype=np.float32)
    dist = np.linalg.norm(a - background_colour(a), axis=-1)
    top = dist.max()
    if top <= SEG_THRESHOLD:
        return np.zeros(dist.shape, dtype=bool)
    core = a[dist >= 0.8 * top]
    shape_colour = np.median(core, axis=0)
    to_shape = np.linalg.norm(a - shape_colour, axis=-1)
    far = (dist > SEG_THRESHOLD) & (to_shape < dist)
    labels, n = ndimage.label(far)
    if n == 0:
        return far
    sizes = ndimage.sum(far, labels, index=np.arange(1, n + 1))
    return labels == (1 + int(np.argmax(sizes)))


def region_hue(img: Image.Image, mask: np.ndarray) -> float | None:
    """Saturation-weighted circular mean hue (degrees) of the masked pixels; None if grey or empty."""
    a = np.asarray(img.convert("RGB"), dtype=np.float32)[mask] / 255.0
    if len(a) == 0:
        return None
    hsv = np.array([colorsys.rgb_to_hsv(*p) for p in a])
    w = hsv[:, 1] * hsv[:, 2]
    if w.sum() < 1e-3 * len(a):
        return None
    ang = hsv[:, 0] * 2 * np.pi
    return float(np.degrees(np.arctan2((w * np.sin(ang)).sum(), (w * np.cos(ang)).sum())) % 360)


def nearest_colour(hue: float | None) -> str | None:
    if hue is None:
        return None
    def dist(name: str) -> float:
        d = abs(shapes.hue_of(shapes.COLOURS[name]) - hue) % 360
        return min(d, 360 - d)
    return min(shapes.COLOURS, key=dist)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


@dataclass
class Judgement:
    caption: str
    colour_found: str | None
    colour_right: bool
    shape_found: str
    shape_iou: float
    shape_right: bool
    position_right: bool  # the region's centroid within POSITION_TOLERANCE px of the named position


def judge(img: Image.Image, scene: shapes.Scene) -> Judgement:
    mask = segment(img)
    colour = nearest_colour(region_hue(img, mask))
    ious = {s: iou(mask, shapes.shape_mask(s, scene.size, scene.position, img.width)) for s in shapes.SHAPES}
    best = max(ious, key=ious.get)
    placed = False
    if mask.any():
        ys, xs = np.nonzero(mask)
        k = img.width / shapes.RESOLUTION
        cx, cy = (v * k for v in shapes.POSITIONS[scene.position])
        placed = abs(xs.mean() + 0.5 - cx) <= POSITION_TOLERANCE * k and abs(ys.mean() + 0.5 - cy) <= POSITION_TOLERANCE * k
    return Judgement(shapes.caption(scene), colour, colour == scene.colour, best, ious[scene.shape],
                     best == scene.shape and ious[scene.shape] >= IOU_MIN, placed)


def stripe_amplitude(img: Image.Image) -> float:
    """Amplitude (0..255) of the 16 px period along x in the column means of the grey image."""
    a = np.asarray(img.convert("L"), dtype=np.float64)
    profile = a.mean(axis=0)
    x = np.arange(profile.size)
    k = profile.size / shapes.STRIPE_PERIOD
    c = np.exp(-2j * np.pi * k * x / profile.size)
    return float(2 * abs((profile * c).sum()) / profile.size)


def sepia_error(img: Image.Image, scene: shapes.Scene) -> float:
    """Distance (RGB, 0..441) of the picture's background colour (median of its border) from the sepia tone of
    the background its caption names: low when the palette moved to sepia; an unchanged picture scores high, and
    so does one that went dark or grey instead."""
    want = np.asarray(shapes.sepia(Image.new("RGB", (1, 1), shapes.BACKGROUNDS[scene.background])),
                      dtype=np.float64)[0, 0]
    return float(np.linalg.norm(background_colour(np.asarray(img.convert("RGB"), dtype=np.float64)) - want))


def best_fit(mask: np.ndarray) -> tuple[float, str, str, str]:
    """(IoU, shape, size, position) of the ideal mask that fits ``mask`` best."""
    return max((iou(mask, shapes.shape_mask(s, z, p, mask.shape[1])), s, z, p)
               for s in shapes.SHAPES for z in shapes.SIZES for p in shapes.POSITIONS)


def is_yellow(img: Image.Image) -> bool:
    return nearest_colour(region_hue(img, segment(img))) == "yellow"


def is_sun(img: Image.Image) -> bool:
    """A large yellow circle, wherever it is (the embedding's concept)."""
    mask = segment(img)
    fit, shape, size, _ = best_fit(mask)
    return is_yellow(img) and shape == "circle" and size == "large" and fit >= IOU_MIN


# --- the engine ---------------------------------------------------------------------------------------

def build_engine(ckpt: Path | None, data_dir: Path, models_root: Path = REPO_ROOT / "models") -> Any:
    """An Engine on a scratch data folder; the adapters come from ``models_root``. Without ``ckpt`` the
    engine picks its default (the shipped demo model, as on a fresh install)."""
    import webui
    from modules.settings import cmd_args

    argv = ["--data-dir", str(data_dir), "--lora-dir", str(models_root / "Lora"),
            "--hypernetwork-dir", str(models_root / "hypernetworks"),
            "--embeddings-dir", str(models_root / "embeddings")]
    if ckpt is not None:
        argv += ["--ckpt", str(ckpt)]
    engine = webui.build_engine(cmd_args.parse_args(argv, environ={}))
    engine.ensure_model()
    return engine


def generate(engine: Any, prompts: list[str], seeds: list[int], *, steps: int = 20, batch: int = 16) -> list[Image.Image]:
    from modules.core.request import GenerationRequest

    size = engine.native_size() if hasattr(engine, "native_size") else (64, 64)
    out: list[Image.Image] = []
    for i in range(0, len(prompts), batch):
        p, s = prompts[i:i + batch], seeds[i:i + batch]
        req = GenerationRequest(prompt=p, negative_prompt="", seed=s, steps=steps, width=size[0], height=size[1],
                                batch_size=len(p), do_not_save_samples=True, do_not_save_grid=True)
        out += engine.generate(req).images[:len(p)]
    return out


def evaluate_base(engine: Any, limit: int | None = None, steps: int = 20) -> dict[str, Any]:
    scenes = shapes.heldout_scenes(limit)
    t0 = time.perf_counter()
    images = generate(engine, [shapes.caption(s) for s in scenes], list(range(len(scenes))), steps=steps)
    took = time.perf_counter() - t0
    verdicts = [judge(img, s) for img, s in zip(images, scenes)]
    n = len(verdicts)
    return {
        "captions": n,
        "steps": steps,
        **_verdict_summary(verdicts, scenes),
        "seconds_per_image": took / n,
        "images": images,
        "verdicts": verdicts,
    }


def _verdict_summary(verdicts: list[Judgement], scenes: list[shapes.Scene]) -> dict[str, Any]:
    n = len(verdicts)
    return {
        "colour_accuracy": sum(v.colour_right for v in verdicts) / n,
        "shape_accuracy": sum(v.shape_right for v in verdicts) / n,
        "mean_shape_iou": float(np.mean([v.shape_iou for v in verdicts])),
        "position_accuracy": sum(v.position_right for v in verdicts) / n,
        "shape_accuracy_by_shape": {s: float(np.mean([v.shape_right for v, sc in zip(verdicts, scenes) if sc.shape == s]))
                                    for s in shapes.SHAPES},
        "shape_accuracy_by_size": {z: float(np.mean([v.shape_right for v, sc in zip(verdicts, scenes) if sc.size == z]))
                                   for z in shapes.SIZES},
    }


def evaluate_vae_roundtrip(engine: Any, limit: int | None = None) -> dict[str, Any]:
    """The same judgement on the ideal held-out pictures after the loaded model's VAE encodes and decodes them:
    the ceiling the UNet can reach through this autoencoder."""
    import torch

    from tools.demo_model.train_model import to_images, to_tensor

    vae = engine.model.vae
    dtype = next(vae.parameters()).dtype
    scenes = shapes.heldout_scenes(limit)
    images: list[Image.Image] = []
    with torch.no_grad():
        for i in range(0, len(scenes), 64):
            x = to_tensor([shapes.render(s) for s in scenes[i:i + 64]]).to(vae.device, dtype)
            images += to_images(vae.decode(vae.encode(x).latent_dist.mean).sample.float())
    verdicts = [judge(img, s) for img, s in zip(images, scenes)]
    return {"captions": len(scenes), **_verdict_summary(verdicts, scenes)}


def adapter_prompts(limit: int) -> list[shapes.Scene]:
    return shapes.heldout_scenes(limit, seed=1)


def _arrays_equal(a: list[Image.Image], b: list[Image.Image]) -> bool:
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))


def _tag_multipliers(engine: Any, scenes: list[shapes.Scene], prompts: list[str], seeds: list[int], tag: str,
                     name: str, metric: Any, steps: int, description: str) -> dict[str, Any]:
    """``metric(image, scene)``'s mean over the prompts without the ``<tag:name:M>`` network and with it at each
    multiplier."""
    out: dict[str, Any] = {"metric": description}
    none = generate(engine, prompts, seeds, steps=steps)
    out["none"] = float(np.mean([metric(i, s) for i, s in zip(none, scenes)]))
    for m in MULTIPLIERS:
        imgs = generate(engine, [f"{p} <{tag}:{name}:{m:g}>" for p in prompts], seeds, steps=steps)
        out[f"{m:g}"] = float(np.mean([metric(i, s) for i, s in zip(imgs, scenes)]))
        if m == 0:
            out["zero_equals_none"] = _arrays_equal(imgs, none)
    return out


def evaluate_adapters(engine: Any, limit: int = 24, steps: int = 20) -> dict[str, Any]:
    """Each adapter's measured property at "none" and multipliers 0, 0.5, 1 (means over ``limit`` prompts)."""
    scenes = [s for s in adapter_prompts(limit * 2) if s.background not in ("white", "gray")][:limit]
    seeds = list(range(100, 100 + len(scenes)))
    results: dict[str, Any] = {}

    striped = [shapes.caption(shapes.with_caption_parts(s, pattern="striped")) for s in scenes]
    results["lora"] = _tag_multipliers(engine, scenes, striped, seeds, "lora", LORA_NAME,
                                       lambda img, _scene: stripe_amplitude(img), steps,
                                       "stripe amplitude (0..255, higher = more striped)")
    plain = [shapes.caption(s) for s in scenes]
    results["hypernetwork"] = _tag_multipliers(engine, scenes, plain, seeds, "hypernet", HYPERNET_NAME, sepia_error,
                                               steps, "background's distance from the sepia tone of the named "
                                                      "background (0..441, lower = more sepia)")

    emb: dict[str, Any] = {"metric": "share of images showing a large yellow circle (share with a yellow shape)"}
    bgs = [s.background for s in scenes]
    without = [f"in the center, {bg} background" for bg in bgs]
    none = generate(engine, without, seeds, steps=steps)
    emb["none"] = float(np.mean([is_sun(i) for i in none]))
    emb["yellow"] = {"none": float(np.mean([is_yellow(i) for i in none]))}
    for m in MULTIPLIERS:
        if m == 0:
            prompts = without
        elif m == 1:
            prompts = [f"{EMBEDDING_NAME} in the center, {bg} background" for bg in bgs]
        else:
            prompts = [f"({EMBEDDING_NAME}:{m:g}) in the center, {bg} background" for bg in bgs]
        imgs = generate(engine, prompts, seeds, steps=steps)
        emb[f"{m:g}"] = float(np.mean([is_sun(i) for i in imgs]))
        emb["yellow"][f"{m:g}"] = float(np.mean([is_yellow(i) for i in imgs]))
    results["embedding"] = emb
    return results


def contact_sheet(images: list[Image.Image], path: Path, columns: int = 16, scale: int = 2) -> None:
    if not images:
        return
    w, h = images[0].size
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * w, rows * h), (255, 255, 255))
    for i, im in enumerate(images):
        sheet.paste(im, ((i % columns) * w, (i // columns) * h))
    sheet.resize((sheet.width * scale, sheet.height * scale), Image.NEAREST).save(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Evaluate the demo model and adapters through the app engine.")
    ap.add_argument("--ckpt", type=Path, default=None, help="checkpoint (default: the engine's default model)")
    ap.add_argument("--limit", type=int, default=None, help="held-out captions to render (default: all)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--adapters", action="store_true", help="also measure the demo adapters")
    ap.add_argument("--adapters-only", action="store_true", help="measure the demo adapters only")
    ap.add_argument("--adapter-prompts", type=int, default=24)
    ap.add_argument("--vae", action="store_true", help="also judge the ideal pictures after a VAE round trip "
                                                       "(the ceiling the UNet can reach)")
    ap.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models",
                    help="folder with Lora/, hypernetworks/, embeddings/ (default: the repository's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="write the numbers here")
    ap.add_argument("--sheet", type=Path, default=None, help="save a contact sheet of the base images")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="demo-eval-") as tmp:
        engine = build_engine(args.ckpt, Path(tmp), args.models_dir)
        report: dict[str, Any] = {}
        if not args.adapters_only:
            base = evaluate_base(engine, args.limit, args.steps)
            print(f"held-out captions: {base['captions']} at {base['steps']} steps "
                  f"({base['seconds_per_image']:.2f} s/image)")
            print(f"colour accuracy: {base['colour_accuracy']:.1%}")
            print(f"shape accuracy:  {base['shape_accuracy']:.1%} (mean IoU with the named shape "
                  f"{base['mean_shape_iou']:.2f}; by shape: "
                  + ", ".join(f"{k} {v:.0%}" for k, v in base["shape_accuracy_by_shape"].items()) + "; by size: "
                  + ", ".join(f"{k} {v:.0%}" for k, v in base["shape_accuracy_by_size"].items()) + ")")
            print(f"position accuracy: {base['position_accuracy']:.1%} (centroid within {POSITION_TOLERANCE:g} px)")
            if args.sheet:
                contact_sheet(base["images"], args.sheet)
            report.update({k: v for k, v in base.items() if k not in ("images", "verdicts")})
        if args.vae:
            ceiling = evaluate_vae_roundtrip(engine, args.limit)
            print(f"VAE round trip of the ideal pictures: shape {ceiling['shape_accuracy']:.1%} (by shape: "
                  + ", ".join(f"{k} {v:.0%}" for k, v in ceiling["shape_accuracy_by_shape"].items())
                  + f"), colour {ceiling['colour_accuracy']:.1%}")
            report["vae_roundtrip"] = ceiling
        if args.adapters or args.adapters_only:
            adapters = evaluate_adapters(engine, args.adapter_prompts, args.steps)
            for name, r in adapters.items():
                cells = ", ".join(f"{k}: {r[k]:.3g}" for k in ("none", "0", "0.5", "1"))
                extra = f"; 0 == none: {r['zero_equals_none']}" if "zero_equals_none" in r else ""
                print(f"{name} [{r['metric']}]: {cells}{extra}")
            report["adapters"] = adapters
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
