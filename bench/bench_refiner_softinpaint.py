"""What the refiner switch and soft inpainting cost, each against the same request without them, in the same run.

    .venv/bin/python bench/bench_refiner_softinpaint.py [--runs 5] [--steps 20] [--size 64]

The demo model and a copy of it with other UNet weights (the refiner) in a temporary models folder. Printed: the
median seconds of a txt2img job without and with the refiner (switch at 0.8: one checkpoint load and conditioning
mid-run, the main model loaded again at the end), and of an inpainting job without and with soft inpainting (the
per-step blend and the difference-mask composite).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _median_seconds(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    ns = parser.parse_args(argv)

    import webui
    from PIL import Image, ImageDraw

    from modules.core.request import GenerationRequest
    from modules.models import builtin_model, merge
    from modules.models.safe_load import load_state_dict, read_safetensors_metadata
    from modules.scripting.host import ScriptHost
    from modules.settings import cmd_args

    with tempfile.TemporaryDirectory(prefix="bench-refiner-") as tmp:
        ckpt_dir = Path(tmp) / "models" / "Stable-diffusion"
        ckpt_dir.mkdir(parents=True)
        shutil.copyfile(builtin_model.DEMO_PATH, ckpt_dir / "demo.safetensors")
        state = load_state_dict(builtin_model.DEMO_PATH)
        other = {k: v * 1.05 if k.startswith("model.diffusion_model.") and v.is_floating_point() else v
                 for k, v in state.items()}
        merge.write_checkpoint(other, ckpt_dir / "refiner.safetensors", read_safetensors_metadata(builtin_model.DEMO_PATH))
        engine = webui.build_engine(cmd_args.parse_args(["--data-dir", tmp], environ={}))
        engine.select_checkpoint("demo.safetensors")
        host = ScriptHost.for_engine(engine)
        size = ns.size

        def txt2img(**extra):
            return lambda: host.generate(GenerationRequest(
                prompt="a red circle on a blue background", steps=ns.steps, width=size, height=size, seed=1,
                do_not_save_samples=True, do_not_save_grid=True, **extra))

        source = Image.new("RGB", (size, size), (30, 60, 200))
        mask = Image.new("L", (size, size), 0)
        ImageDraw.Draw(mask).rectangle((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=255)

        def inpaint(**extra):
            return lambda: host.generate(GenerationRequest(
                prompt="a yellow star", steps=ns.steps, width=size, height=size, seed=1, init_images=[source],
                mask=mask, denoising_strength=0.75, inpaint_full_res=False, do_not_save_samples=True,
                do_not_save_grid=True, **extra))

        soft = {"Soft Inpainting": {"args": [True, 1, 0.5, 4, 0, 0.5, 2]}}
        rows = [
            ("txt2img", _median_seconds(txt2img(), ns.runs)),
            ("txt2img + refiner (switch at 0.8)",
             _median_seconds(txt2img(refiner_checkpoint="refiner.safetensors", refiner_switch_at=0.8), ns.runs)),
            ("inpaint", _median_seconds(inpaint(), ns.runs)),
            ("inpaint + soft inpainting", _median_seconds(inpaint(alwayson_scripts=soft), ns.runs)),
        ]
        print(f"{ns.steps} steps, {size}x{size}, median of {ns.runs} runs")
        for name, seconds in rows:
            print(f"{name:40s} {seconds:7.3f} s")
        print(f"refiner / plain: {rows[1][1] / rows[0][1]:.2f}   soft / plain inpaint: {rows[3][1] / rows[2][1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
