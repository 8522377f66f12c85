"""A1111's ``process_images(p)`` and the script layer's side of a generation.

``process_images`` runs ``p``'s request through :meth:`Engine.generate` with :class:`ScriptHooks`: the
hooks give the always-on scripts and the callbacks A1111's calls (process, before_process_batch,
process_batch, before_hr, postprocess_batch(_list), postprocess_image, postprocess, on_cfg_*,
on_*image_saved) with ``p`` kept in step with the running generation. A ``process_images`` called from
inside another (a script's grid cells) joins the outer job instead of queueing behind it (the Engine's
queue knows the turn it already holds).
"""
from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from PIL import Image

from modules.core import image_files
from modules.core.request import GenerationRequest, Processed
from modules.engine import noise_inversion
from modules.engine.hooks import GenerationHooks, ImageSaveCallbacks, PostProcessMaskOverlayArgs, SamplingCallbacks
from modules.engine.pipeline import Batch, Plan
from modules.scripting import a1111_extra_networks, a1111_lora
from modules.scripting.processing_object import StableDiffusionProcessing, as_processing
from modules.scripting.scripts import PostSampleArgs
from modules.settings import output_paths

if TYPE_CHECKING:
    from modules.engine.engine import Engine
    from modules.scripting.host import ScriptHost


class ScriptHooks(GenerationHooks):
    """The pipeline's hooks for one ``p``: its runner's always-on scripts and the host's callbacks."""

    def __init__(self, p: StableDiffusionProcessing, host: "ScriptHost") -> None:
        self.p = p
        self.host = host

    def _batch_to_p(self, batch: Batch) -> None:
        p = self.p
        p.iteration = batch.index
        p.prompts, p.negative_prompts = batch.prompts, batch.negative_prompts
        p.seeds, p.subseeds = batch.seeds, batch.subseeds

    def _p_to_batch(self, batch: Batch, *, prompts: bool) -> None:
        # Scripts may assign new lists to p.prompts / p.seeds ...: the batch runs with what they left.
        p = self.p
        if prompts:
            batch.prompts = list(p.prompts)
        batch.negative_prompts, batch.seeds, batch.subseeds = list(p.negative_prompts), list(p.seeds), list(p.subseeds)

    def _batch_kwargs(self, batch: Batch) -> dict[str, Any]:
        p = self.p
        return dict(batch_number=batch.index, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)

    def begin(self, plan: Plan) -> None:
        self.p.plan = plan
        a1111_extra_networks.push_p(self.p.engine, self.p)  # extensions' <tag:...> handlers get this p
        self.host.check_model_loaded()
        if self.p.scripts is not None:
            self.p.scripts.process(self.p)

    def before_batch(self, plan: Plan, batch: Batch) -> None:
        self._batch_to_p(batch)
        if self.p.scripts is not None:
            self.p.scripts.before_process_batch(self.p, **self._batch_kwargs(batch))
            self._p_to_batch(batch, prompts=True)

    def networks_activated(self, plan: Plan, batch: Batch, network_data: dict) -> None:
        a1111_lora.networks_activated(self.p.engine)
        runner = self.p.scripts
        if runner is None:
            return
        kwargs = self._batch_kwargs(batch)
        runner.after_extra_networks_activate(self.p, extra_network_data=network_data, **kwargs)
        runner.process_batch(self.p, **kwargs)
        self._p_to_batch(batch, prompts=False)
        a1111_lora.sync(self.p.engine)  # what scripts changed in A1111's loaded networks, before conditioning

    def img2img_noise(self, plan: Plan, batch: Batch, init_latents: Any, noise: Any, sampler: Any) -> Any:
        """``p.img2img_noise(init_latents, noise, sampler, find_noise)`` when a script set it (the img2img
        alternative test); ``find_noise(prompt, negative_prompt, cfg_scale, steps, sigma_adjustment)`` inverts
        ``init_latents`` with the Engine's denoiser."""
        replace = getattr(self.p, "img2img_noise", None)
        if replace is None:
            return noise
        engine = self.p.engine

        def find_noise(prompt: str, negative_prompt: str, cfg_scale: float, steps: int, sigma_adjustment: bool) -> Any:
            return noise_inversion.find_noise(engine, plan, batch, init_latents, prompt=prompt,
                                              negative_prompt=negative_prompt, cfg_scale=cfg_scale, steps=steps,
                                              sigma_adjustment=sigma_adjustment)

        return replace(init_latents, noise, sampler, find_noise)

    def before_hires(self, plan: Plan) -> None:
        if self.p.scripts is not None:
            self.p.scripts.before_hr(self.p)

    def batch_done(self, plan: Plan, batch: Batch, images: list[Image.Image]) -> list[Image.Image]:
        if self.p.scripts is None:
            return images
        return self.p.scripts.postprocess_batch_images(self.p, images, batch_number=batch.index)

    def image_done(self, plan: Plan, batch: Batch, index_in_batch: int, image: Image.Image) -> Image.Image:
        self.p.batch_index = index_in_batch
        if self.p.scripts is None:
            return image
        return self.p.scripts.postprocess_image_one(self.p, image)

    def mask_blend(self) -> Any:
        runner, p = self.p.scripts, self.p
        if runner is None or not runner.has_hook(p, "on_mask_blend"):
            return None
        return lambda mba: runner.on_mask_blend(p, mba)

    def post_sample(self, plan: Plan, batch: Batch, samples: Any) -> Any:
        if self.p.scripts is None:
            return samples
        ps = PostSampleArgs(samples)
        self.p.scripts.post_sample(self.p, ps)
        return ps.samples

    def mask_overlay(self, plan: Plan, args: PostProcessMaskOverlayArgs) -> None:
        if self.p.scripts is not None:
            self.p.scripts.postprocess_maskoverlay(self.p, args)

    def finish(self, plan: Plan, processed: Processed) -> None:
        try:
            a1111_extra_networks.deactivate_extension_networks(self.p.engine, self.p)
            if self.p.scripts is not None:
                self.p.scripts.postprocess(self.p, processed)
        finally:
            a1111_extra_networks.pop_p(self.p.engine, self.p)
            a1111_lora.end_generation(self.p.engine)

    def sampling_callbacks(self) -> SamplingCallbacks | None:
        # Asked before ``process`` runs, where extensions may still register (LoRA block weight does): the
        # callbacks are looked up when the denoiser calls, as in A1111.
        return _LiveCallbacks(self.host.callbacks, self.p.failed_callbacks, self.p.engine)

    def save_callbacks(self) -> ImageSaveCallbacks | None:
        return self.host.callbacks

    def processing(self) -> StableDiffusionProcessing:
        return self.p


