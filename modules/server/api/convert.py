"""From A1111 API payloads to the engine's GenerationRequest, and images in and out.

FastAPI-free. Bad input raises RequestError naming the field (the API answers 422).
"""
from __future__ import annotations

import random
import string
from typing import TYPE_CHECKING, Any

from PIL import Image
from pydantic import ValidationError

from modules.core import image_files
from modules.core import request_bounds
from modules.core import infotext as infotext_mod
from modules.server.api import models
from modules.engine.settings_changes import check_overrides, check_setting, closest_checkpoint
from modules.core.request import GenerationRequest, RequestError
from modules.core.infotext_request import request_from_infotext

if TYPE_CHECKING:
    from modules.engine.engine import Engine

ENCODABLE_FORMATS = ("png", "jpg", "jpeg", "webp")
SAMPLER_PARAMS = ("s_min_uncond", "s_churn", "s_tmax", "s_tmin", "s_noise")


def create_task_id(task_type: str) -> str:
    """A1111's task ids: ``task(txt2img-ABC1234)``."""
    return f"task({task_type}-{''.join(random.choices(string.ascii_uppercase + string.digits, k=7))})"


def decode_image(value: Any, field: str) -> Image.Image:
    """A base64 image (``data:image/...;base64,`` prefix allowed); RequestError naming ``field`` otherwise."""
    if not isinstance(value, str):
        raise RequestError(field, "expected a base64-encoded image string")
    if value.strip().lower().startswith(("http://", "https://")):
        raise RequestError(field, "image URLs are not fetched by this server; send the image as base64")
    try:
        return image_files.decode_base64_image(value, max_pixels=request_bounds.current().max_image_pixels)
    except ValueError as exc:
        raise RequestError(field, str(exc)) from exc


def check_image_count(count: int, field: str) -> None:
    """Before decoding anything: no more input images than ``--max-images-per-request``."""
    try:
        request_bounds.check_image_count(count)
    except request_bounds.BoundError as exc:
        raise RequestError(field, str(exc)) from None


def encode_image(engine: Engine, image: Image.Image, infotext: str | None = None) -> str:
    """Base64 (no prefix) in the ``samples_format`` setting's format (PNG when it cannot be encoded), infotext kept."""
    fmt = str(engine.options.get("samples_format") or "png").lower()
    if fmt not in ENCODABLE_FORMATS:
        fmt = "png"
    return image_files.encode_image_base64(image, fmt, infotext, jpeg_quality=int(engine.options.get("jpeg_quality") or 80),
                                           webp_lossless=bool(engine.options.get("webp_lossless")))


def apply_infotext(engine: Engine, payload: models._Common) -> tuple[models._Common, set[str]]:
    """A1111's ``infotext`` field: fields the request did not set explicitly are taken from the infotext, and
    the settings it names (``Clip skip`` included) become ``override_settings`` unless the request gives them.
    Returns the payload and the fields the infotext gave."""
    if not payload.infotext:
        return payload, set()
    try:
        params = infotext_mod.parse_generation_parameters(payload.infotext)
    except Exception as exc:  # the parser is lenient; anything else is the client's text
        raise RequestError("infotext", f"cannot parse: {exc}") from None
    fields, overrides, _problems = request_from_infotext(params)
    clip_skip = fields.pop("clip_skip", None)
    explicit = payload.model_fields_set
    known = type(payload).model_fields
    update = {k: v for k, v in fields.items() if k in known and k not in explicit}
    try:  # the same bounds as a request's own fields (a 30-digit seed in a pasted text is the client's error)
        type(payload).model_validate(update)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"]
                             for e in exc.errors())
        raise RequestError("infotext", problems) from None
    settings = dict(payload.override_settings or {})
    if clip_skip is not None:
        overrides.setdefault("CLIP_stop_at_last_layers", clip_skip)
    for key, value in overrides.items():
        if key in settings:
            continue
        if key == "sd_model_checkpoint":
            found = closest_checkpoint(engine, str(value))
            if found is None or found is engine.checkpoint_info:
                continue  # A1111 skips an unknown model hash, and the model already loaded
            value = found.title
        try:
            settings[key] = check_setting(engine, key, value, field=f"infotext.{key}", exact_checkpoint_name=False)
        except RequestError:
            continue  # a value this app cannot use (an unlisted VAE...) is skipped, as A1111 does
    update["override_settings"] = settings or payload.override_settings
    return payload.model_copy(update=update), set(update) - {"override_settings"}


