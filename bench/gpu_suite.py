"""The GPU measurements of issue 20 in one short run: SD1.5 at 512 px and SDXL at 1024 px, batch 1, fp16.

For each model (a random-weight checkpoint with the full layout, made locally: ``bench/sd_checkpoints.py``):

* it/s of plain diffusers (``from_single_file``, Euler) and of this app's engine, eager and ``--compile``d
  (diffusers compiled with the same ``torch.compile`` mode); the per-step rate is ``(S - 1) / (t(S) - t(1))``
  over two generations of S and 1 steps, so prompt encoding and the VAE decode cancel out;
* the time to change a LoRA set of 3 x rank 32 (kohya files over the attention layers and text encoders): the
  extra time of a 1-step generation whose set changed (on, one multiplier changed, off) over one whose set did not;
* the overhead of one hypernetwork (A1111 layout, the model's attention widths; activation linear, A1111's default,
  and relu) on the app's it/s;
* peak GPU memory of one generation with no offload, ``--medvram`` and ``--lowvram``.

Every line is a ratio beside its baseline, measured in this run on this card. Budget: about 10 minutes on an H100
(most of it compiling); ``--families sd1`` or ``--no-compile`` make it shorter.

    .venv/bin/python bench/gpu_suite.py                  # on a GPU machine
    .venv/bin/python bench/gpu_suite.py --smoke          # CPU, tiny models, 64 px: checks that it runs end to end
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.bench_lora_switch import sync, timed  # noqa: E402
from bench.sd_checkpoints import cache_dir, checkpoint, reference_pipeline  # noqa: E402

PROMPT, NEGATIVE = "a red circle on a blue background", "blurry"
FULL = {"sd1": 512, "sdxl": 1024}


def free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def tiny_checkpoint(family: str) -> tuple[Path, Path]:
    """The tests' tiny model of ``family`` as a single file, and a diffusers config folder that describes it."""
    from bench.sd_checkpoints import config_folder_for
    from tests import tiny_models

    components = tiny_models.tiny_sd1(seed=0) if family == "sd1" else tiny_models.tiny_sdxl(seed=0)
    path = cache_dir() / f"tiny-{family}.safetensors"
    if not path.is_file():
        tiny_models.write_single_file(components, path, family)
    parts = {k: v for k, v in components.items() if k in ("unet", "vae", "text_encoder", "text_encoder_2")}
    return path, config_folder_for(parts, family, f"tiny-{family}")


def step_rate(generate, steps: int, repeats: int) -> float:
    """Denoising steps per second: ``generate(n, on_step)`` calls ``on_step()`` at the end of each step; the rate is
    taken from the first step's end to the last one's (median of ``repeats`` generations), so prompt encoding, the
    first step's allocations and the VAE decode are left out, the same way for the app and for diffusers."""
    def one() -> float:
        stamps: list[float] = []

        def on_step() -> None:
            sync()  # the GPU's work for this step is done: both sides pay the same small wait
            stamps.append(time.perf_counter())

        generate(steps, on_step)
        return (len(stamps) - 1) / (stamps[-1] - stamps[0])

    one()  # warm-up (and the compile, when compiled)
    return statistics.median(one() for _ in range(repeats))


class App:
    """The app's Engine on ``ckpt`` with launch ``flags`` (what webui.py builds), in this process."""

    def __init__(self, ckpt: Path, data: Path, flags: list[str], device: str) -> None:
        import webui
        from modules.settings import cmd_args

        argv = ["--data-dir", str(data), "--ckpt", str(ckpt), *flags]
        if device == "cpu":
            argv += ["--use-cpu", "all"]
        self.engine = webui.build_engine(cmd_args.parse_args(argv, environ={}))
        for key in ("samples_save", "grid_save", "show_progressbar"):
            self.engine.options.set(key, False)
        self.engine.ensure_model()

    def generate(self, steps: int, size: int, prompt: str = PROMPT, on_step=None) -> None:
        state = self.engine.state
        if on_step is not None:  # the pipeline reports every finished step to the job state
            original = state.set_step
            state.set_step = lambda step, total: (original(step, total), step and on_step())
        try:
            self._generate(steps, size, prompt)
        finally:
            if on_step is not None:
                del state.set_step

    def _generate(self, steps: int, size: int, prompt: str) -> None:
        from modules.core.request import GenerationRequest

        self.engine.generate(GenerationRequest(prompt=prompt, negative_prompt=NEGATIVE, steps=steps, width=size, height=size,
                                               sampler_name="Euler", cfg_scale=7.0, seed=1, do_not_save_samples=True,
                                               do_not_save_grid=True))

    def close(self) -> None:
        self.engine.unload_checkpoint()
        self.engine = None
        free()


