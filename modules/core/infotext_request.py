"""From parsed infotext fields (A1111 keys, string values) to request fields and setting overrides.

Used wherever a pasted infotext becomes a generation: PNG Info's "send to txt2img", the API's
`infotext` field, prompts-from-file. Pure: no model, no UI.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Mapping

# infotext key -> (request field, converter)
_FIELDS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "Prompt": ("prompt", str),
    "Negative prompt": ("negative_prompt", str),
    "Steps": ("steps", int),
    "Sampler": ("sampler_name", str),
    "Schedule type": ("scheduler", str),
    "CFG scale": ("cfg_scale", float),
    "Seed": ("seed", int),
    "Size-1": ("width", int),
    "Size-2": ("height", int),
    "Variation seed": ("subseed", int),
    "Variation seed strength": ("subseed_strength", float),
    "Seed resize from-1": ("seed_resize_from_w", int),
    "Seed resize from-2": ("seed_resize_from_h", int),
    "Denoising strength": ("denoising_strength", float),
    "Clip skip": ("clip_skip", int),
    "Hires upscale": ("hr_scale", float),
    "Hires steps": ("hr_second_pass_steps", int),
    "Hires upscaler": ("hr_upscaler", str),
    "Hires resize-1": ("hr_resize_x", int),
    "Hires resize-2": ("hr_resize_y", int),
    "Hires sampler": ("hr_sampler_name", str),
    "Hires schedule type": ("hr_scheduler", str),
    "Hires prompt": ("hr_prompt", str),
    "Hires negative prompt": ("hr_negative_prompt", str),
    "Mask blur": ("mask_blur", int),
    "Masked area padding": ("inpaint_full_res_padding", int),
    "Tiling": ("tiling", lambda v: str(v) == "True"),
    "Refiner": ("refiner_checkpoint", str),
    "Refiner switch at": ("refiner_switch_at", float),
}

# infotext key -> (setting key, converter): values that are settings in A1111, not request fields
_SETTINGS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "Model hash": ("sd_model_checkpoint", str),
    "VAE": ("sd_vae", str),
    "RNG": ("randn_source", str),
    "ENSD": ("eta_noise_seed_delta", int),
    "Emphasis": ("emphasis", str),
    "Old prompt editing timelines": ("use_old_scheduling", lambda v: str(v) == "True"),
    "Eta": ("eta_ancestral", float),
    "Eta DDIM": ("eta_ddim", float),
}

# request field / setting key -> the infotext key it is read from (for messages that name the pasted field)
INFOTEXT_KEY_OF_FIELD: Mapping[str, str] = MappingProxyType({name: key for key, (name, _) in _FIELDS.items()})
INFOTEXT_KEY_OF_SETTING: Mapping[str, str] = MappingProxyType({name: key for key, (name, _) in _SETTINGS.items()})


def request_from_infotext(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(request fields, setting overrides, problems) for the parsed infotext `params`.

    A value that does not convert is left out and reported by key, so one odd field never
    loses the rest of a pasted infotext.
    """
    fields: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    problems: list[str] = []
    for table, target in ((_FIELDS, fields), (_SETTINGS, overrides)):
        for key, (name, convert) in table.items():
            if key not in params or params[key] in (None, ""):
                continue
            try:
                target[name] = convert(params[key])
            except (TypeError, ValueError):
                problems.append(f"{key}: cannot read {params[key]!r}")
    if fields.get("hr_scale") or fields.get("hr_resize_x") or fields.get("hr_resize_y"):
        fields["enable_hr"] = True
    if fields.get("hr_sampler_name") == "Use same sampler":
        fields.pop("hr_sampler_name")
    if fields.get("hr_scheduler") == "Use same scheduler":
        fields.pop("hr_scheduler")
    if "Mask mode" in params:
        fields["inpainting_mask_invert"] = 1 if params["Mask mode"] == "Inpaint not masked" else 0
    if "Inpaint area" in params:
        fields["inpaint_full_res"] = params["Inpaint area"] == "Only masked"
    return fields, overrides, problems
