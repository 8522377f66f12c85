"""The generation pipeline: a GenerationRequest in, images and infotexts out, with A1111's semantics.

Seeds, prompt schedules and AND, extra-network tags, txt2img / img2img / inpainting, hires fix, saving with
infotext. The Engine runs :func:`generate` inside its job (queue turn, overrides, loaded model); the layers
above take part only through :class:`~modules.engine.hooks.GenerationHooks`, called at A1111's points.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image, ImageOps
from tqdm import tqdm

from modules.core import image_files, img2img_ops, infotext, masking, samplers
from modules.engine import refiner as refiners
from modules.engine import rng
from modules.core.prompt_comments import strip_comments
from modules.core.request import GenerationRequest, Processed, RequestError
from modules.engine.hooks import (NO_HOOKS, GenerationHooks, MaskBlendArgs, PostProcessMaskOverlayArgs,
                                  SamplingCallbacks)
from modules.engine.job_state import GenerationInterrupted
from modules.models import upscalers
from modules.models.checkpoint_detect import SDXL_FAMILIES
from modules.networks import extra_networks
from modules.settings import output_paths

if TYPE_CHECKING:
    from modules.engine.engine import Engine

APP_VERSION = "sd-webui-diffusers 0.1.0"


@dataclass
class Batch:
    """What one sampler run (one n_iter step) works on; hooks may change the lists before it runs."""

    index: int
    prompts: list[str]  # with tags, as the infotext keeps them
    negative_prompts: list[str]
    seeds: list[int]
    subseeds: list[int]
    cond_prompts: list[str] = field(default_factory=list)  # tags stripped, for conditioning


@dataclass
class Plan:
    """Everything resolved from the request before the first step runs."""

    request: GenerationRequest
    sampler: samplers.SamplerInfo
    schedule: samplers.ScheduleInfo
    schedule_label: str
    clip_skip: int
    all_prompts: list[str]  # with tags, as the infotext keeps them
    all_negative_prompts: list[str]
    cond_prompts: list[str]  # tags stripped
    all_seeds: list[int]
    all_subseeds: list[int]
    seed: int
    subseed: int
    extra_params: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    network_data: dict = field(default_factory=dict)
    used_embeddings: dict[str, Any] = field(default_factory=dict)  # found while conditioning, for "TI hashes"
    late_params: dict[str, Any] = field(default_factory=dict)  # infotext keys A1111 writes after the networks'
    hooks: GenerationHooks = NO_HOOKS
    sampling_callbacks: SamplingCallbacks | None = None  # per-step denoiser callbacks of this run, or None
    refiner: refiners.Refiner | None = None
    # what was loaded when the job began: the infotext names it even when a refiner is loaded at the end
    checkpoint: Any = None
    vae_info: dict | None = None


def generate(engine: "Engine", req: GenerationRequest, hooks: GenerationHooks = NO_HOOKS) -> Processed:
    """Generate what ``req`` asks for; the caller holds the engine's job (``Engine.generate``)."""
    plan = _plan(engine, req)
    plan.hooks = hooks
    plan.sampling_callbacks = hooks.sampling_callbacks()
    hooks.begin(plan)  # may change plan.all_prompts / all_seeds / extra params
    engine.networks.refresh(["embedding"])  # embedding files added or changed since the last generation
    plan.late_params.update(req.extra_generation_params)
    try:
        processed = _generate(engine, plan)
    finally:
        refiners.restore_main(engine, plan)
        engine.after_generation()
    hooks.finish(plan, processed)
    return processed


