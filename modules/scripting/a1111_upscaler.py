"""What A1111's ``modules.upscaler`` and ``modules.face_restoration`` hold: the base classes extensions subclass to
add an upscaler or a face restorer, and how what they add reaches this app.

An extension's upscaler is an ``Upscaler`` subclass whose ``__init__(dirname)`` fills ``self.scalers`` with
``UpscalerData`` (A1111 makes one of every subclass at start-up). After the scripts are imported,
:func:`register_extension_upscalers` makes each such subclass once and adds every ``UpscalerData`` to the Engine's
upscaler registry, so it is listed in ``/sdapi/v1/upscalers``, the Extras and hires choices and
``shared.sd_upscalers``, and Extras / hires fix call its ``scaler.upscale(img, scale, data_path)``.

Face restorers are ``FaceRestoration`` objects that extensions append to ``shared.face_restorers`` (a list kept per
Engine). This app ships none (no GFPGAN/CodeFormer): :func:`restore_faces` hands the picture back unchanged when
no restorer of the chosen name is registered."""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from PIL import Image

from modules.models.upscalers import BaseUpscaler
from modules.scripting import runtime

if TYPE_CHECKING:
    from modules.engine.engine import Engine

log = logging.getLogger(__name__)

LANCZOS = Image.Resampling.LANCZOS
NEAREST = Image.Resampling.NEAREST


def _option(engine: "Engine | None", key: str, default: Any) -> Any:
    if engine is None:
        return default
    try:
        value = engine.options.get(key)
    except (KeyError, AttributeError):
        return default
    return default if value is None else value


class Upscaler:
    """A1111's upscaler base: ``do_upscale(img, selected_model)`` is the subclass's one step; ``upscale`` repeats it
    (up to three times) until the picture reaches the target, then resizes to it exactly with Lanczos."""

    name: str | None = None
    model_path: str | None = None
    model_name: str | None = None
    model_url: str | None = None
    enable = True
    filter: Any = None
    model: Any = None
    user_path: str | None = None
    scalers: list = []
    tile = True

    def __init__(self, create_dirs: bool = False) -> None:
        engine = runtime.current(required=False)
        self.mod_pad_h = None
        self.tile_size = int(_option(engine, "ESRGAN_tile", 192))
        self.tile_pad = int(_option(engine, "ESRGAN_tile_overlap", 8))
        self.device = engine.devices.device if engine is not None else "cpu"
        self.img = None
        self.output = None
        self.scale = 1
        self.half = False
        self.pre_pad = 0
        self.mod_scale = None
        self.model_download_path = None
        if self.model_path is None and self.name and engine is not None:
            self.model_path = os.path.join(str(engine.paths.models_dir), self.name)
        if self.model_path and create_dirs:
            os.makedirs(self.model_path, exist_ok=True)
        self.can_tile = True

    def do_upscale(self, img: Image.Image, selected_model: Any) -> Image.Image:
        raise NotImplementedError(f"{type(self).__name__} does not define do_upscale")

    def load_model(self, path: str) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define load_model")

    def upscale(self, img: Image.Image, scale: float, selected_model: Any = None) -> Image.Image:
        self.scale = scale
        dest_w = int((img.width * scale) // 8 * 8)
        dest_h = int((img.height * scale) // 8 * 8)
        for _ in range(3):
            if img.width >= dest_w and img.height >= dest_h:
                break
            before = img.size
            img = self.do_upscale(img, selected_model)
            if img.size == before:
                break
        if img.size != (dest_w, dest_h):
            img = img.resize((dest_w, dest_h), resample=LANCZOS)
        return img

    def find_models(self, ext_filter: Any = None) -> list[str]:
        """The model files under ``model_path`` and ``user_path`` (with one of ``ext_filter``'s endings)."""
        found: list[str] = []
        for root in (self.model_path, self.user_path):
            if not root or not os.path.isdir(root):
                continue
            for dirpath, _dirs, files in os.walk(root):
                for name in sorted(files):
                    if ext_filter is None or any(name.lower().endswith(e.lower()) for e in ext_filter):
                        found.append(os.path.join(dirpath, name))
        return found

    def update_status(self, prompt: str) -> None:
        log.info("extension: %s", prompt)


class UpscalerData:
    name: str | None = None
    data_path: str | None = None
    scale: int = 4
    scaler: Upscaler | None = None
    model: Any = None

    def __init__(self, name: str, path: str | None, upscaler: Upscaler | None = None, scale: int = 4,
                 model: Any = None, sha256: str | None = None) -> None:
        self.name = name
        self.data_path = path
        self.local_data_path = path
        self.scaler = upscaler
        self.scale = scale
        self.model = model
        self.sha256 = sha256

    def __repr__(self) -> str:
        return f"<UpscalerData name={self.name} path={self.data_path} scale={self.scale}>"


class ExtensionUpscaler(BaseUpscaler):
    """One ``UpscalerData`` of an extension in the Engine's registry: its scaler does the upscale."""

    def __init__(self, data: UpscalerData) -> None:
        self.data = data
        self.name = str(data.name)
        self.scale = data.scale
        self.model_path = data.data_path

    def upscale(self, image: Image.Image, scale: float) -> Image.Image:
        return self.data.scaler.upscale(image, scale, self.data.data_path)


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


def register_extension_upscalers(engine: "Engine") -> None:
    """Make each extension ``Upscaler`` subclass once and list its ``scalers`` in the Engine's registry."""
    state = runtime.engine_state(engine)
    made: set[type] = state.setdefault("upscaler_classes", set())
    for cls in _subclasses(Upscaler):
        if cls in made:
            continue
        made.add(cls)
        try:
            with runtime.using(engine):
                try:
                    scaler = cls(None)  # A1111 passes the --<name>-models-path value (None without it)
                except TypeError:
                    scaler = cls()
        except Exception:  # noqa: BLE001 - one extension's upscaler must not stop the others
            log.exception("Upscaler %s of an extension could not be made; not listed", cls.__name__)
            continue
        if not getattr(scaler, "enable", True):
            continue
        for data in list(getattr(scaler, "scalers", []) or []):
            if data.scaler is None:
                data.scaler = scaler
            engine.upscalers.add(ExtensionUpscaler(data))


# --- face restoration ---------------------------------------------------------------------------------------
class FaceRestoration:
    def name(self) -> str:
        return "None"

    def restore(self, np_image: Any) -> Any:
        return np_image


def face_restorers(engine: "Engine") -> list:
    """``shared.face_restorers``: what extensions registered on this Engine (the app ships none)."""
    return runtime.engine_state(engine).setdefault("face_restorers", [])


def restore_faces(np_image: Any) -> Any:
    """The registered restorer named by the ``face_restoration_model`` setting (the first one when unset) applied
    to ``np_image``; the picture unchanged when none is registered."""
    engine = runtime.current()
    wanted = _option(engine, "face_restoration_model", None)
    restorers = [r for r in face_restorers(engine) if wanted is None or r.name() == wanted]
    if not restorers:
        return np_image
    return restorers[0].restore(np_image)
