"""The Extras tab's work ("postprocessing"): upscale one or many images with the engine's upscalers.

One function, :func:`run_postprocessing`, behind both the UI's Extras tab and the API's
``/sdapi/v1/extra-single-image`` and ``/extra-batch-images``. Like A1111:

- each image is converted to RGB and upscaled by ``upscalers.run_extras`` (spec 9.5 fields);
- its infotext is the ``Postprocess ...`` entries joined as ``Key: value, ...``; it is written to the
  image's ``postprocessing`` text chunk, next to the text chunks the input had (its ``parameters``
  survive);
- ``html_info`` is that text as HTML (A1111's ``plaintext_to_html``);
- the work holds the generation queue (model upscalers use the same device) and shows up in the job
  state as job ``extras``, one job per image; Interrupt stops after the current image.

Face restoration (GFPGAN/CodeFormer) does not exist in this app: a visibility above 0 changes nothing
and adds a warning, as A1111 does when the restorer is not set up.
"""
from __future__ import annotations

import html
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

from PIL import Image

from modules.core import image_files
from modules.core import infotext
from modules.core import request_bounds
from modules.models import upscalers
from modules.settings import output_paths
from modules.core.request import RequestError

if TYPE_CHECKING:
    from modules.engine.engine import Engine

log = logging.getLogger(__name__)

MAX_FACTOR = 8.0  # A1111's limit on upscaling_resize
MAX_SIDE = 16384  # a target side beyond this is a typo, not a wish
FACE_RESTORATION_MISSING = "face restoration (GFPGAN/CodeFormer) is not available in this web UI; skipped"


@dataclass
class ExtrasParams:
    """A1111's ``ExtrasBaseRequest`` fields (spec 9.5), with its defaults."""

    resize_mode: int = 0  # 0: by factor, 1: to width x height
    upscaling_resize: float = 2.0
    upscaling_resize_w: int = 512
    upscaling_resize_h: int = 512
    upscaling_crop: bool = True
    upscaler_1: str | None = "None"
    upscaler_2: str | None = "None"
    extras_upscaler_2_visibility: float = 0.0
    gfpgan_visibility: float = 0.0
    codeformer_visibility: float = 0.0
    codeformer_weight: float = 0.0
    upscale_first: bool = False

    def validate(self, registry: upscalers.UpscalerRegistry) -> None:
        """RequestError naming the field for anything out of range or unknown."""
        def check(ok: bool, name: str, message: str) -> None:
            if not ok:
                raise RequestError(name, message)

        check(self.resize_mode in (0, 1), "resize_mode", f"must be 0 (scale by) or 1 (scale to), got {self.resize_mode!r}")
        check(0 < self.upscaling_resize <= MAX_FACTOR, "upscaling_resize",
              f"must be above 0 and at most {MAX_FACTOR:g}, got {self.upscaling_resize!r}")
        for name in ("upscaling_resize_w", "upscaling_resize_h"):
            value = getattr(self, name)
            check(1 <= value <= MAX_SIDE, name, f"must be between 1 and {MAX_SIDE}, got {value!r}")
        for name in ("extras_upscaler_2_visibility", "gfpgan_visibility", "codeformer_visibility", "codeformer_weight"):
            value = getattr(self, name)
            check(0.0 <= value <= 1.0, name, f"must be between 0 and 1, got {value!r}")
        for name in ("upscaler_1", "upscaler_2"):
            value = getattr(self, name)
            check(not value or value in registry, name,
                  f"unknown upscaler {value!r}; choose one of {', '.join(registry.names())}")

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """An upper bound of the result's size for a ``width`` x ``height`` input (for the size limit)."""
        if not self.upscaler_1 or self.upscaler_1 == "None":
            return width, height
        if self.resize_mode == 1:
            if self.upscaling_crop:
                return self.upscaling_resize_w, self.upscaling_resize_h
            scale = max(self.upscaling_resize_w / width, self.upscaling_resize_h / height)
        else:
            scale = self.upscaling_resize
        return math.ceil(width * scale), math.ceil(height * scale)


@dataclass
class ExtrasResult:
    images: list[Image.Image]
    infotexts: list[str]  # one per image ("" when nothing was done)
    html_info: str  # the last image's infotext as HTML, as A1111 shows it
    warnings: list[str] = field(default_factory=list)
    saved_paths: list[str] = field(default_factory=list)
    interrupted: bool = False


def plaintext_to_html(text: str) -> str:
    """A1111's ``ui_common.plaintext_to_html``: escaped lines joined by ``<br>`` in one ``<p>``."""
    return "<p>" + "<br>\n".join(html.escape(line) for line in (text or "").split("\n")) + "</p>"


def format_info(info: dict[str, Any]) -> str:
    """``Key: value, ...`` with A1111's quoting; keys whose value is None are left out."""
    return ", ".join(k if k == v else f"{k}: {infotext.quote(v)}" for k, v in info.items() if v is not None)


def _source_text_items(image: Image.Image) -> dict[str, str]:
    """The text the input carried, to be kept on the output (its generation infotext included, from EXIF too)."""
    geninfo, items = image_files.read_info_from_image(image)
    kept = {k: v for k, v in items.items() if isinstance(k, str) and isinstance(v, str)}
    if geninfo:
        kept["parameters"] = geninfo
    return kept