def _generate(engine: "Engine", plan: Plan) -> Processed:
    req, hooks, opts = plan.request, plan.hooks, engine.options
    images: list[Image.Image] = []
    infotexts: list[str] = []
    done: list[int] = []  # index into all_* of each returned image (skipped batches leave gaps)
    saved: list[str] = []
    interrupted = False
    active_networks: Any = None
    batch_size = req.batch_size
    total = len(plan.all_prompts)
    for n in range(req.n_iter):
        lo, hi = n * batch_size, min((n + 1) * batch_size, total)
        if lo >= hi:
            break
        if engine.state.interrupted:  # A1111: an interrupt ends the run after the batch it cut short
            interrupted = True
            break
        refiners.restore_main(engine, plan)  # A1111 reloads the main model before every batch
        batch = Batch(n, list(plan.all_prompts[lo:hi]), list(plan.all_negative_prompts[lo:hi]),
                      list(plan.all_seeds[lo:hi]), list(plan.all_subseeds[lo:hi]))
        hooks.before_batch(plan, batch)
        # The first prompt's tags decide the batch's networks (A1111): re-activate only when they change.
        batch.cond_prompts, network_data = extra_networks.parse_prompts(batch.prompts)
        plan.cond_prompts[lo:hi] = batch.cond_prompts
        if not req.disable_extra_networks and network_data != active_networks:
            for warning in engine.extra_networks.activate(engine, network_data) or []:
                if warning not in plan.warnings:
                    plan.warnings.append(warning)
            active_networks = plan.network_data = network_data
        hooks.networks_activated(plan, batch, network_data)
        try:
            batch_images = _run_batch(engine, plan, batch)
        except GenerationInterrupted as exc:
            if exc.skipped:
                engine.state.next_job()
                continue
            interrupted = True
            break
        batch_images = hooks.batch_done(plan, batch, batch_images)
        for i, image in enumerate(batch_images):
            index = min(lo + i, total - 1)
            image = hooks.image_done(plan, batch, i, image)
            text = create_infotext(engine, plan, index)
            image.info["parameters"] = text
            images.append(image)
            infotexts.append(text)
            done.append(index)
            engine.state.add_result(image, text)
            if opts.get("samples_save") and not req.do_not_save_samples:
                saved.append(str(_save(engine, image, plan, index, text, grid=False)))
        engine.state.next_job()

    interrupted = interrupted or engine.state.interrupted
    grid_saved = None
    if len(images) > 1 and opts.get("grid_save") and not req.do_not_save_grid:
        grid = image_files.image_grid(images)
        grid_saved = _save(engine, grid, plan, 0, create_infotext(engine, plan, 0), grid=True)
    if infotexts and engine.paths.params_txt is not None:
        image_files.write_params_txt(engine.paths.params_txt, infotexts[0])

    processed = Processed(
        images=images,
        infotexts=infotexts,
        seeds=[plan.all_seeds[i] for i in done],
        subseeds=[plan.all_subseeds[i] for i in done],
        prompts=[plan.all_prompts[i] for i in done],
        negative_prompts=[plan.all_negative_prompts[i] for i in done],
        request=req,
        seed=plan.seed,
        subseed=plan.subseed,
        info={},
        warnings=plan.warnings,
        saved_paths=saved + ([str(grid_saved)] if grid_saved else []),
        interrupted=interrupted,
    )
    processed.info = processed_js(engine, plan, processed)
    return processed


# --- planning --------------------------------------------------------------------------

