"""The typed request every door (UI, API, scripts) hands to the engine, and its result.

Field names follow A1111's StableDiffusionProcessing so that API payloads and script
arguments map one to one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from modules.core import request_bounds

MAX_DIMENSION = 4096
MAX_STEPS = 500
MAX_BATCH = 64
# What a torch generator accepts; -1 asks for a random seed.
SEED_MAX = 2**63 - 1


class RequestError(ValueError):
    """Bad input in a request; `field` names the offending field (the API answers 422)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass
class GenerationRequest:
    # A list (as A1111 scripts such as Prompt matrix set) gives every image its own prompt / seed.
    prompt: str | list[str] = ""
    negative_prompt: str | list[str] = ""
    styles: list[str] = field(default_factory=list)
    steps: int = 20
    sampler_name: str = "DPM++ 2M"
    scheduler: str = "Automatic"
    cfg_scale: float = 7.0
    seed: int | list[int] = -1
    subseed: int | list[int] = -1
    subseed_strength: float = 0.0
    seed_resize_from_h: int = -1
    seed_resize_from_w: int = -1
    width: int = 512
    height: int = 512
    batch_size: int = 1
    n_iter: int = 1
    clip_skip: int | None = None  # None: the CLIP_stop_at_last_layers setting
    tiling: bool = False
    eta: float | None = None
    # img2img / inpainting
    init_images: list[Image.Image] = field(default_factory=list)
    mask: Image.Image | None = None
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    inpainting_fill: int = 0
    inpaint_full_res: bool = True
    inpaint_full_res_padding: int = 0
    inpainting_mask_invert: int = 0
    mask_round: bool = True  # False: the mask keeps its soft edge in latent space (soft inpainting sets it)
    resize_mode: int = 0
    denoising_strength: float = 0.75
    initial_noise_multiplier: float | None = None
    image_cfg_scale: float | None = None
    # sampler parameters (None: the s_churn ... settings)
    s_min_uncond: float | None = None
    s_churn: float | None = None
    s_tmax: float | None = None
    s_tmin: float | None = None
    s_noise: float | None = None
    # hires fix (txt2img)
    enable_hr: bool = False
    hr_scale: float = 2.0
    hr_upscaler: str | None = "Latent"
    hr_second_pass_steps: int = 0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    hr_sampler_name: str | None = None
    hr_scheduler: str | None = None
    hr_prompt: str = ""
    hr_negative_prompt: str = ""
    # SDXL-style refiner (A1111 1.6+): the checkpoint the sampler switches to once `refiner_switch_at` of the
    # schedule is done; None or "" / "None": no refiner
    refiner_checkpoint: str | None = None
    refiner_switch_at: float | None = None
    # behaviour
    override_settings: dict[str, Any] = field(default_factory=dict)
    override_settings_restore_afterwards: bool = True
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    disable_extra_networks: bool = False
    id_task: str | None = None
    extra_generation_params: dict[str, Any] = field(default_factory=dict)
    # scripts (spec §12.2): the selectable script's title and its UI arguments; always-on scripts' arguments
    # as {"<title>": {"args": [...]}} (a plain list is accepted too). Scripts not named get their UI defaults.
    script_name: str | None = None
    script_args: list[Any] = field(default_factory=list)
    alwayson_scripts: dict[str, Any] = field(default_factory=dict)

    @property
    def is_img2img(self) -> bool:
        return bool(self.init_images)

    @property
    def mask_blur(self) -> int:
        return self.mask_blur_x

    @mask_blur.setter
    def mask_blur(self, value: int) -> None:
        self.mask_blur_x = self.mask_blur_y = int(value)

    def validate(self, bounds: request_bounds.RequestBounds | None = None) -> None:
        """Every check of a request's values, for every door (API, page, scripts): RequestError naming the
        field and the reason. The doors' models only check types."""
        _validate(self, bounds or request_bounds.current())


def _check(cond: bool, name: str, message: str) -> None:
    if not cond:
        raise RequestError(name, message)


def _number(req: GenerationRequest, name: str, low: float, high: float, *, optional: bool = False) -> None:
    value = getattr(req, name)
    if value is None and optional:
        return
    _check(isinstance(value, (int, float)) and not isinstance(value, bool), name,
           f"must be a number, got {type(value).__name__}")
    _check(math.isfinite(value), name, f"must be a finite number, got {value}")
    _check(low <= value <= high, name, f"must be between {low:g} and {high:g}, got {value}")


def _seeds(name: str, value: Any) -> None:
    for seed in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(seed, float) and math.isfinite(seed) and seed.is_integer():
            seed = int(seed)
        _check(isinstance(seed, int) and not isinstance(seed, bool), name, f"must be an integer, got {seed!r}")
        _check(seed == -1 or 0 <= seed <= SEED_MAX, name, f"must be -1 (random) or between 0 and {SEED_MAX}, got {seed}")


def _texts(name: str, value: Any, bounds: request_bounds.RequestBounds, *, prompt: bool) -> None:
    for text in value if isinstance(value, (list, tuple)) else [value]:
        if text is None:
            continue
        _check(isinstance(text, str), name, f"must be text, got {type(text).__name__}")
        try:
            if prompt:
                request_bounds.check_prompt(text, bounds)
            else:
                request_bounds.check_text(text)
        except request_bounds.BoundError as exc:
            raise RequestError(name, str(exc)) from None


