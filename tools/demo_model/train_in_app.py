"""Measure the app's own trainer (modules.training) on the demo model: the Train tab's path, end to end.

* hypernetwork: created from scratch (every module width of the model), trained on a folder of generated
  pictures with a *striped* background whose captions never say "striped" (template ``hypernetwork.txt``,
  i.e. the caption alone). Measured like ``evaluate`` measures the demo LoRA: the stripe amplitude of
  pictures from plain prompts without the hypernetwork, at multiplier 0, 0.5 and 1; multiplier 0 must equal
  "none" bit for bit.
* embedding: a new word for one shape-and-colour (a large pink star), trained on pictures of it at various
  places and backgrounds; measured as the share of pictures from "WORD in the center, BG background" that
  show a large pink star, against the prompt without the word.

Everything goes through ``engine.train`` and ``modules.training.create`` in a scratch data folder; the
shipped demo adapters are not touched.

    .venv/bin/python -m tools.demo_model.train_in_app --hypernet-steps 300 --embedding-steps 150 --json out.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tools.demo_model import evaluate, shapes  # noqa: E402

HYPERNET = "app-striped"
EMBEDDING = "app-pinkstar"
STAR = ("star", "pink", "large")


def write_striped_set(folder: Path, n: int, seed: int = 7) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        scene = shapes.sample_scene(rng, pattern="striped")
        if scene.background in ("white", "gray"):
            scene = replace(scene, background="blue" if scene.colour != "blue" else "red")
        shapes.render(scene).save(folder / f"{i:04d}.png")
        plain = replace(scene, pattern="plain")  # the caption does not name the stripes
        (folder / f"{i:04d}.txt").write_text(shapes.caption(plain), encoding="utf-8")


def write_star_set(folder: Path, n: int, seed: int = 8) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape, colour, size = STAR
    for i in range(n):
        bg = [b for b in shapes.BACKGROUNDS if b not in (colour, "white")][int(rng.integers(len(shapes.BACKGROUNDS) - 2))]
        pos = list(shapes.POSITIONS)[int(rng.integers(len(shapes.POSITIONS)))]
        scene = shapes.Scene(shape, colour, size, pos, bg)
        shapes.render(scene).save(folder / f"{i:04d}.png")
        words = f"{shapes.POSITION_WORDS[pos]}, {bg} background"
        (folder / f"{i:04d}.txt").write_text(words, encoding="utf-8")


def is_star(img) -> bool:
    fit, shape, size, _ = evaluate.best_fit(evaluate.segment(img))
    return (evaluate.nearest_colour(evaluate.region_hue(img, evaluate.segment(img))) == "pink" and shape == "star"
            and fit >= evaluate.IOU_MIN)


def main(argv: list[str] | None = None) -> int:
    import torch

    from modules.training import create
    from modules.training.trainer import TrainParams

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hypernet-steps", type=int, default=300)
    ap.add_argument("--embedding-steps", type=int, default=150)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--hypernet-lr", default="5e-3:1000, 1e-3")
    ap.add_argument("--embedding-lr", default="0.01")
    ap.add_argument("--pictures", type=int, default=64)
    ap.add_argument("--limit", type=int, default=24, help="prompts per measurement")
    ap.add_argument("--threads", type=int, default=1, help="1 on a shared CPU: 2 OpenMP threads that wait for each other on busy cores run far slower")
    ap.add_argument("--skip", choices=["hypernetwork", "embedding"], action="append", default=[])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", type=Path, help="keep the scratch folder here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out: dict = {"threads": args.threads}

    def say(msg: str) -> None:
        print(time.strftime("%H:%M:%S"), msg, flush=True)

    with tempfile.TemporaryDirectory(prefix="train-in-app-") as tmp:
        root = args.keep or Path(tmp)
        models = root / "models"
        for sub in ("Lora", "hypernetworks", "embeddings"):
            (models / sub).mkdir(parents=True, exist_ok=True)
        engine = evaluate.build_engine(None, root / "data", models)
        engine.options.set("training_write_csv_every", 25)
        size = engine.native_size()
        scenes = [s for s in evaluate.adapter_prompts(args.limit * 2) if s.background not in ("white", "gray")][:args.limit]
        seeds = list(range(100, 100 + len(scenes)))

        if "hypernetwork" not in args.skip:
            write_striped_set(root / "striped", args.pictures)
            path = create.create_hypernetwork(engine, HYPERNET, create.model_widths(engine), layer_structure="1, 2, 1",
                                              activation_func="relu", weight_init="Normal")
            say(f"created {path} widths {create.model_widths(engine)}")
            t0 = time.perf_counter()
            result = engine.train(TrainParams(
                kind="hypernetwork", name=HYPERNET, learn_rate=args.hypernet_lr, batch_size=args.batch,
                data_root=str(root / "striped"), training_width=size[0], training_height=size[1],
                steps=args.hypernet_steps, create_image_every=0, save_every=0, template_filename="hypernetwork.txt",
                clip_grad_mode="norm", clip_grad_value="1.0"))
            took = time.perf_counter() - t0
            say(f"hypernetwork: {result.message!r} in {took:.0f}s, loss {np.mean(result.losses[:10]):.4f} -> "
                f"{np.mean(result.losses[-10:]):.4f}")
            plain = [shapes.caption(s) for s in scenes]
            measured = evaluate._tag_multipliers(engine, scenes, plain, seeds, "hypernet", HYPERNET,
                                                 lambda img, _s: evaluate.stripe_amplitude(img), 20,
                                                 "stripe amplitude (0..255, higher = more striped)")
            out["hypernetwork"] = {"steps": result.steps_done, "batch": args.batch, "train_seconds": took,
                                   "seconds_per_step": took / max(1, result.steps_done),
                                   "loss_first10": float(np.mean(result.losses[:10])),
                                   "loss_last10": float(np.mean(result.losses[-10:])), **measured}
            say(f"hypernetwork measured: {json.dumps(out['hypernetwork'])}")

        if "embedding" not in args.skip:
            write_star_set(root / "stars", args.pictures)
            template = root / "emb_template.txt"
            template.write_text("[name] [filewords]\na [name] [filewords]\n", encoding="utf-8")
            path = create.create_embedding(engine, EMBEDDING, 2, init_text="*")
            say(f"created {path}")
            t0 = time.perf_counter()
            result = engine.train(TrainParams(
                kind="embedding", name=EMBEDDING, learn_rate=args.embedding_lr, batch_size=args.batch,
                data_root=str(root / "stars"), training_width=size[0], training_height=size[1],
                steps=args.embedding_steps, create_image_every=0, save_every=0, template_filename=str(template)))
            took = time.perf_counter() - t0
            say(f"embedding: {result.message!r} in {took:.0f}s")
            bgs = [s.background for s in scenes if s.background != "pink"]
            emb_seeds = seeds[:len(bgs)]
            without = evaluate.generate(engine, [f"in the center, {bg} background" for bg in bgs], emb_seeds)
            with_word = evaluate.generate(engine, [f"{EMBEDDING} in the center, {bg} background" for bg in bgs],
                                          emb_seeds)
            out["embedding"] = {"steps": result.steps_done, "batch": args.batch, "train_seconds": took,
                                "seconds_per_step": took / max(1, result.steps_done),
                                "metric": "share of pictures showing a pink star",
                                "without_word": float(np.mean([is_star(i) for i in without])),
                                "with_word": float(np.mean([is_star(i) for i in with_word]))}
            say(f"embedding measured: {json.dumps(out['embedding'])}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
