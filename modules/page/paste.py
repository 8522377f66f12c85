"""Gradio glue for pasting infotext: the prompt's paste button, PNG Info's and the results' "Send to" buttons.

The work is :func:`modules.infotext_paste.paste_fields`; this module reads the source (text or image), turns
the result into one ``gr.update`` per target component (in the value form that component takes), switches tabs
and copies the image. Nothing here changes a setting: settings from the infotext go to an ``override_settings``
target (A1111's "Override settings", applied per request), as A1111 does.
"""
from __future__ import annotations

import html
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import gradio as gr
from PIL import Image, UnidentifiedImageError

from modules.core import image_files
from modules.page import overrides as override_chips
from modules.page.infotext_paste import PasteResult, paste_fields

if TYPE_CHECKING:
    from modules.engine.engine import Engine

__all__ = ["ImageInfoError", "open_image", "read_generation_parameters", "connect_paste", "paste_updates",
           "problems_text"]

OVERRIDE_KEY = "override_settings"
@dataclass(frozen=True, eq=False)
class PastedParam:
    """A target key for a script's ``infotext_fields`` entry (A1111): the infotext key whose value the component
    takes, or a function of the parsed parameters giving it (None leaves the component as it is)."""

    source: Any

    def value(self, params: Mapping[str, Any]) -> Any:
        return self.source(params) if callable(self.source) else params.get(self.source)

    def __str__(self) -> str:
        return self.source if isinstance(self.source, str) else getattr(self.source, "__name__", "script field")


REFINER_KEY = "refiner_enable"  # the Refiner accordion's checkbox: on when the infotext names a refiner
SEED_EXTRAS_KEY = "seed_extras"  # A1111's "Extra" checkbox by the seed: on when the infotext has the extras
# Request value None = "same as the first pass"; the UI shows it as this choice.
_NONE_CHOICES = {"hr_sampler_name": "Use same sampler", "hr_scheduler": "Use same scheduler"}


class ImageInfoError(ValueError):
    """An image that cannot be read; the message is for the page."""


def _payload_path(payload: Any) -> str | None:
    """The file path in a Gradio image payload (a FileData dict or object, or a path)."""
    if isinstance(payload, (str, os.PathLike)):
        return os.fspath(payload)
    if isinstance(payload, Mapping):
        path = payload.get("path")
        return str(path) if path else None
    path = getattr(payload, "path", None)
    return str(path) if path else None


def open_image(payload: Any) -> Image.Image | None:
    """A PIL image from a PIL image, numpy array, path or Gradio FileData payload; None for no image.

    Raises :class:`ImageInfoError` with a readable reason when the file is not an image PIL can read.
    """
    if payload is None:
        return None
    if isinstance(payload, Image.Image):
        return payload
    if hasattr(payload, "__array_interface__"):
        return Image.fromarray(payload)
    path = _payload_path(payload)
    if path is None:
        return None
    name = os.path.basename(path)
    try:
        image = Image.open(path)
    except UnidentifiedImageError:
        raise ImageInfoError(f"{name}: not an image format that can be read (PNG, JPEG and WEBP can)") from None
    except Image.DecompressionBombError as exc:
        raise ImageInfoError(f"{name}: too large to open ({exc})") from None
    except OSError as exc:
        raise ImageInfoError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    return image


def read_generation_parameters(image: Any) -> tuple[str, dict[str, Any]]:
    """``(infotext, other info items)`` of an image (PIL image, path or Gradio payload), as the PNG Info tab shows.

    PNG ``parameters`` chunks, JPEG/WEBP EXIF ``UserComment`` and NovelAI PNGs are read (``read_info_from_image``).
    ("", {}) for no image. Raises :class:`ImageInfoError` when the file is not a readable image; a file whose
    pixel data is damaged still gives the info found before the damage.
    """
    opened = open_image(image)
    if opened is None:
        return "", {}
    damaged = None
    # PNG text chunks after the pixel data are only read by load(); A1111 writes "parameters" before it, and
    # other formats keep their EXIF in the header, so most images are never decoded here.
    if opened.format == "PNG" and "parameters" not in (opened.info or {}):
        try:
            opened.load()
        except Exception as exc:  # truncated or corrupt pixel data: what the header held is still worth showing
            damaged = exc
    try:
        text, items = image_files.read_info_from_image(opened)
    except Exception as exc:
        raise ImageInfoError(f"cannot read the image's info: {type(exc).__name__}: {exc}") from None
    if damaged is not None and not text and not items:
        raise ImageInfoError(f"the image data is damaged ({damaged})")
    return text or "", items