def to_generation_request(engine: Engine, payload: models._Common, *, img2img: bool, task_id: str,
                          from_infotext: set[str] = frozenset()) -> GenerationRequest:
    """The engine's request; checked here (``GenerationRequest.validate``), so that a bad request is refused
    before it waits for the queue. A bad value that came from ``infotext`` is reported as that field's."""
    data = payload.model_dump()
    req = GenerationRequest(
        prompt=data["prompt"] or "",
        negative_prompt=data["negative_prompt"] or "",
        styles=list(data["styles"] or []),
        steps=data["steps"],
        sampler_name=data["sampler_name"] or data["sampler_index"] or "Euler",
        scheduler=data["scheduler"] or "Automatic",
        cfg_scale=data["cfg_scale"],
        seed=data["seed"],
        subseed=data["subseed"],
        subseed_strength=data["subseed_strength"],
        seed_resize_from_h=data["seed_resize_from_h"],
        seed_resize_from_w=data["seed_resize_from_w"],
        width=data["width"],
        height=data["height"],
        batch_size=data["batch_size"],
        n_iter=data["n_iter"],
        tiling=bool(data["tiling"]),
        eta=data["eta"],
        override_settings=check_overrides(engine, data["override_settings"]),
        override_settings_restore_afterwards=data["override_settings_restore_afterwards"],
        do_not_save_samples=not data["save_images"],
        do_not_save_grid=not data["save_images"],
        disable_extra_networks=data["disable_extra_networks"],
        id_task=task_id,
    )
    if data.get("denoising_strength") is not None:
        req.denoising_strength = data["denoising_strength"]
    req.refiner_checkpoint, req.refiner_switch_at = data.get("refiner_checkpoint"), data.get("refiner_switch_at")
    for name in SAMPLER_PARAMS + ("image_cfg_scale",):
        setattr(req, name, data.get(name))
    if img2img:
        _img2img_fields(req, data)
    else:
        req.enable_hr = data["enable_hr"]
        req.hr_scale = data["hr_scale"]
        req.hr_upscaler = data["hr_upscaler"] or "Latent"
        req.hr_second_pass_steps = data["hr_second_pass_steps"]
        req.hr_resize_x, req.hr_resize_y = data["hr_resize_x"], data["hr_resize_y"]
        req.hr_sampler_name = data["hr_sampler_name"]
        req.hr_scheduler = data["hr_scheduler"]
        req.hr_prompt, req.hr_negative_prompt = data["hr_prompt"], data["hr_negative_prompt"]
    try:
        req.validate()
    except RequestError as exc:
        if exc.field in from_infotext:
            raise RequestError("infotext", f"{exc.field}: {exc.message}") from None
        raise
    for name in SAMPLER_PARAMS:  # A1111 sets p.s_churn ...; here they are the settings of the same name
        if getattr(req, name) is not None and name not in req.override_settings and _is_setting(engine, name):
            req.override_settings[name] = float(getattr(req, name))
    return req


def _is_setting(engine: Engine, key: str) -> bool:
    try:
        engine.options.info(key)
    except ValueError:
        return False
    return True


def _img2img_fields(req: GenerationRequest, data: dict[str, Any]) -> None:
    if not data.get("init_images"):
        raise RequestError("init_images", "Init image not found")
    check_image_count(len(data["init_images"]), "init_images")
    req.init_images = [decode_image(img, f"init_images[{i}]") for i, img in enumerate(data["init_images"])]
    if data.get("mask"):
        req.mask = decode_image(data["mask"], "mask")
    req.resize_mode = data["resize_mode"]
    req.mask_blur_x, req.mask_blur_y = data["mask_blur_x"], data["mask_blur_y"]
    if data.get("mask_blur") is not None:
        req.mask_blur = data["mask_blur"]
    req.inpainting_fill = data["inpainting_fill"]
    req.mask_round = bool(data.get("mask_round", True))
    req.inpaint_full_res = bool(data["inpaint_full_res"])
    req.inpaint_full_res_padding = data["inpaint_full_res_padding"]
    req.inpainting_mask_invert = data["inpainting_mask_invert"]
    req.initial_noise_multiplier = data["initial_noise_multiplier"]
