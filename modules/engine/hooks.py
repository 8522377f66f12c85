"""The points of a generation where a layer above the engine may look and change things.

The pipeline knows nothing of A1111's scripts, ``p`` or extensions: it calls these hooks, and the script
layer (``modules.scripting``) implements them for its always-on scripts and callbacks. A generation without
scripts runs with :data:`NO_HOOKS`. Each hook gets the run's :class:`~modules.engine.pipeline.Plan` (what was
resolved from the request: prompts, seeds, extra infotext parameters) and may change it in place.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:
    from PIL import Image

    from modules.core.request import Processed
    from modules.engine.pipeline import Batch, Plan


# --- A1111's parameter objects of the per-step callbacks (``script_callbacks`` re-exports them) ---------

@dataclass
class CFGDenoiserParams:
    """Before a UNet call. ``x`` is the whole batch given to the denoiser (conditional rows, then unconditional
    ones), ``sigma`` a σ per row (for DDIM/PLMS/UniPC the timestep, as in A1111); changing ``x``, ``image_cond``,
    ``sigma``, ``text_cond`` or ``text_uncond`` changes what the UNet gets."""

    x: Any
    image_cond: Any
    sigma: Any
    sampling_step: int
    total_sampling_steps: int
    text_cond: Any
    text_uncond: Any
    denoiser: Any = None


@dataclass
class CFGDenoisedParams:
    """After a UNet call: ``x`` is the denoised prediction of every row (may be replaced)."""

    x: Any
    sampling_step: int
    total_sampling_steps: int
    inner_model: Any = None


@dataclass
class ExtraNoiseParams:
    """img2img's extra noise (setting ``img2img_extra_noise``): ``noise`` may be replaced before it is added to
    ``xi``, the noised start latent made from ``x``."""

    noise: Any
    x: Any
    xi: Any


@dataclass
class AfterCFGCallbackParams:
    """After guidance: ``x`` is the guided prediction, one row per image (may be replaced)."""

    x: Any
    sampling_step: int
    total_sampling_steps: int


@dataclass
class MaskBlendArgs:
    """A1111's ``scripts.MaskBlendArgs``: the inpainting blend of the denoised latent with the original, at every
    step (``denoiser`` and ``sigma`` set) and once after sampling (``is_final_blend``). ``blended_latent`` holds the
    plain blend ``current·nmask + init·mask``; a script may replace it."""

    current_latent: Any
    nmask: Any
    init_latent: Any
    mask: Any
    blended_latent: Any
    denoiser: Any = None
    sigma: Any = None

    @property
    def is_final_blend(self) -> bool:
        return self.denoiser is None


@dataclass
class PostProcessMaskOverlayArgs:
    """A1111's ``scripts.PostProcessMaskOverlayArgs``: image ``index``'s overlay mask (L, 255 = generated) and the
    RGBA original composited over the result; a script may replace either."""

    index: int
    mask_for_overlay: Any
    overlay_image: Any


class SamplingCallbacks(Protocol):
    """Per-step callbacks of the denoiser (A1111's on_cfg_denoiser / on_cfg_denoised / on_cfg_after_cfg)."""

    def has(self, name: str) -> bool: ...

    def run(self, name: str, *args: Any) -> Any: ...


class ImageSaveCallbacks(Protocol):
    """Callbacks around writing an image file (A1111's before_image_saved / image_saved)."""

    def run(self, name: str, *args: Any) -> Any: ...


class GenerationHooks:
    """No-op hooks; the script layer subclasses this. Names follow the order they are called in."""

    def begin(self, plan: "Plan") -> None:
        """The run is planned and the model loaded (A1111: ``process``); prompts and seeds may be changed."""

    def before_batch(self, plan: "Plan", batch: "Batch") -> None:
        """Before a batch's extra networks are activated; ``batch.prompts`` / ``batch.seeds`` may be changed."""

    def networks_activated(self, plan: "Plan", batch: "Batch", network_data: dict) -> None:
        """The batch's extra networks are active; conditioning comes next."""

    def img2img_noise(self, plan: "Plan", batch: "Batch", init_latents: Any, noise: Any, sampler: Any) -> Any:
        """The noise img2img adds to ``init_latents`` (the seeds' noise, given); a replacement is used as it is
        (no noise multiplier). A1111's scripts replace ``p.sample`` for this (img2img alternative test)."""
        return noise

    def before_hires(self, plan: "Plan") -> None:
        """The first pass is done; the hires pass starts."""

    def batch_done(self, plan: "Plan", batch: "Batch", images: list["Image.Image"]) -> list["Image.Image"]:
        """A batch's decoded images; the returned list replaces them."""
        return images

    def image_done(self, plan: "Plan", batch: "Batch", index_in_batch: int, image: "Image.Image") -> "Image.Image":
        """One finished image, before its infotext is written; the returned image replaces it."""
        return image

    def mask_blend(self) -> Callable[[MaskBlendArgs], None] | None:
        """What may replace the inpainting mask blend (A1111: ``on_mask_blend``), or None."""
        return None

    def post_sample(self, plan: "Plan", batch: "Batch", samples: Any) -> Any:
        """The batch's sampled latents, before decoding; the returned tensor replaces them."""
        return samples

    def mask_overlay(self, plan: "Plan", args: PostProcessMaskOverlayArgs) -> None:
        """Before the inpainting composite of one image (A1111: ``postprocess_maskoverlay``)."""

    def finish(self, plan: "Plan", processed: "Processed") -> None:
        """The run's result, before it is returned."""

    def sampling_callbacks(self) -> SamplingCallbacks | None:
        """Per-step denoiser callbacks for this run, or None when nobody listens."""
        return None

    def save_callbacks(self) -> ImageSaveCallbacks | None:
        """Callbacks around saving images, or None."""
        return None

    def processing(self) -> Any:
        """The object callbacks receive as ``p`` (A1111's StableDiffusionProcessing), or None."""
        return None


NO_HOOKS = GenerationHooks()