# ------------------------------------------------------------------------------------------------ values


def _choice_values(component: Any) -> list[Any]:
    return [c[1] if isinstance(c, (tuple, list)) else c for c in (getattr(component, "choices", None) or [])]


def _label(component: Any, key: str) -> str:
    return str(getattr(component, "label", None) or key)


def _in_range(component: Any, value: float) -> bool:
    low, high = getattr(component, "minimum", None), getattr(component, "maximum", None)
    return (low is None or value >= low) and (high is None or value <= high)


def _choice(component: Any, key: str, value: Any, problems: list[str]) -> tuple[bool, Any]:
    values = _choice_values(component)
    by_index = getattr(component, "type", "value") == "index" or (value not in values and values and
                                                                   all(isinstance(v, str) for v in values))
    if by_index and isinstance(value, (bool, int)):  # request fields hold A1111's radio indices
        if 0 <= int(value) < len(values):
            return True, values[int(value)]
        problems.append(f"{_label(component, key)}: choice {int(value)} does not exist")
        return False, None
    if getattr(component, "multiselect", False):
        wanted = list(value) if isinstance(value, (list, tuple)) else [value]
        missing = [v for v in wanted if v not in values]
        if missing and not getattr(component, "allow_custom_value", False):
            problems.append(f"{_label(component, key)}: {', '.join(map(repr, missing))} not found here")
            wanted = [v for v in wanted if v in values]
        return True, wanted
    if value in values or getattr(component, "allow_custom_value", False):
        return True, value
    for choice in values:  # "euler a" and "Euler a" are the same sampler to a user
        if isinstance(choice, str) and str(value).lower() == choice.lower():
            return True, choice
    problems.append(f"{_label(component, key)}: {value!r} is not one of the choices here")
    return False, None


def _component_value(component: Any, key: str, value: Any, problems: list[str]) -> tuple[bool, Any]:
    """``(use it, value)`` in the form ``component`` takes; a value it cannot take is reported, not sent."""
    if value is None:
        label = _NONE_CHOICES.get(key)
        if label is not None and label in _choice_values(component):
            return True, label
        return False, None
    try:
        if isinstance(component, gr.Checkbox):
            return True, value if isinstance(value, bool) else str(value) == "True"
        if isinstance(component, (gr.Slider, gr.Number)):
            number = float(value)
            if not _in_range(component, number):
                low, high = getattr(component, "minimum", None), getattr(component, "maximum", None)
                problems.append(f"{_label(component, key)}: {value} is outside {low}..{high}")
                return False, None
            precise = isinstance(component, gr.Number) and component.precision == 0
            return True, int(number) if (precise or isinstance(value, int)) and number.is_integer() else number
        if isinstance(component, (gr.Dropdown, gr.Radio)):
            return _choice(component, key, value, problems)
        if isinstance(component, gr.CheckboxGroup):
            return True, list(value) if isinstance(value, (list, tuple)) else [value]
        if isinstance(component, (gr.Textbox, gr.Code)):
            return True, str(value)
    except (TypeError, ValueError):
        problems.append(f"{_label(component, key)}: cannot take {value!r}")
        return False, None
    return True, value


def _update(component: Any, use: bool, value: Any) -> Any:
    if isinstance(component, gr.State):  # a State output takes the value itself
        return value if use else gr.skip()
    return gr.update(value=value) if use else gr.update()


def paste_updates(result: PasteResult, targets: Mapping[str, Any], engine: "Engine" = None) -> tuple[list[Any], list[str]]:
    """One update per target (in ``targets`` order) and the problems found while fitting values to components.

    A target keyed by a request field gets ``result.fields``; ``"override_settings"`` gets
    ``result.override_settings``; a target keyed by a setting (a top-bar control) gets its value only when
    it is in ``override_settings`` (the checkpoint only with ``disable_weights_auto_swap`` off, as in A1111);
    ``"seed_extras"`` (the seed's "Extra" checkbox) is ticked when the infotext has a variation seed or seed resize.
    """
    problems: list[str] = []
    updates = []
    for key, component in targets.items():
        if key == OVERRIDE_KEY and isinstance(component, gr.Dropdown):  # the chips row
            updates.append(override_chips.update(engine, result.override_settings))
            continue
        if key == OVERRIDE_KEY:
            use, value = True, dict(result.override_settings)
        elif key == SEED_EXTRAS_KEY and "subseed_strength" in result.fields:
            f = result.fields
            use = True
            value = "subseed" in f or f.get("seed_resize_from_w", 0) > 0 or f.get("seed_resize_from_h", 0) > 0
        elif isinstance(key, PastedParam):
            found = key.value(result.params) if result.has_parameters else None
            use, value = (False, None) if found is None else _component_value(component, str(key), found, problems)
        elif key == REFINER_KEY and result.has_parameters:
            use, value = True, "refiner_checkpoint" in result.fields
        elif key in result.fields:
            use, value = _component_value(component, key, result.fields[key], problems)
        elif key in result.override_settings:
            use, value = _component_value(component, key, result.override_settings[key], problems)
        else:
            use, value = False, None
        updates.append(_update(component, use, value))
    return updates, problems