def _plan(engine: "Engine", req: GenerationRequest) -> Plan:
    opts = engine.options
    try:
        sampler, schedule = samplers.resolve_sampler(req.sampler_name, req.scheduler)
    except ValueError as exc:
        raise RequestError("sampler_name", str(exc)) from exc
    if req.enable_hr and not req.is_img2img:
        for name in ("hr_sampler_name",):
            value = getattr(req, name)
            if value and value != "Use same sampler":
                try:
                    samplers.resolve_sampler(value, req.hr_scheduler if req.hr_scheduler not in (None, "Use same scheduler") else None)
                except ValueError as exc:
                    raise RequestError(name, str(exc)) from exc
        if req.hr_upscaler and not engine.upscalers.exists(req.hr_upscaler):
            raise RequestError("hr_upscaler", f"unknown upscaler {req.hr_upscaler!r}; choose one of {', '.join(engine.upscalers.hr_choices())}")

    # A list prompt / negative prompt (A1111 scripts set them) gives the number of images; otherwise
    # n_iter * batch_size copies of the one prompt.
    total = req.n_iter * req.batch_size
    for value in (req.prompt, req.negative_prompt):
        if isinstance(value, (list, tuple)):
            total = len(value)
            break
    all_seeds, seed = _seed_list(req.seed, total, increment=req.subseed_strength == 0)
    all_subseeds, subseed = _seed_list(req.subseed, total, increment=True)

    add_networks = not req.disable_extra_networks
    prepared: dict[tuple[str, bool], str] = {}  # one prompt text is styled once, however many images use it

    def prepare(text: str, negative: bool) -> str:
        key = (text, negative)
        if key not in prepared:
            out = (engine.styles.apply_negative_styles_to_prompt if negative else engine.styles.apply_styles_to_prompt)(
                text, req.styles)
            if opts.get("enable_prompt_comments"):
                out = strip_comments(out)
            if add_networks and not negative:
                out = extra_networks.add_default_networks(
                    out, opts.get("sd_lora"), opts.get("sd_hypernetwork"),
                    float(opts.get("extra_networks_default_multiplier") or 1.0))
            prepared[key] = out
        return prepared[key]

    all_prompts = [prepare(t, False) for t in _text_list(req.prompt, total)]
    all_negative = [prepare(t, True) for t in _text_list(req.negative_prompt, total)]
    prompt, negative = (all_prompts[0], all_negative[0]) if total else ("", "")
    cond_prompts, network_data = extra_networks.parse_prompts(all_prompts)

    clip_skip = int(req.clip_skip or opts.get("CLIP_stop_at_last_layers") or 1)
    plan = Plan(
        request=req,
        sampler=sampler,
        schedule=schedule,
        schedule_label=samplers.infotext_schedule_label(sampler, schedule),
        clip_skip=clip_skip,
        all_prompts=all_prompts,
        all_negative_prompts=all_negative,
        cond_prompts=cond_prompts,
        all_seeds=all_seeds,
        all_subseeds=all_subseeds,
        seed=seed,
        subseed=subseed,
        network_data=network_data,
        refiner=refiners.resolve(engine, req),
        checkpoint=engine.checkpoint_info,
        vae_info=engine.vae_info,
    )
    emphasis = opts.get("emphasis")
    if emphasis != "Original" and any(c in prompt + negative for c in "(["):
        plan.late_params["Emphasis"] = emphasis
    if opts.get("use_old_scheduling"):
        plan.late_params["Old prompt editing timelines"] = True
    if req.enable_hr and not req.is_img2img:
        _hires_infotext(plan, req)
    return plan


def _text_list(value: Any, total: int) -> list[str]:
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value] or [""]
        return [items[i % len(items)] for i in range(total)]
    return [value or ""] * total


def _seed_list(value: Any, total: int, *, increment: bool) -> tuple[list[int], int]:
    """(a seed per image, the first seed): a list gives each image its own (-1 entries drawn at random)."""
    if isinstance(value, (list, tuple)):
        seeds = [rng.fix_seed(int(v)) for v in value] or [rng.fix_seed(-1)]
        return [seeds[i % len(seeds)] for i in range(total)], seeds[0]
    seed = rng.fix_seed(value)
    return [seed + (i if increment else 0) for i in range(total)], seed


def _hires_infotext(plan: Plan, req: GenerationRequest) -> None:
    p = plan.extra_params
    if req.hr_resize_x == 0 and req.hr_resize_y == 0:
        p["Hires upscale"] = req.hr_scale
    else:
        p["Hires resize"] = f"{req.hr_resize_x}x{req.hr_resize_y}"
    if req.hr_second_pass_steps:
        p["Hires steps"] = req.hr_second_pass_steps
    p["Hires upscaler"] = req.hr_upscaler or "Latent"
    if req.hr_sampler_name and req.hr_sampler_name not in ("Use same sampler", plan.sampler.name):
        p["Hires sampler"] = req.hr_sampler_name
    if req.hr_scheduler and req.hr_scheduler not in ("Use same scheduler", plan.schedule.label):
        p["Hires schedule type"] = req.hr_scheduler
    if req.hr_prompt and req.hr_prompt != req.prompt:
        p["Hires prompt"] = req.hr_prompt
    if req.hr_negative_prompt and req.hr_negative_prompt != req.negative_prompt:
        p["Hires negative prompt"] = req.hr_negative_prompt


# --- one batch -------------------------------------------------------------------------

