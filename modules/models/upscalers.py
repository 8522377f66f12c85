"""Upscalers (Extras tab, hires fix, SD upscale) and latent upscale modes, as AUTOMATIC1111 v1.10.1 has them.

- Built-ins "None", "Lanczos", "Nearest".
- Model upscalers: files the user drops in models/ESRGAN, models/RealESRGAN, models/SwinIR, models/DAT
  (.pth/.pt/.safetensors), run with the optional PyPI package ``spandrel`` (architecture detection),
  tiled for big images. Without spandrel they are still listed, and using one raises
  ``UpscalerUnavailable`` saying so. spandrel is installed without torchvision (which would bring
  another torch build): see ``import_spandrel``.
- Latent modes for hires fix: ``LATENT_UPSCALE_MODES`` / ``upscale_latent``.
- ``run_extras``: the Extras tab's upscale step.
"""
from __future__ import annotations

import importlib.util
import logging
import math
import re
import sys
import threading
import types
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from modules.core.img2img_ops import LANCZOS, resize_image

log = logging.getLogger(__name__)

NEAREST = Image.Resampling.NEAREST

# name -> (torch interpolate mode, antialias); order = the API's and the UI's.
LATENT_UPSCALE_MODES: dict[str, tuple[str, bool]] = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}

# Folder under the models root -> the family reported as model_name.
MODEL_FAMILIES = ("ESRGAN", "RealESRGAN", "SwinIR", "DAT")
MODEL_EXTENSIONS = (".pth", ".pt", ".safetensors")
# A1111's display names for the files its own downloads create, so that infotext such as
# "Hires upscaler: R-ESRGAN 4x+" finds the same file here. Any other file is listed by its stem.
KNOWN_MODEL_NAMES = {
    "realesr-general-x4v3": "R-ESRGAN General 4xV3",
    "realesr-general-wdn-x4v3": "R-ESRGAN General WDN 4xV3",
    "realesr-animevideov3": "R-ESRGAN AnimeVideo",
    "RealESRGAN_x4plus": "R-ESRGAN 4x+",
    "RealESRGAN_x4plus_anime_6B": "R-ESRGAN 4x+ Anime6B",
    "RealESRGAN_x2plus": "R-ESRGAN 2x+",
    "SwinIR_4x": "SwinIR 4x",
    "003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN": "SwinIR 4x",
    "DAT_x2": "DAT x2",
    "DAT_x3": "DAT x3",
    "DAT_x4": "DAT x4",
}
# A1111's settings ESRGAN_tile / ESRGAN_tile_overlap (same defaults for SwinIR and DAT).
DEFAULT_TILE_SIZE = 192
DEFAULT_TILE_OVERLAP = 8


class UpscalerUnavailable(RuntimeError):
    """A listed upscaler that cannot run here (spandrel missing, or the file failed to load)."""


def is_latent_upscaler(name: str | None) -> bool:
    return name in LATENT_UPSCALE_MODES


def latent_upscale_modes_for_api() -> list[dict]:
    """``GET /sdapi/v1/latent-upscale-modes``."""
    return [{"name": name} for name in LATENT_UPSCALE_MODES]