class _LiveCallbacks:
    """The per-step callbacks registered when the denoiser asks, with this generation's switched-off set; after
    ``on_cfg_denoiser`` callbacks, what they changed in A1111's loaded networks (LoRA block weight's start/stop
    steps) is merged before the UNet call, as A1111's patched forward does."""

    def __init__(self, registry: Any, skip: set[int], engine: "Engine") -> None:
        self.registry = registry
        self.skip = skip
        self.engine = engine

    def has(self, kind: str) -> bool:
        return self.registry.has(kind)

    def run(self, kind: str, *args: Any) -> Any:
        result = self.registry.run(kind, *args, skip=self.skip)
        if kind == "cfg_denoiser":
            a1111_lora.sync(self.engine)
        return result


def process_images(engine_or_p: Any, req: GenerationRequest | None = None) -> Processed:
    """A1111's ``process_images(p)`` (also ``process_images(engine, request)``): one generation with the
    always-on scripts' hooks (``p.scripts``) and the callbacks."""
    from modules.scripting.host import ScriptHost

    p = as_processing(engine_or_p, req)
    host = ScriptHost.for_engine(p.engine)
    if p.scripts is not None:
        p.scripts.before_process(p)
    try:
        return p.engine.generate(p.request, ScriptHooks(p, host))
    finally:  # also when the generation failed before its finish hook
        a1111_extra_networks.pop_p(p.engine, p)


def save_grid(p: StableDiffusionProcessing, image: Image.Image, text: str) -> str | None:
    """Save a script's grid (X/Y/Z plot, prompt matrix) the way a generation saves its grids: only with the
    ``grid_save`` setting and unless ``p.do_not_save_grid``; returns the path or None."""
    from modules.scripting.host import ScriptHost

    engine: Engine = p.engine
    req = p.request
    opts = engine.options
    if not opts.get("grid_save") or req.do_not_save_grid:
        return None
    seed = req.seed[0] if isinstance(req.seed, (list, tuple)) and req.seed else req.seed
    directory, _ = output_paths.save_location(engine.options, engine.paths, is_img2img=req.is_img2img, grid=True,
                                              tags={"date": datetime.date.today().isoformat(), "seed": seed})
    path = image_files.save_image(
        image, directory, seed=seed, infotext=text if opts.get("enable_pnginfo") else None,
        extension=opts.get("grid_format") or "png", jpeg_quality=int(opts.get("jpeg_quality") or 80),
        basename_prefix="grid", basename_pattern="", callbacks=ScriptHost.for_engine(engine).callbacks, p=p)
    return str(path)


def combined_processed(p: StableDiffusionProcessing, parts: list[Processed], grids: list[Image.Image],
                       grid_infotexts: list[str], include_images: bool = True) -> Processed:
    """One result for a script that ran several generations: ``grids`` first (A1111's
    ``index_of_first_image``), then every part's images when ``include_images``. Seeds, prompts and
    infotexts stay aligned with the images after the grids."""
    images = [img for part in parts for img in part.images] if include_images else []
    infotexts = [t for part in parts for t in part.infotexts] if include_images else []
    seeds = [s for part in parts for s in part.seeds] if include_images else []
    subseeds = [s for part in parts for s in part.subseeds] if include_images else []
    prompts = [t for part in parts for t in part.prompts] if include_images else []
    negatives = [t for part in parts for t in part.negative_prompts] if include_images else []
    first = parts[0] if parts else None
    warnings: list[str] = []
    for part in parts:
        warnings += [w for w in part.warnings if w not in warnings]
    info = dict(first.info) if first is not None else {}
    info.update({"all_prompts": prompts, "all_negative_prompts": negatives, "all_seeds": seeds,
                 "all_subseeds": subseeds, "index_of_first_image": len(grids),
                 "infotexts": list(grid_infotexts) + infotexts, "warnings": warnings})
    return Processed(
        images=list(grids) + images, infotexts=list(grid_infotexts) + infotexts, seeds=seeds, subseeds=subseeds,
        prompts=prompts, negative_prompts=negatives, request=p.request,
        seed=first.seed if first is not None else -1, subseed=first.subseed if first is not None else -1,
        info=info, warnings=warnings, saved_paths=[path for part in parts for path in part.saved_paths],
        index_of_first_image=len(grids), interrupted=any(part.interrupted for part in parts))