def diffusers_rate(ckpt: Path, config: Path | None, family: str, size: int, steps: int, repeats: int, device: str, dtype,
                   compile_mode: str | None, backend: str) -> float:
    pipe = reference_pipeline(ckpt, family, device, dtype, config)
    if compile_mode is not None:
        options = {"backend": backend, **({"mode": compile_mode} if backend == "inductor" else {})}
        pipe.unet.compile(**options)
        pipe.vae.decoder.compile(**options)

    def generate(n: int, on_step) -> None:
        def callback(pipe, i, t, kwargs):
            on_step()
            return kwargs

        pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=n, guidance_scale=7.0, width=size, height=size,
             generator=torch.Generator(device).manual_seed(1), output_type="pil", callback_on_step_end=callback)

    try:
        return step_rate(generate, steps, repeats)
    finally:
        del pipe
        free()


def _tolerant(fn):
    """--smoke: the tiny SDXL test model is not a layout diffusers' single-file loader knows; say so, go on."""
    def run(*args):
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - reported, and the app's side still runs
            print(f"diffusers could not run this tiny model: {type(exc).__name__}: {str(exc)[:120]}")
            return float("nan")
    return run


def write_adapters(app: App, family: str, folder: Path) -> None:
    from bench.bench_network_sampling import hypernetwork_file
    from tests import network_files

    model = app.engine.model
    components = {"unet": model.unet, "text_encoder": model.text_encoders[0]}
    if len(model.text_encoders) > 1:
        components["text_encoder_2"] = model.text_encoders[1]
    (folder / "Lora").mkdir(parents=True, exist_ok=True)
    for i, name in enumerate("abc"):
        sd = network_files.kohya_lora(components, rank=32, alpha=16, seed=i, scale=0.01, conv=False)
        sd = {k: v.half() for k, v in sd.items() if "attentions" in k or k.startswith("lora_te")}
        network_files.save_safetensors(sd, folder / "Lora" / f"suite_{name}.safetensors")
    widths = sorted({m.to_k.in_features for m in model.unet.modules() if hasattr(m, "to_k")}
                    | {m.to_q.in_features for m in model.unet.modules() if hasattr(m, "to_q")})
    (folder / "hypernetworks").mkdir(parents=True, exist_ok=True)
    hypernetwork_file(folder / "hypernetworks" / "suite_hn.pt", widths)  # A1111's default: linear (folded)
    hypernetwork_file(folder / "hypernetworks" / "suite_hn_relu.pt", widths, "relu")
    app.engine.refresh_checkpoints()
    app.engine.networks.refresh(["lora", "hypernet"])


def lora_change_times(app: App, size: int) -> dict[str, float]:
    sets = {"off": "", "on": " <lora:suite_a:0.8> <lora:suite_b:0.8> <lora:suite_c:0.8>",
            "one multiplier": " <lora:suite_a:0.8> <lora:suite_b:0.8> <lora:suite_c:0.5>"}
    order = ["on", "one multiplier", "off"] * 2  # the second round: files already read
    app.generate(1, size, PROMPT + sets["on"]); app.generate(1, size, PROMPT)  # read the files once
    same = statistics.median([timed(lambda: app.generate(1, size, PROMPT)) for _ in range(3)])
    changes: dict[str, list[float]] = {k: [] for k in ("on", "one multiplier", "off")}
    for name in order:
        changes[name].append(timed(lambda: app.generate(1, size, PROMPT + sets[name])) - same)
    return {k: statistics.median(v) for k, v in changes.items()}


def peak_memory(ckpt: Path, data: Path, flags: list[str], size: int, device: str) -> float | None:
    if device != "cuda":
        return None
    free()
    torch.cuda.reset_peak_memory_stats()
    app = App(ckpt, data, flags, device)
    app.generate(4, size)
    peak = torch.cuda.max_memory_allocated() / 2 ** 30
    app.close()
    return peak


