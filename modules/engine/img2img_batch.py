"""img2img's Batch tab: every picture of a folder through the same img2img request, as A1111's does.

For each image of the input folder (sorted by name): the request's settings with that image as the init image,
its mask from the masks folder (same stem, else the folder's only picture), and, when asked, parameters read
from the image's own infotext (or the same-named file in a PNG info folder): the prompt is appended, the
others replace the form's values. Results go to the output folder as ``<input stem>.png`` (written atomically,
infotext kept), else to the usual img2img folder. One generation per picture: progress, interrupt and skip
work as for any run.
"""
from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from PIL import Image, UnidentifiedImageError

from modules.core.request import GenerationRequest, Processed, RequestError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".avif")
PNG_INFO_PROPS = ("Prompt", "Negative prompt", "Seed", "CFG scale", "Sampler", "Steps", "Model hash")


@dataclass
class BatchSpec:
    input_dir: str
    output_dir: str = ""
    mask_dir: str = ""
    use_png_info: bool = False
    png_info_dir: str = ""
    png_info_props: list[str] = field(default_factory=list)


def list_images(folder: str | os.PathLike) -> list[Path]:
    root = Path(folder)
    return sorted((p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                  key=lambda p: p.name.lower())


def _folder(value: str, field_name: str, *, must_exist: bool = True) -> Path | None:
    value = (value or "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if must_exist and not path.is_dir():
        raise RequestError(field_name, f"{value} is not a folder")
    return path


def find_mask(mask_dir: Path | None, image: Path, masks: list[Path]) -> Path | None:
    """The mask for ``image``: same stem in the masks folder, else the only mask there (A1111's rule)."""
    if mask_dir is None:
        return None
    same = [m for m in masks if m.stem == image.stem]
    if same:
        return same[0]
    return masks[0] if len(masks) == 1 else None


def apply_png_info(request: GenerationRequest, text: str, props: Iterable[str]) -> list[str]:
    """Copy the chosen parameters of infotext ``text`` into ``request``; returns the problems (for warnings)."""
    from modules.core import infotext, samplers

    props = set(props)
    params = infotext.parse_generation_parameters(text or "")
    problems: list[str] = []
    if "Prompt" in props and params.get("Prompt"):
        request.prompt = f"{request.prompt} {params['Prompt']}".strip()
    if "Negative prompt" in props and params.get("Negative prompt"):
        request.negative_prompt = f"{request.negative_prompt} {params['Negative prompt']}".strip()
    for prop, name, cast in (("Seed", "seed", int), ("CFG scale", "cfg_scale", float), ("Steps", "steps", int)):
        if prop in props and prop in params:
            try:
                setattr(request, name, cast(float(params[prop])) if cast is int else cast(params[prop]))
            except (TypeError, ValueError):
                problems.append(f"{prop}: cannot read {params[prop]!r}")
    if "Sampler" in props and params.get("Sampler"):
        sampler = samplers.find_sampler(params["Sampler"])
        if sampler is None:
            problems.append(f"Sampler: {params['Sampler']!r} is not a sampler here")
        else:
            request.sampler_name = sampler.name
            if params.get("Schedule type") and samplers.find_schedule(params["Schedule type"]) is not None:
                request.scheduler = samplers.find_schedule(params["Schedule type"]).label
    if "Model hash" in props and params.get("Model hash"):
        request.override_settings = {**request.override_settings, "sd_model_checkpoint": params["Model hash"]}
    return problems


def _open(path: Path, field_name: str) -> Image.Image:
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError) as exc:
        raise RequestError(field_name, f"{path.name}: cannot be read ({exc})") from None


def _save(image: Image.Image, text: str, folder: Path, stem: str, index: int, count: int) -> Path:
    from modules.core import fileio

    import io

    from PIL import PngImagePlugin

    name = f"{stem}.png" if count == 1 else f"{stem}-{index}.png"
    info = PngImagePlugin.PngInfo()
    if text:
        info.add_text("parameters", text)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", pnginfo=info)
    fileio.atomic_write_bytes(folder / name, buffer.getvalue())
    return folder / name


def run_batch(generate: Callable[[GenerationRequest], Processed], state: Any, base: GenerationRequest,
              spec: BatchSpec) -> Processed:
    """Run ``base`` (an img2img request without an image) on every picture of ``spec.input_dir``.

    ``generate``: how one request runs (the page passes ``ScriptHost.generate``, so scripts take part);
    ``state``: the engine's JobState (an Interrupt between two pictures stops the batch)."""
    from modules.core import image_files

    input_dir = _folder(spec.input_dir, "batch_input_dir")
    if input_dir is None:
        raise RequestError("batch_input_dir", "Batch: give the input folder")
    output_dir = _folder(spec.output_dir, "batch_output_dir", must_exist=False)
    mask_dir = _folder(spec.mask_dir, "batch_mask_dir")
    info_dir = _folder(spec.png_info_dir, "batch_png_info_dir")
    images = list_images(input_dir)
    if not images:
        raise RequestError("batch_input_dir", f"{input_dir} holds no pictures")
    masks = list_images(mask_dir) if mask_dir is not None else []
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)

    all_images, infotexts, seeds, subseeds, prompts, negatives, warnings, saved = [], [], [], [], [], [], [], []
    interrupted = False
    last: Processed | None = None
    for path in images:  # one id_task for all: the page's progress bar and partial results follow the batch
        if state.interrupted:
            interrupted = True
            break
        request = copy.copy(base)
        request.override_settings = dict(base.override_settings)
        request.init_images = [_open(path, "batch_input_dir").convert("RGB")]
        mask_path = find_mask(mask_dir, path, masks)
        request.mask = _open(mask_path, "batch_mask_dir").convert("L") if mask_path is not None else None
        if spec.use_png_info:
            source = (info_dir / path.name) if info_dir is not None else path
            text = ""
            if source.is_file():
                text, _ = image_files.read_info_from_image(_open(source, "batch_png_info_dir"))
            warnings += [f"{path.name}: {p}" for p in apply_png_info(request, text or "", spec.png_info_props)]
        if output_dir is not None:
            request.do_not_save_samples = True
            request.do_not_save_grid = True
        processed = generate(request)
        last = processed
        for i, (image, text) in enumerate(zip(processed.images, processed.infotexts)):
            if output_dir is not None:
                saved.append(str(_save(image, text, output_dir, path.stem, i, len(processed.images))))
        all_images += processed.images
        infotexts += processed.infotexts
        seeds += processed.seeds
        subseeds += processed.subseeds
        prompts += processed.prompts
        negatives += processed.negative_prompts
        warnings += processed.warnings
        saved += processed.saved_paths
        if processed.interrupted:
            interrupted = True
            break
    return Processed(images=all_images, infotexts=infotexts, seeds=seeds, subseeds=subseeds, prompts=prompts,
                     negative_prompts=negatives, request=base, seed=last.seed if last else base.seed,
                     subseed=last.subseed if last else base.subseed, info=dict(last.info) if last else {},
                     warnings=warnings, saved_paths=saved, interrupted=interrupted)
