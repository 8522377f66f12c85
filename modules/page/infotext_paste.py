"""Pasting an infotext into the txt2img/img2img fields, as A1111's paste button and PNG Info "Send to" do.

:func:`paste_fields` turns infotext text into request field values, setting values and a list of problems,
without touching any UI or changing any setting. It builds on :func:`modules.infotext.parse_generation_parameters`
(A1111's parser, defaults and back-compat) and :func:`modules.infotext_request.request_from_infotext` (the
infotext key → request field / setting tables), and adds what only a running app knows: the saved styles, the
local checkpoints (``Model hash``), the local LoRA files (``Lora hashes``), the samplers, upscalers and VAEs
available here, and the current settings (what would go in A1111's "Override settings").
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from modules.core import infotext as infotext_mod
from modules.core import samplers
from modules.core.request import GenerationRequest, RequestError
from modules.core.infotext_request import INFOTEXT_KEY_OF_FIELD, INFOTEXT_KEY_OF_SETTING, request_from_infotext
from modules.settings.options import check_value

if TYPE_CHECKING:
    from modules.engine.engine import Engine

__all__ = ["PasteResult", "paste_fields", "field_names", "last_generation_infotext", "INPAINTING_FILL",
           "RESIZE_MODES"]

# A1111's radio choices; the request fields hold the index.
INPAINTING_FILL = ("fill", "original", "latent noise", "latent nothing")
RESIZE_MODES = ("Just resize", "Crop and resize", "Resize and fill", "Just resize (latent upscale)")

_IMG2IMG_ONLY = frozenset({"mask_blur", "inpainting_fill", "inpaint_full_res", "inpaint_full_res_padding",
                           "inpainting_mask_invert", "resize_mode"})
_TXT2IMG_ONLY = frozenset({"enable_hr", "hr_scale", "hr_upscaler", "hr_second_pass_steps", "hr_resize_x", "hr_resize_y",
                           "hr_sampler_name", "hr_scheduler", "hr_prompt", "hr_negative_prompt"})
# A1111 pastes these even when empty (an infotext without a negative prompt clears the field).
_TEXT_FIELDS = {"Prompt": "prompt", "Negative prompt": "negative_prompt", "Hires prompt": "hr_prompt",
                "Hires negative prompt": "hr_negative_prompt"}
_USE_SAME = {"hr_sampler_name": "Use same sampler", "hr_scheduler": "Use same scheduler"}

# `<lora:NAME:...>` / `<lora:NAME>` (and the `lyco` alias): the name is what a hash fix rewrites.
_re_lora_tag = re.compile(r"<(lora|lyco):([^:>]+)(?=[:>])")
_re_addnet_hash = re.compile(r"^(.*?)\s*\([0-9a-fA-F]+\)\s*$")
# LoRA files hashed on demand per paste to find one by the hash an infotext names (hashes are cached after).
_HASH_BUDGET_BYTES = 1 << 30


@dataclass
class PasteResult:
    """What pasting an infotext gives.

    ``fields``: GenerationRequest field name → value, only for fields the infotext (or A1111's parser defaults)
    sets and that apply to the target tab. ``settings``: option key → value for every setting the infotext names
    (checkpoint title resolved locally). ``override_settings``: the subset A1111 shows under "Override settings":
    values that differ from the current ones, the checkpoint only when ``disable_weights_auto_swap`` is off.
    ``problems``: one readable line per value that could not be used. ``params``: the parsed infotext after the
    paste fixes and ``infotext_pasted`` callbacks. ``has_parameters``: False for a bare prompt.
    """

    fields: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    override_settings: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    has_parameters: bool = False


def _option(engine: Engine, key: str, default: Any = None) -> Any:
    options = getattr(engine, "options", None)
    if options is None:
        return default
    try:
        return options.get(key)
    except KeyError:
        return default


def last_generation_infotext(engine: Engine) -> str:
    """The last generation's infotext from ``params.txt`` ("" when there is none or it is disabled)."""
    path = getattr(getattr(engine, "paths", None), "params_txt", None)
    if path is None or getattr(getattr(engine, "args", None), "hide_ui_dir_config", False):
        return ""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _has_parameter_line(text: str) -> bool:
    """The parser's rule: the last line holds parameters only if it has at least 3 ``key: value`` pairs."""
    lastline = text.strip().split("\n")[-1]
    return len(infotext_mod.find_params(lastline)) >= 3


# ------------------------------------------------------------------------------------------------ paste fixes


def _addnet_to_tags(params: dict[str, Any]) -> None:
    """Kohya "additional networks" fields (``AddNet Module 1: LoRA, AddNet Model 1: name(hash), AddNet Weight A 1``)
    become ``<lora:name:weight>`` tags at the end of the prompt, as A1111's Lora extension does on paste."""
    tags = []
    for key in list(params):
        if not key.startswith("AddNet Model "):
            continue
        num = key[len("AddNet Model "):]
        if params.get(f"AddNet Module {num}") != "LoRA" or not params.get(key):
            continue
        name = str(params[key])
        m = _re_addnet_hash.match(name)
        if m:
            name = m.group(1)
        tags.append(f"<lora:{name}:{params.get(f'AddNet Weight A {num}', '1.0')}>")
    if tags:
        params["Prompt"] = params.get("Prompt", "") + "\n" + "".join(tags)


def _parse_hash_list(text: str) -> dict[str, str]:
    """``"name1: hash1, name2: hash2"`` → {name: lowercase hash}; malformed parts are ignored."""
    out: dict[str, str] = {}
    for part in str(text).split(","):
        name, sep, value = part.partition(":")
        if sep and name.strip() and value.strip():
            out[name.strip()] = value.strip().lower()
    return out


class _LoraHashes:
    """Short hashes of the local LoRA files: known ones first (metadata, hash cache), computing more only when
    asked and within a byte budget, so that a paste never hashes a whole folder of big files."""

    def __init__(self, catalog: Any):
        self.catalog = catalog
        self.known: dict[str, Any] = {}  # shorthash -> entry
        self.unhashed: list[Any] = []
        self.refreshed = False
        self._scan()

    def _scan(self) -> None:
        self.known.clear()
        self.unhashed = []
        for entry in self.catalog.items():
            value = self.cached(entry)
            if value:
                self.known.setdefault(value.lower(), entry)
            else:
                self.unhashed.append(entry)

    def cached(self, entry: Any) -> str | None:
        value = entry.light_metadata.get("sshs_model_hash")
        if isinstance(value, str) and value:
            return value[:12]
        cache = getattr(self.catalog, "hash_cache", None)
        if cache is None:
            return None
        kind = "addnet" if entry.format == "safetensors" else "sha256"
        value = cache.cached(entry.path, f"{self.catalog.kind}/{entry.name}", kind)
        return value[:12] if value else None

    def find(self, shorthash: str) -> Any:
        shorthash = shorthash.lower()
        if shorthash in self.known:
            return self.known[shorthash]
        budget = _HASH_BUDGET_BYTES
        while self.unhashed and budget > 0:
            entry = self.unhashed.pop(0)
            budget -= entry.size
            value = self.catalog.shorthash(entry)
            if value:
                self.known.setdefault(value.lower(), entry)
                if value.lower() == shorthash:
                    return entry
        if not self.refreshed:  # the file may have been dropped in since the last listing
            self.refreshed = True
            if self.catalog.refresh():
                self._scan()
                return self.find(shorthash)
        return None


def _preferred_name(engine: Engine, catalog: Any, entry: Any) -> str:
    """The name the UI would insert for ``entry`` (setting ``lora_preferred_name``), if it resolves back to it."""
    if _option(engine, "lora_preferred_name", "Alias from file") == "Alias from file" and entry.alias:
        if not catalog.alias_forbidden(entry.alias) and catalog.get(entry.alias) is entry:
            return entry.alias
    return entry.name


def _fix_lora_names(engine: Engine, params: dict[str, Any], problems: list[str]) -> None:
    """``Lora hashes: "alias: hash"``: a ``<lora:alias:...>`` tag whose name is not a local file, or is one with
    another hash, is renamed to the local file with that hash (A1111's Lora ``infotext_pasted``). Tags that
    name no local file, by name or hash, are reported."""
    catalog = getattr(getattr(engine, "networks", None), "loras", None)
    if catalog is None:
        return
    from modules.networks.manager import infotext_name

    hashes = _parse_hash_list(params.get("Lora hashes") or "")
    lookup: _LoraHashes | None = None
    reported: set[str] = set()

    def replace(m: re.Match) -> str:
        nonlocal lookup
        name = m.group(2)
        wanted = hashes.get(infotext_name(name))
        local = catalog.get(name)
        if wanted is not None:
            if lookup is None:
                lookup = _LoraHashes(catalog)
            known = lookup.cached(local) if local is not None else None
            if local is None or (known is not None and known.lower() != wanted):
                found = lookup.find(wanted)
                if found is not None:
                    return f"<{m.group(1)}:{_preferred_name(engine, catalog, found)}"
        if local is None and catalog.get(name) is None and name not in reported:
            reported.add(name)
            by_hash = f" or with hash {wanted}" if wanted else ""
            problems.append(f"Lora {name!r}: no local Lora file by that name{by_hash}")
        return m.group(0)

    for key in ("Prompt", "Negative prompt", "Hires prompt", "Hires negative prompt"):
        text = params.get(key)
        if isinstance(text, str) and "<l" in text:
            params[key] = _re_lora_tag.sub(replace, text)


def _run_callbacks(callbacks: Any, text: str, params: dict[str, Any], problems: list[str]) -> None:
    if callbacks is None:
        return
    failures = getattr(callbacks, "failures", None)  # the registry records a failing callback, not raises
    seen = {id(f) for f in failures} if failures is not None else set()
    try:
        callbacks.run("infotext_pasted", text, params)
    except Exception as exc:  # an extension's bug must not lose the paste
        problems.append(f"infotext_pasted callback failed: {type(exc).__name__}: {exc}")
    for failure in list(failures) if failures is not None else ():
        if id(failure) not in seen and getattr(failure, "kind", None) == "infotext_pasted":
            problems.append(f"infotext_pasted callback {failure.name} failed: {failure.error}")


# ------------------------------------------------------------------------------------------------ fields


def _normalize_samplers(fields: dict[str, Any], problems: list[str]) -> None:
    """Canonical sampler/schedule names; unknown names are reported and left out. The schedule shows as the
    infotext names it (``DPM++ 2M Karras`` selects Karras), even when it is the sampler's default: A1111 shows
    "Automatic" there, which users read as "the schedule was lost"; the pictures are the same."""
    sampler = None
    if "sampler_name" in fields:
        sampler = samplers.find_sampler(fields["sampler_name"])
        if sampler is None:
            problems.append(f"Sampler: {fields.pop('sampler_name')!r} is not a sampler here")
        else:
            fields["sampler_name"] = sampler.name
    if "scheduler" in fields:
        schedule = samplers.find_schedule(fields["scheduler"])
        if schedule is None:
            problems.append(f"Schedule type: {fields.pop('scheduler')!r} is not a schedule type here")
        else:
            fields["scheduler"] = schedule.label
    for key, find, what in (("hr_sampler_name", samplers.find_sampler, "Hires sampler"),
                            ("hr_scheduler", samplers.find_schedule, "Hires schedule type")):
        if fields.get(key) is None:
            continue
        found = find(fields[key])
        if found is None:
            problems.append(f"{what}: {fields.pop(key)!r} is not available here")
        else:
            fields[key] = getattr(found, "label", None) or found.name


def _indexed(params: dict[str, Any], key: str, choices: tuple[str, ...], problems: list[str]) -> int | None:
    value = params.get(key)
    if value is None:
        return None
    for i, choice in enumerate(choices):
        if str(value).lower() == choice.lower():
            return i
    problems.append(f"{key}: {value!r} is not one of {', '.join(choices)}")
    return None


def _check_field(name: str, value: Any) -> str | None:
    """The request's own bounds for one field (the rest at defaults): the reason it is refused, or None."""
    req = GenerationRequest()
    try:
        setattr(req, name, value)
        if name.startswith("hr_"):
            req.enable_hr = True
        req.validate()
    except RequestError as exc:
        return exc.message
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


def _map_fields(engine: Engine, params: dict[str, Any], fields: dict[str, Any], is_img2img: bool,
                problems: list[str]) -> dict[str, Any]:
    """request_from_infotext's fields completed for the tab: empty texts, batch size, styles, canonical sampler
    names, radio indices, the hires/seed-extra switches; fields outside the request's bounds are reported."""
    fields = dict(fields)
    for key, name in _TEXT_FIELDS.items():
        if params.get(key) == "":
            fields[name] = ""
    if "Batch size" in params:
        try:
            fields["batch_size"] = int(float(params["Batch size"]))
        except (TypeError, ValueError):
            problems.append(f"Batch size: cannot read {params['Batch size']!r}")
    if "Styles array" in params:
        fields["styles"] = list(params["Styles array"])
    _normalize_samplers(fields, problems)
    if "hr_upscaler" in fields:
        upscalers = getattr(engine, "upscalers", None)
        if upscalers is not None and not upscalers.exists(fields["hr_upscaler"]):
            problems.append(f"Hires upscaler: {fields.pop('hr_upscaler')!r} is not available here")
    if "refiner_checkpoint" in fields:  # A1111 pastes the local checkpoint the title names
        registry = getattr(engine, "checkpoints", None)
        found = registry.get_closest(str(fields["refiner_checkpoint"])) if registry is not None else None
        if found is None:
            problems.append(f"Refiner: no local checkpoint {fields.pop('refiner_checkpoint')!r}")
        else:
            fields["refiner_checkpoint"] = found.title
    # The seed extras are off unless the infotext has them (A1111's "Extra" checkbox follows them).
    fields.setdefault("subseed_strength", 0.0)
    fields.setdefault("seed_resize_from_w", 0)
    fields.setdefault("seed_resize_from_h", 0)

    if is_img2img:
        fill = _indexed(params, "Masked content", INPAINTING_FILL, problems)
        if fill is not None:
            fields["inpainting_fill"] = fill
        mode = _indexed(params, "Resize mode", RESIZE_MODES, problems)
        if mode is not None:
            fields["resize_mode"] = mode
        drop = _TXT2IMG_ONLY
    else:
        fields.setdefault("enable_hr", False)
        for name, same in _USE_SAME.items():
            if params.get(INFOTEXT_KEY_OF_FIELD[name]) == same:
                fields[name] = None
        drop = _IMG2IMG_ONLY
    fields = {k: v for k, v in fields.items() if k not in drop and k != "tiling"}

    for name in list(fields):
        if fields[name] is None or name in ("styles", "prompt", "negative_prompt", "hr_prompt", "hr_negative_prompt"):
            continue
        reason = _check_field(name, fields[name])
        if reason is not None:
            problems.append(f"{INFOTEXT_KEY_OF_FIELD.get(name, name)}: {reason}")
            del fields[name]
    return fields


# ------------------------------------------------------------------------------------------------ settings


def _cast_setting(info: Any, value: Any) -> Any:
    """An infotext string in the option's type (A1111's ``opts.cast_value``), then checked like any setting."""
    kind = info.kind
    if kind is bool:
        value = value if isinstance(value, bool) else str(value) == "True"
    elif kind is int:
        value = int(float(value))
    elif kind is float:
        value = float(value)
    elif kind is str or kind is None:
        value = str(value)
    return check_value(info, value)


def _resolve_checkpoint(engine: Engine, params: dict[str, Any], problems: list[str]) -> str | None:
    """``Model hash`` (then the ``Model`` name, exactly) → the title of a local checkpoint; hashes are the cached
    ones (a checkpoint is hashed when it is loaded), as in A1111."""
    registry = getattr(engine, "checkpoints", None)
    model_hash = str(params.get("Model hash") or "").strip()
    model_name = str(params.get("Model") or "").strip()
    if registry is None or not (model_hash or model_name):
        return None
    if model_hash:
        info = registry.get_closest(model_hash)
        if info is not None:
            return info.title
    if model_name:
        for info in registry.list():
            if model_name in (info.name_for_extra, info.model_name, info.name):
                if model_hash and info.shorthash and not model_hash.lower().startswith(info.shorthash.lower()) \
                        and info.shorthash.lower() != model_hash.lower():
                    problems.append(f"Model: {model_name!r} found by name, but its hash {info.shorthash} "
                                    f"is not the infotext's {model_hash}")
                return info.title
    described = f"hash {model_hash}" if model_hash else "that name"
    named = f" ({model_name})" if model_name and model_hash else (f" {model_name!r}" if model_name else "")
    problems.append(f"Model hash: no local checkpoint with {described}{named}")
    return None


def _map_settings(engine: Engine, params: dict[str, Any], overrides: dict[str, Any], fields: dict[str, Any],
                  problems: list[str]) -> dict[str, Any]:
    """Settings named by the infotext: request_from_infotext's overrides, then every other option whose
    definition names an infotext key (the options table), cast and checked."""
    options = getattr(engine, "options", None)
    pending: dict[str, tuple[str, Any]] = {}  # setting key -> (infotext key, raw value)
    for key, value in overrides.items():
        pending[key] = (INFOTEXT_KEY_OF_SETTING.get(key, key), value)
    if options is not None:
        for info in options.infos():
            if info.infotext and info.key not in pending and info.infotext in params:
                pending[info.key] = (info.infotext, params[info.infotext])
    # Clip skip is a request field here and a setting in A1111: one value, checked (and reported) once as a field
    pending.pop("CLIP_stop_at_last_layers", None)
    if "clip_skip" in fields:
        pending["CLIP_stop_at_last_layers"] = ("Clip skip", fields["clip_skip"])
    if params.get("Model"):  # a checkpoint named without a hash still resolves by its name
        pending.setdefault("sd_model_checkpoint", ("Model", params["Model"]))

    settings: dict[str, Any] = {}
    for key, (source, value) in pending.items():
        if key == "sd_model_checkpoint":
            title = _resolve_checkpoint(engine, params, problems)
            if title is not None:
                settings[key] = title
            continue
        if key == "sd_vae":
            vaes = getattr(engine, "vaes", None)
            choices = vaes.choices() if vaes is not None else []
            if value not in choices:
                problems.append(f"VAE: {value!r} is not a VAE here")
                continue
        if options is None:
            settings[key] = value
            continue
        try:
            settings[key] = _cast_setting(options.info(key), value)
        except (TypeError, ValueError) as exc:
            problems.append(f"{source}: {exc}")
    return settings


def _override_settings(engine: Engine, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings whose pasted value differs from the current one (A1111's "Override settings")."""
    out = {}
    for key, value in settings.items():
        if key == "sd_model_checkpoint":
            if _option(engine, "disable_weights_auto_swap", True):
                continue
            loaded = getattr(getattr(engine, "checkpoint_info", None), "title", None)
            if value in (loaded, _option(engine, key)):
                continue
        elif value == _option(engine, key, object()):
            continue
        out[key] = value
    return out


# ------------------------------------------------------------------------------------------------ entry point


def _parse(engine: Engine, text: str) -> dict[str, Any]:
    mode = _option(engine, "infotext_styles", "Apply if any")
    style_db = getattr(engine, "styles", None)
    styles = style_db.styles if style_db is not None and mode != "Ignore" else None
    params = infotext_mod.parse_generation_parameters(text, _option(engine, "infotext_skip_pasting", None) or (),
                                                      styles=styles)
    if mode == "Discard":  # the style text is removed, the styles are not selected
        params.pop("Styles array", None)
    elif mode == "Apply" and styles is not None:  # the selection follows the infotext even when it has none
        params.setdefault("Styles array", [])
    return params


def paste_fields(engine: Engine, infotext: str | None, is_img2img: bool, *, callbacks: Any = None) -> PasteResult:
    """Pasted infotext → field values for the txt2img (``is_img2img`` False) or img2img tab.

    Empty text pastes the last generation (``params.txt``), as A1111's paste button does. A bare prompt (no
    parameter line) pastes the prompt (and a ``Negative prompt:`` part) only. Nothing here changes a setting.
    ``callbacks``: the script layer's registry, whose ``infotext_pasted`` callbacks may edit the parameters.
    """
    result = PasteResult()
    text = infotext or ""
    if not text.strip():
        text = last_generation_infotext(engine)
        if not text.strip():
            result.problems.append("Nothing to paste: the text is empty and there is no last generation")
            return result
    result.has_parameters = _has_parameter_line(text)
    try:
        params = _parse(engine, text)
    except Exception as exc:  # the parser is lenient; this would be a bug, but the page must keep working
        result.problems.append(f"Cannot read the infotext: {type(exc).__name__}: {exc}")
        return result
    problems = result.problems
    _addnet_to_tags(params)
    _fix_lora_names(engine, params, problems)
    _run_callbacks(callbacks, text, params, problems)
    result.params = params

    if not result.has_parameters:
        result.fields["prompt"] = str(params.get("Prompt", ""))
        if params.get("Negative prompt"):
            result.fields["negative_prompt"] = str(params["Negative prompt"])
        if params.get("Styles array"):
            result.fields["styles"] = list(params["Styles array"])
        return result

    fields, overrides, found = request_from_infotext(params)
    problems.extend(found)
    result.fields = _map_fields(engine, params, fields, is_img2img, problems)
    result.settings = _map_settings(engine, params, overrides, result.fields, problems)
    result.override_settings = _override_settings(engine, result.settings)
    return result


def field_names(is_img2img: bool) -> Iterable[str]:
    """The request fields a paste may set on that tab (for building target maps)."""
    names = set(INFOTEXT_KEY_OF_FIELD) | {"batch_size", "styles", "inpainting_fill", "resize_mode", "enable_hr",
                                          "inpaint_full_res", "inpainting_mask_invert"}
    names.discard("tiling")
    return sorted(names - (_TXT2IMG_ONLY if is_img2img else _IMG2IMG_ONLY))
