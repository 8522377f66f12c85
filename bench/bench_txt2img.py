"""End-to-end txt2img: our engine against an independently loaded diffusers pipeline on the same file.

The reference is ``StableDiffusionPipeline.from_single_file`` on the same checkpoint (offline: the configs the
engine inferred from the file are written to a temporary diffusers folder and passed as ``config``), with
diffusers' own DPM-Solver++ 2M Karras scheduler. Ours runs A1111's DPM++ 2M (Karras) in σ space. Same steps, size,
CFG and seed, in one process, interleaved, so that the noisy machine cancels out; the ratio is what counts.

    .venv/bin/python bench/bench_txt2img.py [--size N] [--steps 20] [--repeats 5] [--ckpt PATH]
Without --ckpt it uses the default model (the shipped demo model); --size defaults to the model's native
size (64 for the demo model). On a GPU pass --device cuda (fp16).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


def _independent_pipeline(ckpt: str, m, device):
    """diffusers' own single-file loader on ``ckpt``, offline, with the configs the engine inferred."""
    import json
    import shutil

    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    shipped = Path(__file__).resolve().parents[1] / "modules" / "models" / "model_configs" / m.family
    folder = Path(tempfile.mkdtemp(prefix="bench-config-"))
    shutil.copy(shipped / "model_index.json", folder / "model_index.json")
    for name, cfg in m.config.items():
        (folder / name).mkdir()
        target = "scheduler_config.json" if name == "scheduler" else "config.json"
        (folder / name / target).write_text(json.dumps(cfg))
    for tok in ("tokenizer", "tokenizer_2"):
        if (shipped / tok).is_dir():
            shutil.copytree(shipped / tok, folder / tok)
            for f in ("vocab.json", "merges.txt"):  # the shipped CLIP vocabulary
                shutil.copy(shipped.parent / "clip_tokenizer" / f, folder / tok / f)
    cls = StableDiffusionXLPipeline if m.family == "sdxl" else StableDiffusionPipeline
    kwargs = {} if m.family == "sdxl" else {"safety_checker": None, "requires_safety_checker": False}
    pipe = cls.from_single_file(ckpt, config=str(folder), local_files_only=True, **kwargs).to(device)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, use_karras_sigmas=True,
                                                             algorithm_type="dpmsolver++", solver_order=2)
    return pipe


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--size", type=int, default=None, help="default: the model's native size")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ns = ap.parse_args()

    import webui
    from modules.settings import cmd_args
    from modules.models.builtin_model import default_model
    from modules.core.request import GenerationRequest

    data = Path(tempfile.mkdtemp(prefix="bench-"))
    ckpt = ns.ckpt or str(default_model(data / "cache" / "builtin"))
    flags = ["--data-dir", str(data), "--ckpt", ckpt]
    if ns.device == "cpu":
        flags += ["--use-cpu", "all"]
    engine = webui.build_engine(cmd_args.parse_args(flags, environ={}))
    engine.options.set("samples_save", False)
    engine.options.set("grid_save", False)
    engine.options.set("show_progressbar", False)  # the reference runs with its bar disabled too
    engine.ensure_model()
    m = engine.model
    if ns.size is None:
        ns.size = engine.native_size()[0]

    pipe = _independent_pipeline(ckpt, m, engine.devices.device)
    pipe.set_progress_bar_config(disable=True)
    prompt, negative = "a red circle on a blue background", "blurry"

    def ours() -> None:
        engine.generate(GenerationRequest(prompt=prompt, negative_prompt=negative, steps=ns.steps, width=ns.size, height=ns.size,
                                          sampler_name="DPM++ 2M", cfg_scale=7.0, seed=1))

    def reference() -> None:
        gen = [torch.Generator(engine.devices.device).manual_seed(1)]
        pipe(prompt, negative_prompt=negative, num_inference_steps=ns.steps, guidance_scale=7.0, width=ns.size, height=ns.size,
             generator=gen, output_type="pil")

    def sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    ours(); reference()  # warm-up: first calls pay allocations and the preview fit
    t_ours, t_ref = [], []
    for _ in range(ns.repeats):
        for fn, bucket in ((reference, t_ref), (ours, t_ours)):
            sync(); start = time.perf_counter(); fn(); sync()
            bucket.append(time.perf_counter() - start)
    mo, mr = statistics.median(t_ours), statistics.median(t_ref)
    print(f"model: {Path(ckpt).name} ({m.family}) device: {engine.devices.describe()} size: {ns.size} steps: {ns.steps}")
    print(f"diffusers pipeline: median {mr * 1000:.1f} ms  ours: median {mo * 1000:.1f} ms  ratio ours/ref = {mo / mr:.3f}")


if __name__ == "__main__":
    main()