def _image(name: str, image: Any, bounds: request_bounds.RequestBounds) -> None:
    _check(isinstance(image, Image.Image), name, f"must be an image, got {type(image).__name__}")
    try:
        request_bounds.check_image_size(image.width, image.height, bounds)
    except request_bounds.BoundError as exc:
        raise RequestError(name, str(exc)) from None


def _validate(req: GenerationRequest, bounds: request_bounds.RequestBounds) -> None:
    check = _check
    for name in ("prompt", "negative_prompt", "hr_prompt", "hr_negative_prompt"):
        _texts(name, getattr(req, name), bounds, prompt=True)
    _texts("styles", list(req.styles or []), bounds, prompt=False)
    for name in ("sampler_name", "scheduler", "hr_sampler_name", "hr_scheduler", "hr_upscaler"):
        _texts(name, getattr(req, name), bounds, prompt=False)
    from modules.core import samplers

    try:
        samplers.resolve_sampler(req.sampler_name, req.scheduler)
    except ValueError as exc:
        raise RequestError("scheduler" if str(exc).startswith("Unknown scheduler") else "sampler_name", str(exc)) from None
    _number(req, "steps", 1, MAX_STEPS)
    check(int(req.steps) == req.steps, "steps", f"must be an integer, got {req.steps}")
    for name in ("width", "height"):
        value = getattr(req, name)
        _number(req, name, 64, MAX_DIMENSION)
        check(value % 8 == 0, name, f"must be a multiple of 8, got {value}")
    _number(req, "batch_size", 1, MAX_BATCH)
    _number(req, "n_iter", 1, 1000)
    _number(req, "cfg_scale", 0.0, 100.0)
    _seeds("seed", req.seed)
    _seeds("subseed", req.subseed)
    _number(req, "subseed_strength", 0.0, 1.0)
    for name in ("seed_resize_from_h", "seed_resize_from_w"):
        _number(req, name, -1, MAX_DIMENSION)
    _number(req, "denoising_strength", 0.0, 1.0)
    check(req.clip_skip is None or 1 <= req.clip_skip <= 12, "clip_skip", f"must be between 1 and 12, got {req.clip_skip}")
    _number(req, "eta", 0.0, 10.0, optional=True)
    _number(req, "image_cfg_scale", 0.0, 100.0, optional=True)
    _number(req, "s_min_uncond", 0.0, 100.0, optional=True)
    _number(req, "s_churn", 0.0, 100.0, optional=True)
    _number(req, "s_tmin", 0.0, 1e4, optional=True)
    _number(req, "s_tmax", 0.0, 1e4, optional=True)
    _number(req, "s_noise", 0.0, 10.0, optional=True)
    check(req.resize_mode in (0, 1, 2, 3), "resize_mode", f"must be 0, 1, 2 or 3, got {req.resize_mode}")
    check(req.inpainting_fill in (0, 1, 2, 3), "inpainting_fill", f"must be 0, 1, 2 or 3, got {req.inpainting_fill}")
    _number(req, "hr_second_pass_steps", 0, MAX_STEPS)
    if req.enable_hr:
        _number(req, "hr_scale", 1.0, 8.0)
    for name in ("hr_resize_x", "hr_resize_y"):
        _number(req, name, 0, MAX_DIMENSION)
    # img2img / inpainting
    for name in ("mask_blur_x", "mask_blur_y"):
        _number(req, name, 0, 256)
    _number(req, "inpaint_full_res_padding", 0, 1024)
    check(req.inpainting_mask_invert in (0, 1), "inpainting_mask_invert",
          f"must be 0 or 1, got {req.inpainting_mask_invert}")
    _number(req, "initial_noise_multiplier", 0.0, 10.0, optional=True)
    _texts("refiner_checkpoint", req.refiner_checkpoint, bounds, prompt=False)
    _number(req, "refiner_switch_at", 0.0, 1.0, optional=True)
    try:
        request_bounds.check_image_count(len(req.init_images), bounds)
    except request_bounds.BoundError as exc:
        raise RequestError("init_images", str(exc)) from None
    for i, image in enumerate(req.init_images):
        _image(f"init_images[{i}]", image, bounds)
    if req.mask is not None:
        _image("mask", req.mask, bounds)
        check(req.is_img2img, "mask", "a mask needs an init image")


@dataclass
class Processed:
    images: list[Image.Image]
    infotexts: list[str]
    seeds: list[int]
    subseeds: list[int]
    prompts: list[str]
    negative_prompts: list[str]
    request: GenerationRequest
    seed: int
    subseed: int
    info: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    saved_paths: list[str] = field(default_factory=list)
    index_of_first_image: int = 0
    interrupted: bool = False

    @property
    def infotext(self) -> str:
        return self.infotexts[0] if self.infotexts else ""

    # A1111's names, for scripts written against its Processed.
    @property
    def all_prompts(self) -> list[str]:
        return self.prompts

    @property
    def all_negative_prompts(self) -> list[str]:
        return self.negative_prompts

    @property
    def all_seeds(self) -> list[int]:
        return self.seeds

    @property
    def all_subseeds(self) -> list[int]:
        return self.subseeds

    @property
    def prompt(self) -> str:
        return self.info.get("prompt", self.prompts[0] if self.prompts else "")

    @property
    def negative_prompt(self) -> str:
        return self.info.get("negative_prompt", self.negative_prompts[0] if self.negative_prompts else "")

    def js(self) -> str:
        import json

        return json.dumps(self.info, default=lambda o: None)
