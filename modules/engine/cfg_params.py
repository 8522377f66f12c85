"""The parameter objects of A1111's CFG callbacks (``on_cfg_denoiser``, ``on_cfg_denoised``, ``on_cfg_after_cfg``).

They live in the engine because the denoiser builds them; ``modules.scripting.callbacks`` (and A1111's
``modules.script_callbacks`` facade) re-export them for extensions. Field names and order are A1111's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
class AfterCFGCallbackParams:
    """After guidance: ``x`` is the guided prediction, one row per image (may be replaced)."""

    x: Any
    sampling_step: int
    total_sampling_steps: int