def problems_text(problems: Sequence[str], component: Any = None) -> str:
    """Problems as the status component shows them ("" for none)."""
    if not problems:
        return ""
    if isinstance(component, gr.HTML):
        lines = "".join(f"<li>{html.escape(p)}</li>" for p in problems)
        return f"<div class='paste-problems'><p>Pasted, except:</p><ul>{lines}</ul></div>"
    if isinstance(component, gr.Markdown):
        return "Pasted, except:\n" + "\n".join(f"- {p}" for p in problems)
    return "Pasted, except:\n" + "\n".join(problems)


def _image_value(target: Any, path: Any) -> Any:
    if isinstance(target, gr.ImageEditor):
        return {"background": path, "layers": [], "composite": path}
    if isinstance(target, gr.Gallery):
        return [path]
    return path


# ------------------------------------------------------------------------------------------------ wiring


def connect_paste(
    button: Any,
    source: Any,
    targets: Mapping[str, Any],
    engine: Engine,
    is_img2img: bool,
    *,
    callbacks: Any = None,
    tabs: Any = None,
    tab_id: str | None = None,
    image_source: Any = None,
    image_target: Any = None,
    status: Any = None,
    extra_tabs: Sequence[tuple[Any, str]] = (),
    paste_last_when_empty: bool = False,
) -> Any:
    """On ``button`` click: read the infotext from ``source`` (a Textbox, or an Image whose file holds it),
    paste it into ``targets`` (keys: GenerationRequest field names, ``"override_settings"``, setting keys), select
    ``tab_id`` in ``tabs`` (and each ``(tabs, id)`` of ``extra_tabs``, e.g. img2img's Inpaint sub-tab), copy the
    image of ``image_source`` into ``image_target`` and write the problems to ``status``. Returns the event.

    ``paste_last_when_empty``: an empty source pastes the last generation (``params.txt``), as A1111's paste
    button next to the prompt does; off for "Send to" buttons, where an empty source pastes nothing.
    Inputs are taken unprocessed: an unreadable image gives a message in ``status``, never an error dialog.
    """
    targets = dict(targets)
    inputs = [source] + ([image_source] if image_source is not None else [])
    outputs = list(targets.values())
    if tabs is not None and tab_id is not None:
        outputs.append(tabs)
    outputs += [t for t, _ in extra_tabs]
    if image_source is not None and image_target is not None:
        outputs.append(image_target)
    if status is not None:
        outputs.append(status)

    def on_click(text_or_image: Any, image: Any = None) -> list[Any]:
        problems: list[str] = []
        if isinstance(text_or_image, str) or text_or_image is None:
            text = text_or_image or ""
        else:
            try:
                text, _items = read_generation_parameters(text_or_image)
            except ImageInfoError as exc:
                problems.append(str(exc))
                text = None
        if text is not None and not text.strip() and targets and not paste_last_when_empty:
            from_image = not (isinstance(text_or_image, str) or text_or_image is None)
            problems.append("The image has no generation parameters" if from_image else "Nothing to paste")
            text = None
        if text is None or not targets:  # nothing to fill (send to extras copies the image only)
            updates = [_update(c, False, None) for c in targets.values()]
        else:
            result = paste_fields(engine, text, is_img2img, callbacks=callbacks)
            updates, fitting = paste_updates(result, targets, engine)
            problems = result.problems + fitting
        if tabs is not None and tab_id is not None:
            updates.append(gr.update(selected=tab_id))
        updates += [gr.update(selected=tid) for _, tid in extra_tabs]
        if image_source is not None and image_target is not None:
            path = _payload_path(image) if not isinstance(image, Image.Image) else image
            updates.append(gr.update(value=_image_value(image_target, path)) if path is not None else gr.update())
        if status is not None:
            updates.append(problems_text(problems, status))
        return updates

    return button.click(on_click, inputs=inputs, outputs=outputs, preprocess=False, show_progress="hidden",
                        api_visibility="private")