def upscale_latent(latents: torch.Tensor, mode_name: str, width: int, height: int,
                   vae_scale_factor: int = 8) -> torch.Tensor:
    """Resize latents [B, C, h, w] to the latent size of a ``width`` x ``height`` image
    (``height // f``, ``width // f``) with the named mode's ``torch.nn.functional.interpolate`` settings
    (align_corners left at its default). Computed in float32 and returned in the input's dtype."""
    try:
        mode, antialias = LATENT_UPSCALE_MODES[mode_name]
    except KeyError:
        raise ValueError(f"unknown latent upscale mode {mode_name!r}; "
                         f"expected one of {list(LATENT_UPSCALE_MODES)}") from None
    size = (height // vae_scale_factor, width // vae_scale_factor)
    out = F.interpolate(latents.float(), size=size, mode=mode, antialias=antialias)
    return out.to(latents.dtype)


@runtime_checkable
class Upscaler(Protocol):
    name: str
    scale: float

    def upscale(self, image: Image.Image, scale: float) -> Image.Image: ...

    def upscale_to(self, image: Image.Image, width: int, height: int) -> Image.Image: ...


def _dest_size(image: Image.Image, scale: float) -> tuple[int, int]:
    """A1111's target for ``upscale(image, scale)``: each side times scale, rounded down to a multiple of 8
    (falling back to the plain product, at least 1, for sides that would round to 0)."""
    def side(n: int) -> int:
        exact = n * scale
        return int(exact // 8 * 8) or max(int(exact), 1)
    return side(image.width), side(image.height)


class BaseUpscaler:
    """The upscale loop that A1111 shares among its upscalers: up to three passes of ``do_upscale`` until
    the image reaches the target (``_dest_size``: sides rounded down to multiples of 8) or stops growing,
    then Lanczos to exactly that size."""

    name: str = "None"
    scale: float = 4  # what /sdapi/v1/upscalers reports (A1111's default for the built-ins)
    model_name: str | None = None
    model_path: str | None = None

    def do_upscale(self, image: Image.Image, scale: float) -> Image.Image:
        return image

    def upscale(self, image: Image.Image, scale: float) -> Image.Image:
        dest = _dest_size(image, scale)
        for _ in range(3):
            before = image.size
            image = self.do_upscale(image, scale)
            if image.size == before or (image.width >= dest[0] and image.height >= dest[1]):
                break
        if image.size != dest:
            image = image.resize(dest, resample=LANCZOS)
        return image

    def upscale_to(self, image: Image.Image, width: int, height: int) -> Image.Image:
        """Exactly ``width`` x ``height`` (stretching): this upscaler when the image grows, then Lanczos,
        as A1111's img2img/hires resize with a named upscaler."""
        return resize_image(0, image, width, height, upscale=self.upscale)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class NoneUpscaler(BaseUpscaler):
    """"None": no model; ``upscale`` still brings the image to the target size with Lanczos, as A1111's."""
    name = "None"

    def upscale_to(self, image: Image.Image, width: int, height: int) -> Image.Image:
        return resize_image(0, image, width, height)


class LanczosUpscaler(BaseUpscaler):
    name = "Lanczos"

    def do_upscale(self, image: Image.Image, scale: float) -> Image.Image:
        return image.resize((int(image.width * scale), int(image.height * scale)), resample=LANCZOS)


class NearestUpscaler(BaseUpscaler):
    name = "Nearest"

    def do_upscale(self, image: Image.Image, scale: float) -> Image.Image:
        return image.resize((int(image.width * scale), int(image.height * scale)), resample=NEAREST)


# ---- model upscalers -------------------------------------------------------------------------------

def spandrel_available() -> bool:
    return importlib.util.find_spec("spandrel") is not None


SPANDREL_MISSING = ("the Python package 'spandrel' is not installed, so model upscalers (ESRGAN, "
                    "RealESRGAN, SwinIR, DAT files) cannot run; install it into the web UI's environment "
                    "with `pip install --no-deps spandrel einops`")

# Only spandrel's face-restoration (RestoreFormer) and inpainting (LaMa) architectures import
# torchvision, at module level, and `import spandrel` imports every architecture. torchvision is not
# installed here (its wheels pin one torch build), so those two names get stand-ins while spandrel is
# imported; they are removed again right after, so no other library ever sees a torchvision module.
_TORCHVISION_NAMES = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
_spandrel_import_lock = threading.Lock()


def _torchvision_stand_in() -> dict[str, types.ModuleType]:
    def unavailable(*_args: Any, **_kwargs: Any) -> Any:
        raise UpscalerUnavailable("this model architecture needs torchvision, which this web UI does not install")

    root = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.normalize = unavailable  # type: ignore[attr-defined]
    functional.rotate = unavailable  # type: ignore[attr-defined]
    functional.InterpolationMode = type("InterpolationMode", (), {})  # type: ignore[attr-defined]
    root.transforms = transforms  # type: ignore[attr-defined]
    transforms.functional = functional  # type: ignore[attr-defined]
    return dict(zip(_TORCHVISION_NAMES, (root, transforms, functional)))


def import_spandrel() -> types.ModuleType:
    """``import spandrel``, with torchvision stand-ins when torchvision is missing (see above)."""
    with _spandrel_import_lock:
        if "spandrel" in sys.modules or importlib.util.find_spec("torchvision") is not None:
            import spandrel
            return spandrel
        stand_ins = _torchvision_stand_in()
        sys.modules.update(stand_ins)
        try:
            import spandrel
        finally:
            for name, module in stand_ins.items():
                if sys.modules.get(name) is module:
                    del sys.modules[name]
        return spandrel

# loader(path, device) -> a model: callable on [1, 3, h, w] RGB in [0, 1], returning [1, 3, h*s, w*s].
ModelLoaderFn = Callable[[Path, torch.device], Any]


def spandrel_loader(path: Path, device: torch.device) -> Any:
    """Load an image-to-image model file with spandrel (architecture detected from the weights)."""
    spandrel = import_spandrel()
    descriptor = spandrel.ModelLoader(device=device).load_from_file(str(path))
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise UpscalerUnavailable(f"{path.name} is not an image-to-image model")
    descriptor.eval()
    return descriptor


def _device_dtype(model: Any) -> tuple[torch.device, torch.dtype]:
    device, dtype = getattr(model, "device", None), getattr(model, "dtype", None)
    if isinstance(device, torch.device) and isinstance(dtype, torch.dtype):
        return device, dtype
    module = model if isinstance(model, torch.nn.Module) else getattr(model, "model", None)
    if isinstance(module, torch.nn.Module):
        for p in module.parameters():
            return p.device, p.dtype
    return torch.device("cpu"), torch.float32


def _tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, max(tile - overlap, 1)))
    starts.append(length - tile)
    return starts


