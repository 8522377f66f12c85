"""The refiner (A1111 1.6+): part-way through sampling, go on with another checkpoint.

A1111 checks at every denoiser call (``sd_samplers_common.apply_refiner``) how much of the schedule is done: by the
model timestep the current σ is nearest to, ``(999 − t) / 1000``, or, with the setting
``refiner_switch_by_sample_steps``, by denoiser calls. Once that reaches ``refiner_switch_at`` it loads the refiner,
computes the conditioning again with the refiner's text encoders and goes on with the same latent and sampler state;
the picture is decoded by the model loaded then (the refiner's VAE). The main model is kept aside meanwhile (in CPU
memory) and put back without reading its file again. With hires fix, the setting
``hires_fix_refiner_pass`` picks the pass(es). Each batch and the hires pass start on the main model again, and so
does the next job. A refiner that is the model already loaded does nothing, and writes nothing to the infotext.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from modules.core.request import RequestError

if TYPE_CHECKING:
    from modules.engine.denoiser import CFGDenoiser
    from modules.engine.engine import Engine
    from modules.engine.pipeline import Batch, Plan

log = logging.getLogger(__name__)

NO_REFINER = (None, "", "None", "none")


@dataclass
class Refiner:
    info: Any  # CheckpointInfo of the refiner
    switch_at: float | None  # None: at the first denoiser call, as A1111 does when the API leaves it out
    main: Any  # CheckpointInfo of the model the job started on
    parked: Any = None  # the main model, kept while the refiner runs (Engine.park_for_job)


def resolve(engine: "Engine", request: Any) -> Refiner | None:
    """The request's refiner, or None; an unknown checkpoint is the request's error (A1111 raises too)."""
    from modules.engine.engine import ModelLoadError

    name = request.refiner_checkpoint
    if name in NO_REFINER:
        return None
    try:
        info = engine.resolve_checkpoint(str(name))
    except ModelLoadError as exc:
        raise RequestError("refiner_checkpoint", str(exc)) from None
    return Refiner(info, request.refiner_switch_at, engine.checkpoint_info)


def _is_loaded(engine: "Engine", info: Any) -> bool:
    current = engine.checkpoint_info
    return current is not None and engine.model is not None and Path(current.filename) == Path(info.filename)


def completed_ratio(cfg: "CFGDenoiser", sigma: torch.Tensor, by_steps: bool) -> float:
    """How much of the schedule is done at this denoiser call, as A1111 measures it."""
    if by_steps:
        return cfg.step / cfg.total_steps if cfg.total_steps else 0.0
    current = float(sigma.max())
    sigmas = getattr(cfg.inner_model, "sigmas", None)
    if sigmas is None:  # DDIM, PLMS, UniPC: the denoiser gets the timestep itself
        timestep = int(current)
    else:
        timestep = int(torch.argmin((sigmas.detach().float().cpu() - current).abs()))
    return (999 - timestep) / 1000


def _reactivate_networks(engine: "Engine", plan: "Plan") -> None:
    """A freshly loaded model holds no adapter: apply the batch's extra networks to it (their warnings were given)."""
    if plan.network_data and not plan.request.disable_extra_networks:
        engine.extra_networks.activate(engine, plan.network_data)


def restore_main(engine: "Engine", plan: "Plan") -> None:
    """Back on the model the job started on (before a batch, before the hires pass, after the job)."""
    refiner = plan.refiner
    if refiner is None or refiner.main is None or _is_loaded(engine, refiner.main):
        if refiner is not None:
            refiner.parked = None
        return
    parked, refiner.parked = refiner.parked, None
    if parked is not None:
        engine.unpark(parked)
    else:
        engine.load_for_job(refiner.main)
    _reactivate_networks(engine, plan)


def attach(engine: "Engine", plan: "Plan", batch: "Batch", cfg: "CFGDenoiser", sampler: Any, sampler_info: Any, *,
           width: int, height: int, hires_steps: int | None) -> None:
    """Make ``cfg`` switch to the plan's refiner when the pass reaches the switch point."""
    refiner = plan.refiner
    if refiner is None:
        return
    req = plan.request
    is_hr_pass = hires_steps is not None
    hires_mode = str(engine.options.get("hires_fix_refiner_pass") or "second pass")
    if req.enable_hr and not req.is_img2img:
        if (hires_mode == "first pass" and is_hr_pass) or (hires_mode == "second pass" and not is_hr_pass):
            return
    by_steps = bool(engine.options.get("refiner_switch_by_sample_steps"))

    def before_call(denoiser: "CFGDenoiser", sigma: torch.Tensor) -> None:
        if by_steps:
            plan.extra_params["Refiner switch by sampling steps"] = True
        if _is_loaded(engine, refiner.info):
            return
        if refiner.switch_at is not None and completed_ratio(denoiser, sigma, by_steps) < refiner.switch_at:
            return
        _switch(engine, plan, batch, denoiser, sampler, sampler_info, width, height, hires_steps)
        if req.enable_hr and not req.is_img2img and hires_mode != "second pass":
            plan.extra_params["Hires refiner"] = hires_mode
        # after the load, which hashes the file: the title then carries the short hash
        plan.extra_params["Refiner"] = refiner.info.short_title
        plan.extra_params["Refiner switch at"] = refiner.switch_at

    cfg.before_call = before_call


def _switch(engine: "Engine", plan: "Plan", batch: "Batch", cfg: "CFGDenoiser", sampler: Any, sampler_info: Any,
            width: int, height: int, hires_steps: int | None) -> None:
    from modules.core.sampling.discrete import alphas_cumprod
    from modules.engine.sampling import make_inner

    req = plan.request
    old = cfg.inputs
    if plan.refiner.parked is None and _is_loaded(engine, plan.refiner.main):
        plan.refiner.parked = engine.park_for_job()  # put back at the next batch instead of read from disk
    engine.load_for_job(plan.refiner.info)
    _reactivate_networks(engine, plan)
    model = engine.model
    conds = engine.conditioning(plan, batch, steps=req.steps, hires_steps=hires_steps, sampler=sampler_info,
                                width=width, height=height)
    inputs = engine.sampling_inputs(conds, req.cfg_scale, width, height, len(batch.seeds))
    # The 9-channel image conditioning only means something to another inpainting model.
    inputs.inpaint_cond = old.inpaint_cond if model.is_inpainting else None
    inputs.callbacks = old.callbacks
    inner = make_inner(sampler_info, model.unet, alphas_cumprod(model.scheduler_config).to(engine.devices.device),
                       model.prediction_type)
    cfg.inputs = inputs
    cfg.inner_model = cfg.model_wrap = inner
    sampler.model_wrap = inner
    log.info("Refiner: switched to %s at denoiser call %d", plan.refiner.info.title, cfg.step)