def _run_batch(engine: "Engine", plan: Plan, batch: Batch) -> list[Image.Image]:
    """The images of one batch. Interrupt or Skip during sampling end the pass early: the partly denoised
    latent (the last conditional x0 prediction) is decoded and returned, as A1111 does."""
    req = plan.request
    model = engine.model
    assert model is not None
    width, height = req.width, req.height

    with engine.tiling(req.tiling):
        if req.is_img2img:
            init = _prepare_img2img(engine, plan, batch)
            latents = plan.hooks.post_sample(plan, batch, _img2img_sample(engine, plan, batch, init))
            images = engine.decode(latents)
            return [_finish_img2img(plan, img, init, i) for i, img in enumerate(images)]

        inpaint = engine.blank_inpaint_cond(len(batch.seeds), height, width) if model.is_inpainting else None
        run = _prepare_pass(engine, plan, batch, plan.sampler, plan.schedule, width, height, steps=req.steps,
                            inpaint_cond=inpaint)
        latents = _sample(engine, plan, run, lambda s: s.sample(run.noise, req.steps),
                          f"Sampling ({plan.sampler.name})")
        if req.enable_hr and not engine.state.interrupted:
            plan.hooks.before_hires(plan)
            latents = _hires_pass(engine, plan, batch, latents)
        return engine.decode(plan.hooks.post_sample(plan, batch, latents))


@dataclass
class SamplerPass:
    """One sampler pass, set up once for txt2img, img2img and the hires fix alike."""

    sampler: Any  # modules.engine.sampling.Sampler
    noise: torch.Tensor  # the seeds' initial noise (A1111's first p.rng.next())
    rng: rng.ImageRNG