def _max_pixels(engine: "Engine") -> float:
    try:
        return float(engine.options.get("img_max_size_mp")) * 1_000_000
    except (KeyError, TypeError, ValueError):
        return 200_000_000.0


class ExtrasScripts(Protocol):
    """The Extras scripts of extensions (A1111's ``scripts_postproc``), supplied by the script layer: they run
    around the built-in upscale step, in A1111's order, and add their entries to ``info``."""

    def run(self, image: Image.Image, upscale: Callable[[Image.Image, dict], Image.Image], info: dict) -> Image.Image: ...


def run_postprocessing(engine: "Engine", inputs: Sequence[tuple[Image.Image, str | None]], params: ExtrasParams,
                       *, save: bool = False, scripts: ExtrasScripts | None = None) -> ExtrasResult:
    """Upscale every ``(image, name)`` of ``inputs`` (with ``scripts`` around the upscale, when given); ``save``
    also writes them to the extras output folder.

    Raises RequestError (naming the field) before any work when a parameter or an input is unacceptable,
    e.g. a result that would be larger than the ``img_max_size_mp`` setting.
    """
    registry = engine.upscalers
    params.validate(registry)
    try:  # the request bounds, for the page's uploads as for the API's
        request_bounds.check_image_count(len(inputs))
        for image, _name in inputs:
            request_bounds.check_image_size(image.width, image.height)
    except request_bounds.BoundError as exc:
        raise RequestError("image", str(exc)) from None
    limit = _max_pixels(engine)
    for i, (image, _name) in enumerate(inputs):
        w, h = params.output_size(image.width, image.height)
        if w * h > limit:
            raise RequestError("upscaling_resize" if params.resize_mode == 0 else "upscaling_resize_w",
                               f"image {i} would become {w}x{h}, over the {limit / 1e6:g} megapixel limit "
                               "(setting img_max_size_mp)")

    warnings: list[str] = []
    if params.gfpgan_visibility > 0 or params.codeformer_visibility > 0:
        warnings.append(FACE_RESTORATION_MISSING)
        log.warning(FACE_RESTORATION_MISSING)

    state = engine.state
    outputs: list[Image.Image] = []
    texts: list[str] = []
    saved: list[str] = []
    interrupted = False
    with engine.exclusive():
        state.begin("extras", len(inputs))
        try:
            for image, name in inputs:
                if state.interrupted:
                    interrupted = True
                    break
                out, text = _process_one(engine, image, params, scripts)
                outputs.append(out)
                texts.append(text)
                if save:
                    saved.append(str(_save(engine, out, name, text)))
                state.next_job()
        finally:
            state.end()
    return ExtrasResult(images=outputs, infotexts=texts, html_info=plaintext_to_html(texts[-1] if texts else ""),
                        warnings=warnings, saved_paths=saved, interrupted=interrupted)


def _process_one(engine: "Engine", image: Image.Image, params: ExtrasParams,
                 scripts: ExtrasScripts | None = None) -> tuple[Image.Image, str]:
    kept = _source_text_items(image)
    info: dict[str, Any] = {}

    def upscale(img: Image.Image, into: dict) -> Image.Image:
        try:
            return upscalers.run_extras(
                img, resize_mode=params.resize_mode, upscaling_resize=params.upscaling_resize,
                upscaling_resize_w=params.upscaling_resize_w, upscaling_resize_h=params.upscaling_resize_h,
                upscaling_crop=params.upscaling_crop, upscaler_1=params.upscaler_1, upscaler_2=params.upscaler_2,
                extras_upscaler_2_visibility=params.extras_upscaler_2_visibility, registry=engine.upscalers, info=into)
        except KeyError as exc:  # validated above; a refresh in between can still remove a name
            raise RequestError("upscaler_1", str(exc.args[0] if exc.args else exc)) from None

    result = scripts.run(image, upscale, info) if scripts is not None else upscale(image, info)
    if result is image:
        result = image.copy()
    text = format_info(info)
    result.info = {}
    if engine.options.get("enable_pnginfo"):
        result.info.update(kept)
        if text:
            result.info["postprocessing"] = text
    return result, text


def _save(engine: "Engine", image: Image.Image, name: str | None, text: str) -> Any:
    opts = engine.options
    folder = opts.get("outdir_samples") or opts.get("outdir_extras_samples")
    directory = engine.paths.resolve(folder) if folder else engine.paths.extras_samples_dir
    directory = output_paths.confined(engine.paths, Path(directory))
    pattern = ""
    if name and opts.get("use_original_name_batch"):
        # A1111 keeps the original name; here it follows the number, which keeps files from overwriting each other.
        pattern = name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1].rsplit(".", 1)[0]
    fmt = opts.get("samples_format") or "png"
    if fmt not in ("png", "jpg", "jpeg", "webp"):
        fmt = "png"
    return image_files.save_image(image, directory, infotext=text or None, extension=fmt, basename_pattern=pattern,
                                  jpeg_quality=int(opts.get("jpeg_quality") or 80), pnginfo_key="postprocessing")
