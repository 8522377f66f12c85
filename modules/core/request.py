"""The typed request every door (UI, API, scripts) hands to the engine, and its result.

Field names follow A1111's StableDiffusionProcessing so that API payloads and script
arguments map one to one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image

MAX_DIMENSION = 4096
MAX_STEPS = 500
MAX_BATCH = 64


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
    resize_mode: int = 0
    denoising_strength: float = 0.75
    initial_noise_multiplier: float | None = None
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

    def validate(self) -> None:
        def check(cond: bool, name: str, message: str) -> None:
            if not cond:
                raise RequestError(name, message)

        check(1 <= self.steps <= MAX_STEPS, "steps", f"must be between 1 and {MAX_STEPS}, got {self.steps}")
        for name in ("width", "height"):
            value = getattr(self, name)
            check(64 <= value <= MAX_DIMENSION, name, f"must be between 64 and {MAX_DIMENSION}, got {value}")
            check(value % 8 == 0, name, f"must be a multiple of 8, got {value}")
        check(1 <= self.batch_size <= MAX_BATCH, "batch_size", f"must be between 1 and {MAX_BATCH}, got {self.batch_size}")
        check(1 <= self.n_iter <= 1000, "n_iter", f"must be between 1 and 1000, got {self.n_iter}")
        check(0.0 <= self.cfg_scale <= 100.0, "cfg_scale", f"must be between 0 and 100, got {self.cfg_scale}")
        check(0.0 <= self.subseed_strength <= 1.0, "subseed_strength", f"must be between 0 and 1, got {self.subseed_strength}")
        check(0.0 <= self.denoising_strength <= 1.0, "denoising_strength", f"must be between 0 and 1, got {self.denoising_strength}")
        check(self.clip_skip is None or 1 <= self.clip_skip <= 12, "clip_skip", f"must be between 1 and 12, got {self.clip_skip}")
        check(self.resize_mode in (0, 1, 2, 3), "resize_mode", f"must be 0, 1, 2 or 3, got {self.resize_mode}")
        check(self.inpainting_fill in (0, 1, 2, 3), "inpainting_fill", f"must be 0, 1, 2 or 3, got {self.inpainting_fill}")
        check(0 <= self.hr_second_pass_steps <= MAX_STEPS, "hr_second_pass_steps", f"must be between 0 and {MAX_STEPS}")
        check(1.0 <= self.hr_scale <= 8.0 or not self.enable_hr, "hr_scale", f"must be between 1 and 8, got {self.hr_scale}")
        for name in ("hr_resize_x", "hr_resize_y"):
            value = getattr(self, name)
            check(0 <= value <= MAX_DIMENSION, name, f"must be between 0 and {MAX_DIMENSION}, got {value}")
        if self.mask is not None:
            check(self.is_img2img, "mask", "a mask needs an init image")


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