def _prepare_pass(engine: "Engine", plan: Plan, batch: Batch, sampler_info: samplers.SamplerInfo,
                  schedule: samplers.ScheduleInfo, width: int, height: int, *, steps: int,
                  hires_steps: int | None = None, inpaint_cond: torch.Tensor | None = None) -> SamplerPass:
    """Noise, conditioning, denoiser and sampler for one pass over ``batch`` at ``width`` x ``height``."""
    from modules.core.sampling.discrete import alphas_cumprod
    from modules.engine.denoiser import CFGDenoiser
    from modules.engine.sampling import Sampler, SamplerSettings, make_inner

    req = plan.request
    model = engine.model
    noise_rng = _make_rng(engine, plan, batch, (model.latent_channels, height // 8, width // 8))
    noise = noise_rng.first()
    conds = engine.conditioning(plan, batch, steps=req.steps, hires_steps=hires_steps, sampler=sampler_info,
                                width=width, height=height)
    inputs = engine.sampling_inputs(conds, req.cfg_scale, width, height, len(batch.seeds))
    inputs.inpaint_cond = inpaint_cond
    inputs.callbacks = plan.sampling_callbacks
    opts = engine.options
    settings = SamplerSettings.from_options(opts.get, eta=req.eta, sdxl=model.family in SDXL_FAMILIES)
    inner = make_inner(sampler_info, model.unet, alphas_cumprod(model.scheduler_config).to(noise.device),
                       model.prediction_type)
    cfg = CFGDenoiser(inner, inputs, options=settings.cfg, timesteps=sampler_info.kind == "timesteps",
                      check=engine.state.check)
    p = plan.hooks.processing()
    cfg.p = p
    sampler = Sampler(sampler_info, schedule, cfg, settings, noise_stream=noise_rng, seeds=batch.seeds)
    refiners.attach(engine, plan, batch, cfg, sampler, sampler_info, width=width, height=height, hires_steps=hires_steps)
    if p is not None:
        p.sampler = sampler  # scripts read p.sampler during the run, as in A1111
    return SamplerPass(sampler, noise, noise_rng)


def _sample(engine: "Engine", plan: Plan, run: SamplerPass, start: Any, desc: str) -> torch.Tensor:
    """Run ``start(sampler)`` with progress, live preview and the infotext entries the sampler adds."""
    state = engine.state
    every = int(engine.options.get("show_progress_every_n_steps") or 0)
    live = bool(engine.options.get("live_previews_enable")) and every > 0
    with tqdm(desc=desc, disable=not engine.options.get("show_progressbar"), leave=False) as bar:
        def on_step(step: int, total: int, preview: torch.Tensor | None) -> None:
            state.set_step(step, total)
            bar.total = total
            bar.update(1)
            if live and preview is not None and (step % every == 0 or step == total):
                state.current_preview = engine.preview_image(preview[0])
                state.current_preview_step = step

        run.sampler.on_step = on_step
        state.set_step(0, 0)
        latents = start(run.sampler)
    plan.extra_params.update(run.sampler.extra_generation_params)
    plan.extra_params.update(run.sampler.model_wrap_cfg.extra_generation_params)
    return latents


def _make_rng(engine: "Engine", plan: Plan, batch: Batch, shape: tuple[int, ...]) -> rng.ImageRNG:
    req = plan.request
    return rng.ImageRNG(
        shape=shape,
        seeds=batch.seeds,
        subseeds=batch.subseeds,
        subseed_strength=req.subseed_strength,
        seed_resize_from_h=req.seed_resize_from_h,
        seed_resize_from_w=req.seed_resize_from_w,
        source=engine.options.get("randn_source"),
        device=engine.devices.device,
        # A1111 re-seeds the step-noise generators with seed + ENSD for every sampler (the infotext names it only
        # for the samplers that use it).
        eta_noise_seed_delta=int(engine.options.get("eta_noise_seed_delta") or 0),
    )


# --- hires fix -------------------------------------------------------------------------

def hires_target_size(req: GenerationRequest) -> tuple[int, int, int, int]:
    """(upscale_w, upscale_h, final_w, final_h) as A1111 computes them."""
    if req.hr_resize_x == 0 and req.hr_resize_y == 0:
        w, h = int(req.width * req.hr_scale), int(req.height * req.hr_scale)
        return w, h, w, h
    if req.hr_resize_y == 0:
        w = req.hr_resize_x
        h = req.hr_resize_x * req.height // req.width
        return w, h, w, h
    if req.hr_resize_x == 0:
        h = req.hr_resize_y
        w = req.hr_resize_y * req.width // req.height
        return w, h, w, h
    src_ratio = req.width / req.height
    dst_ratio = req.hr_resize_x / req.hr_resize_y
    if src_ratio < dst_ratio:
        w, h = req.hr_resize_x, req.hr_resize_x * req.height // req.width
    else:
        w, h = req.hr_resize_y * req.width // req.height, req.hr_resize_y
    return w, h, req.hr_resize_x, req.hr_resize_y


def _hires_pass(engine: "Engine", plan: Plan, batch: Batch, latents: torch.Tensor) -> torch.Tensor:
    req = plan.request
    model = engine.model
    up_w, up_h, final_w, final_h = hires_target_size(req)
    up_w, up_h = up_w // 8 * 8, up_h // 8 * 8
    final_w, final_h = final_w // 8 * 8, final_h // 8 * 8
    upscaler = req.hr_upscaler or "Latent"
    if upscaler.startswith("Latent"):
        latents = upscalers.upscale_latent(latents, upscaler, up_w, up_h)
    else:
        images = engine.decode(latents)
        images = [engine.upscalers.upscale_to(img, upscaler, up_w, up_h) for img in images]
        latents = engine.encode(images)
    if (up_w, up_h) != (final_w, final_h):
        # Both resize fields given with another aspect: crop the centre as A1111 does.
        top, left = (up_h - final_h) // 16, (up_w - final_w) // 16
        latents = latents[:, :, top:top + final_h // 8, left:left + final_w // 8]

    sampler, schedule = plan.sampler, plan.schedule
    if req.hr_sampler_name and req.hr_sampler_name != "Use same sampler":
        # A1111: no hires schedule type means the first pass's (p.hr_scheduler = p.scheduler)
        hr_sched = req.scheduler if req.hr_scheduler in (None, "Use same scheduler") else req.hr_scheduler
        sampler, schedule = samplers.resolve_sampler(req.hr_sampler_name, hr_sched)
    elif req.hr_scheduler and req.hr_scheduler != "Use same scheduler":
        sampler, schedule = samplers.resolve_sampler(plan.sampler.name, req.hr_scheduler)
    steps = req.hr_second_pass_steps or req.steps
    hr_batch = batch
    if req.hr_prompt or req.hr_negative_prompt:
        hr_prompts, _ = extra_networks.parse_prompts([req.hr_prompt or p for p in plan.all_prompts[: len(batch.seeds)]])
        hr_neg = [req.hr_negative_prompt or n for n in batch.negative_prompts]
        hr_batch = Batch(batch.index, hr_prompts, hr_neg, batch.seeds, batch.subseeds, cond_prompts=hr_prompts)
    refiners.restore_main(engine, plan)  # A1111 reloads the main (or hires) checkpoint for the second pass
    model = engine.model
    inpaint = engine.blank_inpaint_cond(len(batch.seeds), final_h, final_w) if model.is_inpainting else None
    run = _prepare_pass(engine, plan, hr_batch, sampler, schedule, final_w, final_h, steps=req.steps,
                        hires_steps=steps, inpaint_cond=inpaint)
    # A1111 passes the hires steps explicitly, so the pass always does exactly that many steps.
    return _sample(engine, plan, run, lambda s: s.sample_img2img(latents, run.noise, steps, req.denoising_strength,
                                                                 fix_steps=True), "Hires fix")


# --- img2img / inpainting ----------------------------------------------------------------

@dataclass
class Img2ImgInit:
    images: list[Image.Image]  # RGB images to encode, one per batch row
    mask: Image.Image | None  # processing-size L mask, white = regenerate
    overlays: list[Image.Image | None]
    paste_to: tuple[int, int, int, int] | None


def _prepare_img2img(engine: "Engine", plan: Plan, batch: Batch) -> Img2ImgInit:
    req = plan.request
    width, height = req.width, req.height
    n = len(batch.seeds)
    sources = [req.init_images[(batch.index * req.batch_size + i) % len(req.init_images)] for i in range(n)]
    if req.mask is None:
        images = [img2img_ops.flatten(img) for img in sources]
        if req.resize_mode != 3:
            images = [img2img_ops.resize_image(req.resize_mode, img, width, height) for img in images]
        return Img2ImgInit([img.convert("RGB") for img in images], None, [None] * n, None)
    prepared = [
        masking.prepare_inpaint(
            img, req.mask, width=width, height=height, resize_mode=req.resize_mode,
            mask_blur_x=req.mask_blur_x, mask_blur_y=req.mask_blur_y, invert=bool(req.inpainting_mask_invert),
            inpainting_fill=req.inpainting_fill, inpaint_full_res=req.inpaint_full_res,
            inpaint_full_res_padding=req.inpaint_full_res_padding, round_mask=req.mask_round,
        )
        for img in sources
    ]
    first = prepared[0]
    for key, value in first.extra_params.items():
        plan.extra_params.setdefault(key, value)
    if first.comment and first.comment not in plan.warnings:
        plan.warnings.append(first.comment)
    return Img2ImgInit([p.image.convert("RGB") for p in prepared], first.latent_mask, [p.overlay for p in prepared], first.paste_to)


def _img2img_sample(engine: "Engine", plan: Plan, batch: Batch, init: Img2ImgInit) -> torch.Tensor:
    req = plan.request
    model = engine.model
    device = engine.devices.device
    width, height = req.width, req.height
    init_latents = engine.encode(init.images)
    if init_latents.shape[-2:] != (height // 8, width // 8):  # "Just resize (latent upscale)"
        init_latents = upscalers.upscale_latent(init_latents, "Latent", width, height)
    inpaint = engine.inpaint_cond(init.images, init.mask) if model.is_inpainting else None
    run = _prepare_pass(engine, plan, batch, plan.sampler, plan.schedule, width, height, steps=req.steps,
                        inpaint_cond=inpaint)
    latent_mask = None
    if init.mask is not None:
        latent_mask = masking.mask_to_latent(init.mask, height // 8, width // 8, round=req.mask_round)
        latent_mask = latent_mask.to(device, torch.float32)
        latent_mask = latent_mask.expand(init_latents.shape[0], 1, -1, -1)
        # "latent noise" fills with the seeds' own noise, drawn from fresh generators as A1111 does
        fill_noise = _make_rng(engine, plan, batch, tuple(init_latents.shape[1:])).first()
        init_latents = masking.fill_latent(init_latents, latent_mask, req.inpainting_fill, fill_noise)
        # A1111 blends under the mask for every model, 9-channel inpainting models included
        cfg = run.sampler.model_wrap_cfg
        cfg.nmask = latent_mask.expand_as(init_latents)
        cfg.mask = 1.0 - cfg.nmask
        cfg.on_mask_blend = plan.hooks.mask_blend()
    multiplier = req.initial_noise_multiplier if req.initial_noise_multiplier is not None else float(engine.options.get("initial_noise_multiplier") or 1.0)
    noise = plan.hooks.img2img_noise(plan, batch, init_latents, run.noise, run.sampler)
    if multiplier != 1.0 and noise is run.noise:
        plan.extra_params["Noise multiplier"] = multiplier
        noise = noise * multiplier
    latents = _sample(engine, plan, run, lambda s: s.sample_img2img(init_latents, noise, req.steps, req.denoising_strength),
                      f"img2img ({plan.sampler.name})")
    cfg = run.sampler.model_wrap_cfg
    p = plan.hooks.processing()
    if p is not None:  # what A1111's inpainting scripts read from p after sampling
        p.init_latent, p.nmask, p.paste_to = init_latents, cfg.nmask, init.paste_to
    if cfg.mask is not None:
        blend = MaskBlendArgs(latents, cfg.nmask, init_latents, cfg.mask, latents * cfg.nmask + init_latents * cfg.mask)
        if cfg.on_mask_blend is not None:
            cfg.on_mask_blend(blend)  # the final blend (no denoiser): soft inpainting keeps the sampled latent
        latents = blend.blended_latent
    return latents


def _finish_img2img(plan: Plan, image: Image.Image, init: Img2ImgInit, i: int) -> Image.Image:
    if init.overlays[i] is None:
        return image
    overlay = init.overlays[i]
    args = PostProcessMaskOverlayArgs(i, ImageOps.invert(overlay.getchannel("A")), overlay)
    plan.hooks.mask_overlay(plan, args)
    return masking.apply_overlay(image, init.paste_to, args.overlay_image)


# --- infotext and files ----------------------------------------------------------------

def create_infotext(engine: "Engine", plan: Plan, index: int) -> str:
    req = plan.request
    opts = engine.options
    ckpt = plan.checkpoint or engine.checkpoint_info
    vae = plan.vae_info if plan.checkpoint is not None else engine.vae_info
    uses_denoising = req.is_img2img or req.enable_hr
    fields: dict[str, Any] = {
        "Steps": req.steps,
        "Sampler": plan.sampler.name,
        "Schedule type": plan.schedule_label,
        "CFG scale": req.cfg_scale,
        "Seed": plan.all_seeds[index],
        "Size": f"{req.width}x{req.height}",
        "Model hash": ckpt.shorthash if ckpt is not None and opts.get("add_model_hash_to_info") else None,
        "Model": ckpt.name_for_extra if ckpt is not None and opts.get("add_model_name_to_info") else None,
        "VAE hash": vae.get("hash") if vae and opts.get("add_vae_hash_to_info") else None,
        "VAE": vae.get("name") if vae and opts.get("add_vae_name_to_info") else None,
        "Variation seed": plan.all_subseeds[index] if req.subseed_strength != 0 else None,
        "Variation seed strength": req.subseed_strength if req.subseed_strength != 0 else None,
        "Seed resize from": f"{req.seed_resize_from_w}x{req.seed_resize_from_h}" if req.seed_resize_from_w > 0 and req.seed_resize_from_h > 0 else None,
        "Denoising strength": req.denoising_strength if uses_denoising else None,
        "Clip skip": plan.clip_skip if plan.clip_skip > 1 else None,
        "ENSD": opts.get("eta_noise_seed_delta") if opts.get("eta_noise_seed_delta") and plan.sampler.uses_ensd else None,
        "RNG": opts.get("randn_source") if opts.get("randn_source") != "GPU" else None,
        "Tiling": "True" if req.tiling else None,
        "Version": APP_VERSION if opts.get("add_version_to_infotext") else None,
    }
    # Scripts may add to extra_generation_params until the image is done (process_batch, postprocess_image).
    extra = {**plan.extra_params, **engine.network_infotext_params(plan.used_embeddings.values()), **plan.late_params,
             **req.extra_generation_params}
    params = infotext.build_generation_params(fields, extra)
    return infotext.create_infotext(plan.all_prompts[index], plan.all_negative_prompts[index], params)


def _filename_tags(engine: "Engine", plan: Plan, index: int) -> dict[str, Any]:
    req, opts, ckpt = plan.request, engine.options, plan.checkpoint or engine.checkpoint_info
    return output_paths.filename_tags(
        seed=plan.all_seeds[index], prompt=plan.all_prompts[index], negative_prompt=plan.all_negative_prompts[index],
        steps=req.steps, cfg_scale=req.cfg_scale, width=req.width, height=req.height, sampler=plan.sampler.name,
        scheduler=plan.schedule_label, model_name=getattr(ckpt, "model_name", None),
        model_hash=getattr(ckpt, "shorthash", None), styles=list(req.styles), clip_skip=plan.clip_skip,
        denoising=req.denoising_strength if req.is_img2img or req.enable_hr else None,
        batch_number=index % req.batch_size, generation_number=index, job_timestamp=engine.state.job_timestamp,
        max_prompt_words=int(opts.get("directories_max_prompt_words") or 8))


def _save(engine: "Engine", image: Image.Image, plan: Plan, index: int, text: str, *, grid: bool) -> Any:
    req = plan.request
    opts = engine.options
    directory, pattern = output_paths.save_location(engine.options, engine.paths, is_img2img=req.is_img2img,
                                                    grid=grid,
                                                    tags=_filename_tags(engine, plan, index))
    return image_files.save_image(
        image,
        directory,
        seed=plan.all_seeds[index],
        tags=_filename_tags(engine, plan, index),
        infotext=text if opts.get("enable_pnginfo") else None,
        extension=opts.get("grid_format" if grid else "samples_format") or "png",
        jpeg_quality=int(opts.get("jpeg_quality") or 80),
        webp_lossless=bool(opts.get("webp_lossless")),
        save_txt=bool(opts.get("save_txt")) and not grid,
        basename_prefix="grid" if grid else "",
        basename_pattern=pattern,
        callbacks=plan.hooks.save_callbacks(),
        p=plan.hooks.processing(),
    )


def processed_js(engine: "Engine", plan: Plan, processed: Processed) -> dict[str, Any]:
    req = plan.request
    ckpt = plan.checkpoint or engine.checkpoint_info
    vae = (plan.vae_info if plan.checkpoint is not None else engine.vae_info) or {}
    return {
        "prompt": plan.all_prompts[0] if plan.all_prompts else req.prompt,
        "all_prompts": processed.prompts,
        "negative_prompt": plan.all_negative_prompts[0] if plan.all_negative_prompts else req.negative_prompt,
        "all_negative_prompts": processed.negative_prompts,
        "seed": plan.seed,
        "all_seeds": processed.seeds,
        "subseed": plan.subseed,
        "all_subseeds": processed.subseeds,
        "subseed_strength": req.subseed_strength,
        "width": req.width,
        "height": req.height,
        "sampler_name": plan.sampler.name,
        "cfg_scale": req.cfg_scale,
        "steps": req.steps,
        "batch_size": req.batch_size,
        "restore_faces": False,
        "face_restoration_model": None,
        "sd_model_name": ckpt.name_for_extra if ckpt else None,
        "sd_model_hash": ckpt.shorthash if ckpt else None,
        "sd_vae_name": vae.get("name"),
        "sd_vae_hash": vae.get("hash"),
        "seed_resize_from_w": req.seed_resize_from_w,
        "seed_resize_from_h": req.seed_resize_from_h,
        "denoising_strength": req.denoising_strength,
        "extra_generation_params": {k: v for k, v in plan.extra_params.items() if isinstance(v, (str, int, float, bool))},
        "index_of_first_image": processed.index_of_first_image,
        "infotexts": processed.infotexts,
        "styles": list(req.styles),
        "job_timestamp": engine.state.job_timestamp,
        "clip_skip": plan.clip_skip,
        "is_using_inpainting_conditioning": bool(engine.model and engine.model.is_inpainting),
        "version": APP_VERSION,
        "warnings": processed.warnings,
    }