def _edge_weights(n: int, ramp_start: bool, ramp_end: bool, ramp: int) -> torch.Tensor:
    """1 inside, a linear ramp (never 0) over ``ramp`` pixels at the ends that meet another tile."""
    w = torch.ones(n)
    ramp = min(ramp, n)
    if ramp > 0:
        r = torch.arange(1, ramp + 1, dtype=torch.float32) / (ramp + 1)
        if ramp_start:
            w[:ramp] = torch.minimum(w[:ramp], r)
        if ramp_end:
            w[n - ramp:] = torch.minimum(w[n - ramp:], r.flip(0))
    return w


def tiled_apply(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile_size: int,
                tile_overlap: int) -> torch.Tensor:
    """Run an upscaling ``fn`` over ``x`` [1, C, H, W] in tiles of ``tile_size`` px overlapping by
    ``tile_overlap`` px, blending the overlaps with linear ramps; the output is put together on the CPU
    in float32, so only one tile at a time occupies the model's device. ``tile_size <= 0``, or an image
    that fits one tile, runs in one call. The model's scale is read from the first tile's output."""
    _, _, h, w = x.shape
    if tile_size <= 0 or (h <= tile_size and w <= tile_size):
        return fn(x).float().cpu()
    th, tw = min(tile_size, h), min(tile_size, w)
    overlap = max(0, min(tile_overlap, min(th, tw) // 2))
    out = weight = None
    scale = 1
    for y in _tile_starts(h, th, overlap):
        for x0 in _tile_starts(w, tw, overlap):
            o = fn(x[:, :, y:y + th, x0:x0 + tw]).float().cpu()
            if out is None:
                scale = o.shape[-1] // tw
                if scale < 1 or o.shape[-1] != tw * scale or o.shape[-2] != th * scale:
                    raise ValueError(f"tile {tw}x{th} came back {o.shape[-1]}x{o.shape[-2]}: "
                                     "not an integer upscale")
                out = torch.zeros(1, o.shape[1], h * scale, w * scale)
                weight = torch.zeros(1, 1, h * scale, w * scale)
            m = (_edge_weights(th * scale, y > 0, y + th < h, overlap * scale)[:, None]
                 * _edge_weights(tw * scale, x0 > 0, x0 + tw < w, overlap * scale)[None, :])
            ys, xs = slice(y * scale, (y + th) * scale), slice(x0 * scale, (x0 + tw) * scale)
            out[:, :, ys, xs] += o * m
            weight[:, :, ys, xs] += m
    return out / weight


def upscale_with_model(model: Any, image: Image.Image, *, tile_size: int = DEFAULT_TILE_SIZE,
                       tile_overlap: int = DEFAULT_TILE_OVERLAP) -> Image.Image:
    """One pass of an image model (native scale) over an RGB image, tiled, on the model's device/dtype.

    Differs from A1111, which hands spandrel models BGR tensors: spandrel's models take RGB (as their
    original inference code, which converts OpenCV's BGR to RGB first), and so does this."""
    device, dtype = _device_dtype(model)
    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    x = torch.from_numpy(arr).permute(2, 0, 1)[None]

    def run(tile: torch.Tensor) -> torch.Tensor:
        return model(tile.to(device=device, dtype=dtype))

    with torch.inference_mode():
        out = tiled_apply(run, x, tile_size, tile_overlap)
    out = (out[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(out, "RGB")


def guess_scale(stem: str, default: int = 4) -> int:
    """The scale a file name announces ("4x-UltraSharp", "RealESRGAN_x2plus", "ESRGAN_4x"), else ``default``."""
    m = re.search(r"(?<![a-z0-9])(\d{1,2})x|x(\d{1,2})(?!\d)", stem, re.IGNORECASE)
    if m:
        value = int(m.group(1) or m.group(2))
        if value >= 1:
            return value
    return default


class ModelUpscaler(BaseUpscaler):
    """A model file; loaded on first use (kept until ``unload``), run tiled by ``upscale_with_model``."""

    def __init__(self, name: str, path: Path, family: str, *, loader: ModelLoaderFn | None,
                 device: torch.device, tile_size: int = DEFAULT_TILE_SIZE,
                 tile_overlap: int = DEFAULT_TILE_OVERLAP):
        self.name = name
        self.path = Path(path)
        self.model_name = family
        self.model_path = str(self.path)
        self.scale = guess_scale(self.path.stem)
        self.loader = loader
        self.device = device
        self.tile_size = tile_size
        self.tile_overlap = tile_overlap
        self._model = None
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self.loader is not None

    def load(self) -> Any:
        with self._lock:
            if self._model is None:
                if self.loader is None:
                    raise UpscalerUnavailable(f"upscaler {self.name!r}: {SPANDREL_MISSING}")
                try:
                    model = self.loader(self.path, self.device)
                except UpscalerUnavailable:
                    raise
                except Exception as e:  # a broken or unsupported file: say which
                    raise UpscalerUnavailable(f"upscaler {self.name!r} ({self.path}): {_load_error_text(e)}") from e
                scale = getattr(model, "scale", None)
                if isinstance(scale, (int, float)) and scale >= 1:
                    self.scale = scale
                self._model = model
            return self._model

    def unload(self) -> None:
        with self._lock:
            self._model = None

    def do_upscale(self, image: Image.Image, scale: float) -> Image.Image:
        return upscale_with_model(self.load(), image, tile_size=self.tile_size, tile_overlap=self.tile_overlap)


def _load_error_text(exc: Exception) -> str:
    if str(exc):
        return str(exc)
    if type(exc).__name__ == "UnsupportedModelError":  # spandrel's, raised without a message
        return "not a model architecture that spandrel knows"
    return type(exc).__name__


def _default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


class UpscalerRegistry:
    """The built-ins plus the model files found under each models root's ESRGAN/RealESRGAN/SwinIR/DAT
    folder (searched recursively; A1111's ``--esrgan-models-path`` and its kin can be given as
    ``extra_dirs={"ESRGAN": [path], ...}``). Names are unique: a file whose name is taken gets
    " (<family>)" appended, then a number.

    ``models_dirs`` is one models root or a list of them. ``loader`` defaults to spandrel when it is
    installed; without it the files are listed and ``missing_reason`` says why they cannot run."""

    def __init__(self, models_dirs: Path | str | Iterable[Path | str] = (), *,
                 extra_dirs: Mapping[str, Sequence[Path]] | None = None,
                 device: torch.device | str | None = None, loader: ModelLoaderFn | None = None,
                 tile_size: int = DEFAULT_TILE_SIZE, tile_overlap: int = DEFAULT_TILE_OVERLAP):
        if isinstance(models_dirs, (str, Path)):
            models_dirs = [models_dirs]
        self.models_dirs = [Path(d) for d in models_dirs]
        self.extra_dirs = {k: [Path(p) for p in v] for k, v in (extra_dirs or {}).items()}
        self.device = torch.device(device) if device is not None else _default_device()
        if loader is None and spandrel_available():
            loader = spandrel_loader
        self.loader = loader
        self.tile_size = tile_size
        self.tile_overlap = tile_overlap
        self._upscalers: dict[str, BaseUpscaler] = {}
        self._added: dict[str, BaseUpscaler] = {}  # registered by extensions; kept by refresh()
        self.refresh()

    def add(self, upscaler: BaseUpscaler) -> None:
        """List ``upscaler`` (an extension's) after the built-ins and model files, from now on."""
        self._added[upscaler.name] = upscaler
        self._upscalers.setdefault(upscaler.name, upscaler)

    @property
    def missing_reason(self) -> str | None:
        return None if self.loader is not None else SPANDREL_MISSING

    def _model_files(self) -> list[tuple[str, Path]]:
        found: list[tuple[str, Path]] = []
        seen: set[Path] = set()
        for family in MODEL_FAMILIES:
            dirs = [root / family for root in self.models_dirs] + self.extra_dirs.get(family, [])
            for d in dirs:
                if not d.is_dir():
                    continue
                for p in sorted(d.rglob("*")):
                    if p.is_file() and p.suffix.lower() in MODEL_EXTENSIONS and p.resolve() not in seen:
                        seen.add(p.resolve())
                        found.append((family, p))
        return found

    def refresh(self) -> None:
        """Rescan the folders; loaded models of files still present are kept."""
        old = self._upscalers
        ups: dict[str, BaseUpscaler] = {u.name: u for u in (NoneUpscaler(), LanczosUpscaler(), NearestUpscaler())}
        for family, path in self._model_files():
            name = KNOWN_MODEL_NAMES.get(path.stem, path.stem)
            if name in ups:
                base = f"{name} ({family})"
                name, n = base, 2
                while name in ups:
                    name, n = f"{base} {n}", n + 1
            prev = old.get(name)
            if isinstance(prev, ModelUpscaler) and prev.path == path and prev.loader is self.loader:
                ups[name] = prev
                continue
            ups[name] = ModelUpscaler(name, path, family, loader=self.loader, device=self.device,
                                      tile_size=self.tile_size, tile_overlap=self.tile_overlap)
        for name, added in self._added.items():
            ups.setdefault(name, added)
        self._upscalers = ups
        if self.loader is None and len(ups) > 3:
            log.warning("%d upscaler model file(s) found but %s", len(ups) - 3, SPANDREL_MISSING)

    def list(self) -> list[BaseUpscaler]:
        return list(self._upscalers.values())

    def names(self) -> list[str]:
        return list(self._upscalers)

    def __contains__(self, name: object) -> bool:
        return name in self._upscalers

    def get(self, name: str) -> BaseUpscaler:
        try:
            return self._upscalers[name]
        except KeyError:
            raise KeyError(f"could not find upscaler named {name!r}; available: {self.names()}") from None

    def exists(self, name: str) -> bool:
        """Whether ``name`` is a hires upscaler: a latent mode or a listed upscaler."""
        return is_latent_upscaler(name) or name in self._upscalers

    def hr_choices(self) -> list[str]:
        """The hires fix upscaler choices in A1111's order: the latent modes, then the upscalers."""
        return [*LATENT_UPSCALE_MODES, *self._upscalers]

    def upscale_to(self, image: Image.Image, name: str | None, width: int, height: int) -> Image.Image:
        """Hires fix / img2img resize with a named (non-latent) upscaler: exactly ``width`` x ``height``,
        via ``img2img_ops.resize_image(0, ...)`` with ``for_resize(name)``."""
        return resize_image(0, image, width, height, self.for_resize(name))

    def for_resize(self, name: str | None) -> Callable[[Image.Image, float], Image.Image] | None:
        """The ``upscale`` argument of ``img2img_ops.resize_image`` for an upscaler name: None for
        "None"/empty (plain Lanczos, as A1111), else that upscaler's ``upscale``."""
        if not name or name == "None":
            return None
        return self.get(name).upscale

    def upscalers_for_api(self) -> list[dict]:
        """``GET /sdapi/v1/upscalers``."""
        return [{"name": u.name, "model_name": u.model_name, "model_path": u.model_path, "model_url": None,
                 "scale": u.scale} for u in self._upscalers.values()]


# ---- Extras ------------------------------------------------------------------------------------------

def _extras_upscale(image: Image.Image, upscaler: BaseUpscaler, *, resize_mode: int, scale: float,
                    width: int, height: int, crop: bool) -> Image.Image:
    image = upscaler.upscale(image, scale)
    if resize_mode == 1 and crop:
        if image.width < width or image.height < height:
            # A1111 pastes as it is and leaves black bands when the multiple-of-8 rounding fell short.
            s = max(width / image.width, height / image.height)
            image = image.resize((math.ceil(image.width * s), math.ceil(image.height * s)), resample=LANCZOS)
        canvas = Image.new("RGB", (width, height))
        canvas.paste(image, box=(width // 2 - image.width // 2, height // 2 - image.height // 2))
        image = canvas
    return image


def run_extras(image: Image.Image, *, resize_mode: int = 0, upscaling_resize: float = 2,
               upscaling_resize_w: int = 512, upscaling_resize_h: int = 512, upscaling_crop: bool = True,
               upscaler_1: str | None = "None", upscaler_2: str | None = "None",
               extras_upscaler_2_visibility: float = 0, registry: UpscalerRegistry | None = None,
               info: dict | None = None) -> Image.Image:
    """The Extras tab's upscale (spec 9.5 fields), on an RGB copy of ``image``.

    - ``upscaler_1`` "None" (or empty): the image is returned unchanged, as in A1111.
    - ``resize_mode`` 0: scale by ``upscaling_resize``; the size is each side times the factor rounded
      down to a multiple of 8 (A1111's upscaler loop). 1: scale by max(w / W, h / H) to cover
      ``upscaling_resize_w`` x ``upscaling_resize_h``; with ``upscaling_crop`` centre-cropped to exactly
      that size (differs from A1111: no black bands when the rounding falls short), without it the
      covering image is returned.
    - ``upscaler_2`` with visibility > 0: the same upscale with it, blended over the first
      (``Image.blend``: first * (1 - v) + second * v).
    ``info``, when given, gets A1111's "Postprocess ..." infotext entries. Unknown names raise KeyError.
    """
    registry = registry or UpscalerRegistry()
    image = image.convert("RGB")
    if not upscaler_1 or upscaler_1 == "None":
        return image
    first = registry.get(upscaler_1)
    second = registry.get(upscaler_2) if upscaler_2 and upscaler_2 != "None" else None
    if resize_mode not in (0, 1):
        raise ValueError(f"resize_mode must be 0 (by factor) or 1 (to size), got {resize_mode!r}")
    info = info if info is not None else {}
    if resize_mode == 1:
        scale = max(upscaling_resize_w / image.width, upscaling_resize_h / image.height)
        info["Postprocess upscale to"] = f"{upscaling_resize_w}x{upscaling_resize_h}"
    else:
        scale = upscaling_resize
        info["Postprocess upscale by"] = upscaling_resize
    kw = dict(resize_mode=resize_mode, scale=scale, width=upscaling_resize_w, height=upscaling_resize_h,
              crop=upscaling_crop)
    result = _extras_upscale(image, first, **kw)
    if resize_mode == 1 and upscaling_crop:
        info["Postprocess crop to"] = f"{result.width}x{result.height}"
    info["Postprocess upscaler"] = first.name
    if second is not None and extras_upscaler_2_visibility > 0:
        other = _extras_upscale(image, second, **kw)
        result = Image.blend(result, other.convert(result.mode), extras_upscaler_2_visibility)
        info["Postprocess upscaler 2"] = second.name
    return result
