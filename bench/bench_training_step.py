"""One training step of the app's trainer (``engine.train``) against a plain PyTorch loop doing the same step on
an independently loaded copy of the same model: the demo model (64 px), batch 4, a hypernetwork over every
attention width (or a 2-vector embedding), AdamW.

The plain loop: fixed latents, the caption tokenized and encoded by the text encoder (with gradients for the
embedding, whose vectors a forward hook puts in place), noise and timestep from a generator, the UNet's noise
prediction, MSE, backward, optimizer step. The app's loop adds what the Train tab does around it (batches
from the dataset, template prompts, the learning-rate schedule, the job state). Only the step loop is timed
on our side (``TrainResult.seconds``: dataset preparation and setup excluded). Rounds alternate between the two
so that load from other processes hits both alike; medians are printed with their ratio.

    .venv/bin/python bench/bench_training_step.py [--steps 20] [--rounds 3] [--kind hypernetwork|embedding]
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


def plain_loop(model, kind: str, steps: int, batch: int, latents: torch.Tensor, caption: str, widths: list[int]) -> float:
    """Seconds per step of the bare loop."""
    from modules.networks.hypernet_attention import HypernetworkPatch
    from modules.training import files
    from modules.training.loss import alphas_cumprod_of

    unet, te, tok = model.unet, model.text_encoders[0], model.tokenizers[0]
    for m in (unet, te, model.vae):
        m.requires_grad_(False)
    alphas = alphas_cumprod_of(model.scheduler_config).float()
    text = [caption] * batch
    patch, handle = None, None
    if kind == "hypernetwork":
        hn = files.new_hypernetwork("ref", widths, activation_func="relu")
        for m in hn.modules():
            m.train()
            m.requires_grad_(True)
        params = [p for m in hn.modules() for p in m.parameters()]
        patch = HypernetworkPatch(unet)
        patch.set([(hn, 1.0)])
        wd = 0.01
    else:
        vec = torch.zeros(2, te.get_input_embeddings().weight.shape[1], requires_grad=True)
        params = [vec]
        text = [f"* {caption}"] * batch

        def put(module, args, output):
            output = output.clone()
            output[:, 1:3] = vec
            return output

        handle = te.get_input_embeddings().register_forward_hook(put)
        wd = 0.0
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=wd)
    gen = torch.Generator().manual_seed(0)
    ids = tok(text, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    t0 = time.perf_counter()
    for _ in range(steps):
        if kind == "hypernetwork":
            with torch.no_grad():
                ctx = te(input_ids=ids).last_hidden_state
        else:
            ctx = te(input_ids=ids).last_hidden_state
        t = torch.randint(0, alphas.numel(), (batch,), generator=gen)
        noise = torch.randn(latents.shape, generator=gen)
        a = alphas[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
        loss = torch.nn.functional.mse_loss(unet(noisy, t, encoder_hidden_states=ctx).sample, noise)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    took = (time.perf_counter() - t0) / steps
    if patch is not None:
        patch.set([])
    if handle is not None:
        handle.remove()
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kind", choices=["hypernetwork", "embedding"], default="hypernetwork")
    ns = ap.parse_args()
    torch.set_num_threads(ns.threads)

    import webui
    from PIL import Image

    from modules.models.checkpoint_loader import load_checkpoint
    from modules.settings import cmd_args
    from modules.training import create
    from modules.training.trainer import TrainParams

    data = Path(tempfile.mkdtemp(prefix="bench-train-"))
    engine = webui.build_engine(cmd_args.parse_args(["--data-dir", str(data)], environ={}))
    engine.ensure_model()
    ckpt = Path(engine.checkpoint_info.filename)
    reference = load_checkpoint(ckpt)  # independently loaded: nothing shared with the engine's model
    w, h = engine.native_size()
    pics = data / "pics"
    pics.mkdir()
    for i in range(ns.batch):
        Image.new("RGB", (w, h), (40 * i, 90, 200)).save(pics / f"{i}-a blue square.png")
    widths = create.model_widths(engine)
    factor = reference.vae_scale_factor
    latents = torch.randn(ns.batch, reference.latent_channels, h // factor, w // factor)

    ours, plain = [], []
    for r in range(ns.rounds):
        name = f"bench-{r}"
        if ns.kind == "hypernetwork":
            create.create_hypernetwork(engine, name, widths, activation_func="relu")
        else:
            create.create_embedding(engine, name, 2)
        result = engine.train(TrainParams(
            kind=ns.kind, name=name, learn_rate="1e-3", batch_size=ns.batch, data_root=str(pics), training_width=w,
            training_height=h, steps=ns.steps, create_image_every=0, save_every=0,
            template_filename="hypernetwork.txt" if ns.kind == "hypernetwork" else "subject_filewords.txt"))
        ours.append(result.seconds / result.steps_done)
        plain.append(plain_loop(reference, ns.kind, ns.steps, ns.batch, latents, "a blue square", widths))
        print(f"round {r}: app {ours[-1] * 1000:.1f} ms/step, plain loop {plain[-1] * 1000:.1f} ms/step", flush=True)
    a, b = statistics.median(ours), statistics.median(plain)
    print(f"{ns.kind}, demo model {w}x{h}, batch {ns.batch}, {ns.threads} threads: app {a * 1000:.1f} ms/step, "
          f"plain PyTorch {b * 1000:.1f} ms/step, ratio app/plain {a / b:.3f}")


if __name__ == "__main__":
    main()