def run_family(family: str, ns, device: str, dtype) -> None:
    size = ns.size or (64 if ns.smoke else FULL[family])
    ckpt, config = tiny_checkpoint(family) if ns.smoke else (checkpoint(family, torch.float16, device=device), None)
    data = Path(tempfile.mkdtemp(prefix=f"gpu-suite-{family}-"))
    compile_flags = ["--compile-backend", ns.compile_backend] + (["--compile-mode", ns.compile_mode] if ns.compile_mode else [])
    mode = ns.compile_mode or ("reduce-overhead" if device == "cuda" else "default")
    print(f"\n== {family} {size}x{size}, {ns.steps} steps, batch 1, {str(dtype).replace('torch.', '')}, {ckpt.name}", flush=True)

    rates: dict[str, float] = {}
    reference = diffusers_rate if not ns.smoke else _tolerant(diffusers_rate)
    rates["diffusers"] = reference(ckpt, config, family, size, ns.steps, ns.repeats, device, dtype, None, ns.compile_backend)
    app = App(ckpt, data, [], device)
    rates["app"] = step_rate(lambda n, cb: app.generate(n, size, on_step=cb), ns.steps, ns.repeats)
    write_adapters(app, family, data / "models")
    hn = {name: step_rate(lambda n, cb: app.generate(n, size, f"{PROMPT} <hypernet:{name}:1>", on_step=cb),
                          ns.steps, ns.repeats) for name in ("suite_hn", "suite_hn_relu")}
    lora = lora_change_times(app, size)
    app.close()
    if not ns.no_compile:
        rates["diffusers compiled"] = reference(ckpt, config, family, size, ns.steps, ns.repeats, device, dtype, mode,
                                                     ns.compile_backend)
        app = App(ckpt, data, ["--compile", *compile_flags], device)
        rates["app compiled"] = step_rate(lambda n, cb: app.generate(n, size, on_step=cb), ns.steps, ns.repeats)
        app.close()

    base = rates["diffusers"]
    for name, rate in rates.items():
        print(f"{name:<22}{rate:8.2f} it/s   {rate / base:6.3f}x diffusers eager", flush=True)
    if "app compiled" in rates:
        print(f"app compiled / diffusers compiled: {rates['app compiled'] / rates['diffusers compiled']:.3f}x "
              f"(mode {mode}, backend {ns.compile_backend})")
    for name, label in (("suite_hn", "linear, A1111's default"), ("suite_hn_relu", "relu")):
        print(f"hypernetwork ({label}): {hn[name]:.2f} it/s, overhead {rates['app'] / hn[name] - 1:+.1%} time per "
              f"step against the app without it")
    print("LoRA set change, 3 x rank 32 (extra time of a 1-step generation): "
          + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in lora.items()))
    peaks = {name: peak_memory(ckpt, data, flags, size, device)
             for name, flags in (("none", []), ("--medvram", ["--medvram"]), ("--lowvram", ["--lowvram"]))}
    if device == "cuda":
        print("peak GPU memory: " + ", ".join(f"{k} {v:.2f} GiB" for k, v in peaks.items()))
    else:
        print("peak GPU memory: n/a on CPU (--medvram/--lowvram are GPU options)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", "--tiny", action="store_true", help="tiny models on the CPU, to check the script runs")
    ap.add_argument("--families", default="sd1,sdxl")
    ap.add_argument("--size", type=int, default=None, help="default: 512 for SD1.5, 1024 for SDXL (64 with --smoke)")
    ap.add_argument("--steps", type=int, default=None, help="default 20 (3 with --smoke)")
    ap.add_argument("--repeats", type=int, default=None, help="default 3 (1 with --smoke)")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--compile-mode", default=None, help="default: reduce-overhead on CUDA, default on CPU")
    ap.add_argument("--compile-backend", default="inductor")
    ns = ap.parse_args()
    ns.steps = ns.steps or (3 if ns.smoke else 20)
    ns.repeats = ns.repeats or (1 if ns.smoke else 3)
    device = "cpu" if ns.smoke or not torch.cuda.is_available() else "cuda"
    dtype = torch.float16 if device == "cuda" else torch.float32
    card = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"device: {card}; torch {torch.__version__}")
    start = time.perf_counter()
    for family in ns.families.split(","):
        run_family(family.strip(), ns, device, dtype)
    print(f"\ntotal {time.perf_counter() - start:.0f} s on {card}")


if __name__ == "__main__":
    main()
