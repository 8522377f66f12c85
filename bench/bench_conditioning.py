"""Text conditioning of a 300-token prompt with three schedule changes: first call and cached,
against diffusers' StableDiffusionPipeline.encode_prompt of the same text, in the same run.

A full-size SD1 text encoder (CLIP ViT-L/14 architecture, random weights: speed does not depend
on the values) is used so that the timing means something on CPU.

    .venv/bin/python bench/bench_conditioning.py [--repeats 5]
Note: encode_prompt truncates at 77 tokens (one chunk); ours encodes every 75-token chunk of
every scheduled text, as A1111 does, so the per-chunk time is printed too.
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

PROMPT = (
    "masterpiece, best quality, [a red fox:a white wolf:5] standing in a snowy pine forest at dawn, (soft light:1.2), "
    + ", ".join(f"detail {i} of the scene" for i in range(40))
    + ", [oil painting:watercolor:10], BREAK sharp focus, [cinematic:15] composition"
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ns = ap.parse_args()

    import webui
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel

    from modules.settings import cmd_args
    from modules.core import prompt_parser
    from modules.models.builtin_model import ensure_builtin_model
    from modules.engine.pipeline import Batch, Plan
    from modules.core.request import GenerationRequest
    from modules.core import samplers
    from modules.engine.conditioning import TextConditioner

    torch.manual_seed(0)
    config_dir = Path(__file__).resolve().parents[1] / "modules" / "models" / "model_configs" / "sd1" / "text_encoder"
    clip = CLIPTextModel(CLIPTextConfig.from_pretrained(config_dir)).eval()

    data = Path(tempfile.mkdtemp(prefix="bench-cond-"))
    ckpt = ensure_builtin_model(data / "cache" / "builtin")
    engine = webui.build_engine(cmd_args.parse_args(["--data-dir", str(data), "--ckpt", str(ckpt), "--use-cpu", "all"], environ={}))
    engine.ensure_model()
    tokenizer = engine.model.tokenizers[0]
    engine.conditioner = TextConditioner("sd1", [tokenizer], [clip], engine.conditioning_options(None))

    steps = 20
    req = GenerationRequest(prompt=PROMPT, negative_prompt="lowres, blurry", steps=steps)
    sampler, schedule = samplers.resolve_sampler("DPM++ 2M", "Automatic")
    batch = Batch(0, [PROMPT], ["lowres, blurry"], [1], [1])

    def plan() -> Plan:
        return Plan(request=req, sampler=sampler, schedule=schedule, schedule_label="Karras", clip_skip=1,
                    all_prompts=[PROMPT], all_negative_prompts=["lowres, blurry"], cond_prompts=[PROMPT],
                    all_seeds=[1], all_subseeds=[1], seed=1, subseed=1)

    vae_unet = engine.model
    pipe = StableDiffusionPipeline(vae=vae_unet.vae, unet=vae_unet.unet, text_encoder=clip, tokenizer=tokenizer,
                                   scheduler=DPMSolverMultistepScheduler.from_config(vae_unet.scheduler_config, use_karras_sigmas=True),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)

    def ours_first() -> None:
        engine._cond_cache.clear()
        engine.conditioning(plan(), batch, steps=steps, hires_steps=None, sampler=sampler)

    def ours_cached() -> None:
        engine.conditioning(plan(), batch, steps=steps, hires_steps=None, sampler=sampler)

    def reference() -> None:
        with torch.no_grad():
            pipe.encode_prompt(PROMPT, torch.device("cpu"), 1, True, "lowres, blurry")

    schedules = prompt_parser.get_learned_conditioning_prompt_schedules([PROMPT], steps)[0]
    chunks = sum(-(-engine.conditioner.count_tokens(t)[1] // 75) for _, t in schedules) + 1  # + the negative
    used, target = engine.conditioner.count_tokens(schedules[-1][1])
    ours_first(); reference()  # warm-up
    t_first, t_cached, t_ref = [], [], []
    for _ in range(ns.repeats):
        for fn, bucket in ((reference, t_ref), (ours_first, t_first), (ours_cached, t_cached)):
            start = time.perf_counter(); fn(); bucket.append(time.perf_counter() - start)
    mf, mc, mr = (statistics.median(x) for x in (t_first, t_cached, t_ref))
    print(f"prompt: {used}/{target} tokens, {len(schedules)} scheduled texts, {chunks} chunks of 77 encoded (incl. negative); diffusers encodes 2 (truncated)")
    print(f"diffusers encode_prompt: {mr * 1000:.1f} ms")
    print(f"ours, first call:        {mf * 1000:.1f} ms  ratio {mf / mr:.2f}  ({mf / chunks * 1000:.1f} ms per chunk vs {mr / 2 * 1000:.1f})")
    print(f"ours, cached:            {mc * 1000:.3f} ms  ratio {mc / mr:.4f}")


if __name__ == "__main__":
    main()
