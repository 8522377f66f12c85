"""Training an embedding or a hypernetwork as one Engine job (A1111's Train tab and ``/sdapi/v1/train/*``).

The run holds the Engine's queue turn for its whole length, so no generation, model switch or other training
runs meanwhile; preview pictures are generations nested in that turn. Progress goes to the Engine's job state
(``job_no`` / ``job_count`` are steps, ``textinfo`` says loss, step and learning rate), so ``/sdapi/v1/progress``
and ``/internal/progress`` show it with an ETA. Interrupt stops after the current step and the file is saved.

The model's own weights are never changed: active LoRAs are taken off first (training is against the
checkpoint's weights), every model weight gets ``requires_grad`` off for the run and its previous flag back at
the end, and a hypernetwork's attention processors are removed again.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime
import html
import json
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import torch

from modules.training import dataset as ds
from modules.training.files import CreateError
from modules.training.loss import alphas_cumprod_of, diffusion_loss
from modules.training.lr_schedule import ScheduleError, parse_schedule
from modules.training.templates import TemplateError, read_template

if TYPE_CHECKING:
    from modules.engine.engine import Engine

log = logging.getLogger(__name__)

__all__ = ["TrainParams", "TrainResult", "run_training", "CLIP_GRAD_MODES"]

CLIP_GRAD_MODES = ("disabled", "value", "norm")
TRAIN_SEED = 1234  # every run's data order and noise come from this and the step number (see dataset.py)


@dataclass
class TrainParams:
    """A1111's training arguments (the names its ``/sdapi/v1/train/*`` requests use)."""

    kind: str  # "embedding" | "hypernetwork"
    name: str
    learn_rate: str = "0.005"
    batch_size: int = 1
    gradient_step: int = 1
    data_root: str = ""
    log_directory: str = "textual_inversion"
    training_width: int = 512
    training_height: int = 512
    varsize: bool = False
    steps: int = 100000
    clip_grad_mode: str = "disabled"
    clip_grad_value: str = "0.1"
    shuffle_tags: bool = False
    tag_drop_out: float = 0.0
    latent_sampling_method: str = "once"
    use_weight: bool = False
    create_image_every: int = 500
    save_every: int = 500
    template_filename: str = "style_filewords.txt"
    save_image_with_stored_embedding: bool = True
    preview_from_txt2img: bool = False
    preview_prompt: str = ""
    preview_negative_prompt: str = ""
    preview_steps: int = 20
    preview_sampler_name: str = "Euler a"
    preview_cfg_scale: float = 7.0
    preview_seed: int = -1
    preview_width: int = 512
    preview_height: int = 512
    id_task: str | None = None

    @property
    def name_field(self) -> str:
        return "embedding_name" if self.kind == "embedding" else "hypernetwork_name"

    @property
    def save_field(self) -> str:
        return "save_embedding_every" if self.kind == "embedding" else "save_hypernetwork_every"

    def validate(self) -> None:
        """CreateError naming the request field for anything out of range (before any work)."""
        if self.kind not in ("embedding", "hypernetwork"):
            raise CreateError("kind", f"must be embedding or hypernetwork, got {self.kind!r}")
        if not str(self.name or "").strip():
            raise CreateError(self.name_field, "choose what to train")
        for name, low in (("batch_size", 1), ("gradient_step", 1), ("steps", 1), ("training_width", 8),
                          ("training_height", 8), ("create_image_every", 0), ("save_every", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise CreateError(self.save_field if name == "save_every" else name,
                                  f"must be a whole number of at least {low}, got {value!r}")
        try:
            drop = float(self.tag_drop_out)
        except (TypeError, ValueError):
            raise CreateError("tag_drop_out", f"must be a number, got {self.tag_drop_out!r}") from None
        if not 0 <= drop < 1:
            raise CreateError("tag_drop_out", f"must be in [0, 1), got {self.tag_drop_out}")
        if self.clip_grad_mode not in CLIP_GRAD_MODES:
            raise CreateError("clip_grad_mode", f"must be one of {', '.join(CLIP_GRAD_MODES)}, got {self.clip_grad_mode!r}")
        if self.latent_sampling_method not in ds.LATENT_SAMPLING_METHODS:
            raise CreateError("latent_sampling_method", f"must be one of {', '.join(ds.LATENT_SAMPLING_METHODS)}, "
                                                        f"got {self.latent_sampling_method!r}")
        if self.varsize and self.batch_size > 1:
            # Pictures of different sizes cannot share a batch; A1111 asks for batch size 1 here too.
            raise CreateError("varsize", "\"do not resize images\" needs batch size 1")
        for name in ("learn_rate", "clip_grad_value"):
            if name == "clip_grad_value" and self.clip_grad_mode == "disabled":
                continue
            try:
                parse_schedule(getattr(self, name), self.steps)
            except ScheduleError as e:
                raise CreateError(name, str(e)) from None


@dataclass
class TrainResult:
    filename: str | None = None
    steps_done: int = 0
    step: int = 0
    interrupted: bool = False
    last_loss: float | None = None
    losses: list[float] = field(default_factory=list)
    previews: list[str] = field(default_factory=list)
    copies: list[str] = field(default_factory=list)
    seconds: float = 0.0
    message: str = ""


@contextmanager
def _queue_turn(engine: "Engine") -> Iterator[None]:
    # The Engine's turn: nested generations (the previews) see it as already theirs.
    with engine.exclusive():
        yield


@contextmanager
def _frozen(modules: list[torch.nn.Module]) -> Iterator[None]:
    """No model weight takes gradients during the run; the previous flags come back afterwards."""
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def _make_target(engine: "Engine", params: TrainParams) -> Any:
    from modules.training.targets import EmbeddingTarget, HypernetworkTarget

    cls = EmbeddingTarget if params.kind == "embedding" else HypernetworkTarget
    return cls(engine, str(params.name).strip())


def _vae_encoder(engine: "Engine"):
    model = engine.model
    vae = model.vae
    cfg = vae.config
    shift = getattr(cfg, "shift_factor", None) or 0.0

    def encode(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        param = next(vae.parameters())
        dist = vae.encode(pixels.to(param.device, param.dtype)).latent_dist
        return (dist.mean.float() - shift) * cfg.scaling_factor, dist.std.float() * cfg.scaling_factor

    return encode


def run_training(engine: "Engine", params: TrainParams) -> TrainResult:
    """Train as asked (see the module docstring). CreateError (naming the field) before anything starts."""
    params.validate()
    try:
        template_lines = read_template(params.template_filename, getattr(engine.args, "textual_inversion_templates_dir", None))
    except TemplateError as e:
        raise CreateError("template_filename", str(e)) from None
    with _queue_turn(engine):
        engine.ensure_model()
        model = engine.model
        if model.family in ("sdxl", "sdxl-refiner") or model.is_inpainting:
            raise CreateError(params.name_field, f"training for {model.family}{' inpainting' if model.is_inpainting else ''} "
                                                 "models is not supported; load an SD1 or SD2 checkpoint")
        state = engine.state
        state.begin(f"train_{params.kind}", 1, params.id_task)
        state.textinfo = "Preparing the dataset..."
        try:
            engine.networks.restore_weights()
            with _frozen([model.unet, model.vae, *model.text_encoders]):
                run = _Run(engine, params, template_lines)
                try:
                    return run.train()
                finally:
                    run.target.close() if run.target is not None else None
        finally:
            engine.networks.restore_weights()
            state.end()


class _Run:
    def __init__(self, engine: "Engine", params: TrainParams, template_lines: list[str]):
        self.engine = engine
        self.params = params
        self.template_lines = template_lines
        self.target: Any = None

    def _log_dir(self) -> Path:
        base = self.engine.paths.resolve(self.params.log_directory or "textual_inversion")
        return base / datetime.date.today().isoformat() / self.target.name

    def train(self) -> TrainResult:
        p, engine = self.params, self.engine
        state = engine.state
        self.target = target = _make_target(engine, p)
        start = target.step
        if start >= p.steps:
            raise CreateError("steps", f"{target.name} is already at step {start}; raise max steps to train it further")
        try:
            schedule = parse_schedule(p.learn_rate, p.steps, start)
        except ScheduleError as e:
            raise CreateError("learn_rate", str(e)) from None
        clip = None
        if p.clip_grad_mode != "disabled":
            try:
                clip = parse_schedule(p.clip_grad_value, p.steps, start)
            except ScheduleError as e:
                raise CreateError("clip_grad_value", str(e)) from None
        opts = engine.options
        try:
            dataset = ds.TrainingDataset(
                p.data_root, encode=_vae_encoder(engine), width=p.training_width, height=p.training_height,
                varsize=p.varsize, latent_sampling_method=p.latent_sampling_method, use_weight=p.use_weight,
                batch_size=p.batch_size, seed=TRAIN_SEED, word_regex=str(opts.get("dataset_filename_word_regex") or ""),
                join_string=str(opts.get("dataset_filename_join_string") or " "),
                multiple=engine.model.vae_scale_factor,
                progress=lambda i, n: setattr(state, "textinfo", f"Preparing the dataset: {i}/{n} pictures"))
        except ds.DatasetError as e:
            raise CreateError("data_root", str(e)) from None

        log_dir = self._log_dir()
        result = TrainResult(step=start)
        if opts.get("save_training_settings_to_txt"):
            settings = {**dataclasses.asdict(p), "initial_step": start, "num_of_dataset_images": len(dataset),
                        "model_name": getattr(engine.checkpoint_info, "model_name", None),
                        "model_hash": getattr(engine.checkpoint_info, "shorthash", None)}
            log_dir.mkdir(parents=True, exist_ok=True)
            stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H-%M-%S")
            (log_dir / f"settings-{stamp}.json").write_text(json.dumps(settings, indent=4, default=str), encoding="utf-8")

        trainable = target.parameters()
        optimizer = torch.optim.AdamW(trainable, lr=schedule.value_at(start), weight_decay=target.weight_decay)
        saved_state = target.resume_state()
        if saved_state is not None:
            try:
                optimizer.load_state_dict(saved_state)
                log.info("Training %s: resumed the optimizer state from %s.optim", target.name, target.source)
            except (ValueError, KeyError) as e:
                log.warning("Training %s: the optimizer state does not fit (%s); starting it afresh", target.name, e)
        save_optim = bool(opts.get("save_optimizer_state"))
        alphas = alphas_cumprod_of(engine.model.scheduler_config)
        unet, prediction = engine.model.unet, engine.model.prediction_type
        csv_every = int(opts.get("training_write_csv_every") or 0)

        end = schedule.end_step
        state.job_count = max(1, end - start)
        state.job_no = 0
        t0 = time.perf_counter()
        step = start
        recent: list[float] = []
        while step < end:
            if state.interrupted:
                result.interrupted = True
                break
            lr = schedule.value_at(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            step_loss = 0.0
            prompts: list[str] = []
            for k in range(p.gradient_step):
                index = step * p.gradient_step + k
                items, latents, weights = dataset.batch(index)
                rng = np.random.default_rng(ds.step_seed(TRAIN_SEED, 4, index))
                prompts = [ds.make_prompt(self.template_lines, target.name, it.caption, shuffle_tags=p.shuffle_tags,
                                          tag_drop_out=float(p.tag_drop_out), rng=rng) for it in items]
                gen = torch.Generator().manual_seed(ds.step_seed(TRAIN_SEED, 5, index))
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(ds.step_seed(TRAIN_SEED, 6, index))  # the hypernetwork's dropout
                    cond = target.conditioning(prompts)
                    loss = diffusion_loss(unet, latents, cond, alphas, prediction, gen, weights) / p.gradient_step
                    loss.backward()
                step_loss += float(loss.detach())
            if clip is not None:
                if p.clip_grad_mode == "value":
                    torch.nn.utils.clip_grad_value_(trainable, clip.value_at(step))
                else:
                    torch.nn.utils.clip_grad_norm_(trainable, clip.value_at(step))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            target.step = step
            result.losses.append(step_loss)
            recent = (recent + [step_loss])[-32:]
            state.job_no = step - start
            epoch, within = dataset.epoch_of(step * p.gradient_step - 1)
            state.textinfo = (f"Loss: {np.mean(recent):.7f}, Step: {step}/{end}, Learning rate: {lr:g}, "
                              f"Epoch: {epoch} ({within + 1}/{dataset.batches_per_epoch}), "
                              f"Last prompt: {html.escape(prompts[0])}")
            if csv_every and step % csv_every == 0:
                self._write_csv(log_dir, step, epoch, within, float(np.mean(recent)), lr)
            if p.save_every and step % p.save_every == 0 and step < end:
                copy = log_dir / f"{target.kind}s" / f"{target.name}-{step}.pt"
                target.save(copy, step, optimizer if save_optim else None)
                result.copies.append(str(copy))
            if p.create_image_every and step % p.create_image_every == 0:
                preview = self._preview(step, prompts[0], log_dir, optimizer if save_optim else None)
                if preview is not None:
                    result.previews.append(str(preview))

        final = target.save(target.path, step, optimizer if save_optim else None)
        engine.networks.refresh(["embedding" if target.kind == "embedding" else "hypernet"])
        result.filename = str(final)
        result.step = step
        result.steps_done = step - start
        result.last_loss = result.losses[-1] if result.losses else None
        result.seconds = time.perf_counter() - t0
        kind = "Embedding" if target.kind == "embedding" else "Hypernetwork"
        result.message = (f"Training {'interrupted' if result.interrupted else 'finished'} at {step} steps.\n"
                          f"{kind} saved to {html.escape(str(final))}")
        state.textinfo = result.message
        return result

    def _write_csv(self, log_dir: Path, step: int, epoch: int, within: int, loss: float, lr: float) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        name = "textual_inversion_loss.csv" if self.target.kind == "embedding" else "hypernetwork_loss.csv"
        path = log_dir / name
        new = not path.exists()
        with path.open("a", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["step", "epoch", "epoch_step", "loss", "learn_rate"])
            writer.writerow([step, epoch, within + 1, f"{loss:.7f}", lr])

    def _preview(self, step: int, batch_prompt: str, log_dir: Path, optimizer: Any) -> Path | None:
        """A picture with the weights as they are now: the file is saved first (the generation reads it, as a
        user's would), then the Engine generates inside this job's turn."""
        from modules.core.request import GenerationRequest

        p, engine, target = self.params, self.engine, self.target
        target.save(target.path, step, optimizer)
        engine.networks.refresh(["embedding" if target.kind == "embedding" else "hypernet"])
        if p.preview_from_txt2img:
            req = GenerationRequest(
                prompt=target.preview_prompt(p.preview_prompt), negative_prompt=p.preview_negative_prompt,
                steps=p.preview_steps, sampler_name=p.preview_sampler_name, cfg_scale=p.preview_cfg_scale,
                seed=p.preview_seed, width=p.preview_width, height=p.preview_height)
        else:
            req = GenerationRequest(prompt=target.preview_prompt(batch_prompt), steps=20, sampler_name="Euler a",
                                    cfg_scale=7.0, seed=-1, width=p.training_width, height=p.training_height)
        req.do_not_save_samples = req.do_not_save_grid = True
        state = engine.state
        textinfo, job_no, job_count = state.textinfo, state.job_no, state.job_count
        try:
            processed = engine.generate(req)
        finally:
            engine.networks.restore_weights()
            target.after_preview()
            target.train_mode()
            state.textinfo, state.job_no, state.job_count = textinfo, job_no, job_count
        if not processed.images:
            return None  # interrupted during the preview: the training stops at its next step
        image = processed.images[0]
        infotext = processed.infotexts[0] if getattr(processed, "infotexts", None) else ""
        out_dir = log_dir / "images"
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{target.name}-{step}.png"
        texts = {"parameters": infotext} if infotext else {}
        if target.kind == "embedding" and p.save_image_with_stored_embedding:
            texts["sd-ti-embedding"] = target.png_chunk(step)  # the picture is a loadable embedding too
        _save_png(image, path, texts)
        state.current_preview = image
        state.current_preview_step = step
        return path


def _save_png(image: Any, path: Path, texts: dict[str, str]) -> None:
    import io

    from PIL import PngImagePlugin

    from modules.core.fileio import atomic_write_bytes

    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    atomic_write_bytes(path, buffer.getvalue())
