"""What A1111's module globals are, for the running Engine: the objects behind ``modules.shared``,
``modules.devices``, ``modules.paths``, ``modules.sd_models``, ``modules.sd_vae``.

Each ``resolve_*`` function takes an Engine and answers the A1111-shaped object; the facades call them from
their module ``__getattr__`` with :func:`modules.scripting.runtime.current`. Nothing here is global: objects
that must stay the same between reads (``opts``, ``options_templates``) are kept per Engine.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable, Iterator

from modules.scripting import runtime
from modules.scripting.a1111_options import OptsView, _Templates

if TYPE_CHECKING:
    from modules.engine.engine import Engine


# --- settings, flags, job state ---------------------------------------------------------------------

def resolve_opts(engine: "Engine") -> OptsView:
    state = runtime.engine_state(engine)
    view = state.get("opts")
    if view is None or view._options is not engine.options:
        view = state["opts"] = OptsView(engine.options, state.setdefault("a1111_infos", {}), engine)
    return view


def resolve_options_templates(engine: "Engine") -> _Templates:
    state = runtime.engine_state(engine)
    if "templates" not in state:
        state["templates"] = _Templates(lambda: resolve_opts(engine))
    return state["templates"]


class CmdOpts:
    """``shared.cmd_opts``: the launch flags; a flag this app does not define reads as None (A1111 extensions
    read flags their own ``preload.py`` adds, which may not have run here)."""

    def __init__(self, args: Any, paths: Any = None) -> None:
        object.__setattr__(self, "_args", args)
        object.__setattr__(self, "_paths", paths)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = getattr(self._args, name, None)
        if value is None and self._paths is not None and name in _PATH_FLAGS:
            value = _PATH_FLAGS[name](self._paths)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._args, name, value)

    def __contains__(self, name: str) -> bool:
        return hasattr(self._args, name)

    def __repr__(self) -> str:
        return f"CmdOpts({self._args!r})"


def _existing(path: Any) -> str | None:
    return str(path) if path is not None and Path(path).exists() else None


# Flags A1111 always fills with a default folder or file (extensions read them unguarded); an unset one reads as
# the folder or file this app uses. Files only when they exist (an extension serves them as they are).
_PATH_FLAGS: dict[str, Callable[[Any], Any]] = {
    "data_dir": lambda p: str(p.data_dir),
    "models_dir": lambda p: str(p.models_dir),
    "ckpt_dir": lambda p: str(p.sd_models_dir),
    "embeddings_dir": lambda p: str(p.embeddings_dirs[0]) if p.embeddings_dirs else None,
    "hypernetwork_dir": lambda p: str(p.hypernetwork_dirs[0]) if p.hypernetwork_dirs else None,
    "lora_dir": lambda p: str(p.lora_dirs[0]) if p.lora_dirs else None,
    "vae_dir": lambda p: str(p.vae_dirs[0]) if p.vae_dirs else None,
    "ui_settings_file": lambda p: _existing(p.config_file),
    "ui_config_file": lambda p: _existing(p.ui_config_file),
}


def resolve_cmd_opts(engine: "Engine") -> CmdOpts:
    return CmdOpts(engine.args, engine.paths)


class StateView:
    """``shared.state``: the Engine's job state with A1111's extra names (``nextjob``, ``current_image``...)."""

    def __init__(self, state: Any) -> None:
        object.__setattr__(self, "_state", state)

    def __getattr__(self, name: str) -> Any:
        if name == "current_image":
            return self._state.current_preview
        if name == "current_image_sampling_step":
            return self._state.current_preview_step
        if name in ("server_start", "time_start"):
            return getattr(self._state, "time_start", None)
        if name in ("current_latent", "server_command", "processing_has_refined_job_count"):
            return None
        return getattr(self._state, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "current_image":
            name = "current_preview"
        setattr(self._state, name, value)

    def begin(self, job: str = "(unknown)", job_count: int = 0, **_: Any) -> None:
        self._state.begin(job, job_count)

    def end(self) -> None:
        self._state.end()

    def nextjob(self) -> None:
        self._state.next_job()

    def set_current_image(self) -> None:
        """A1111 decodes a live preview here; this app's sampler makes its own."""

    def assign_current_image(self, image: Any) -> None:
        self._state.current_preview = image

    def interrupt(self) -> None:
        self._state.interrupt()

    def skip(self) -> None:
        self._state.skip()

    def dict(self) -> dict[str, Any]:
        return self._state.dict()


def resolve_state(engine: "Engine") -> StateView:
    return StateView(engine.state)


class TotalTqdm:
    """``shared.total_tqdm``: A1111's console progress bar over a whole job; the app shows its own progress."""

    def update(self) -> None:
        pass

    def updateTotal(self, new_total: int) -> None:  # noqa: N802 - A1111's name
        pass

    def clear(self) -> None:
        pass

    def reset(self) -> None:
        pass


# --- the model ----------------------------------------------------------------------------------------

class SdModelView:
    """``shared.sd_model``: the loaded diffusers model with A1111's descriptive attributes.

    What it cannot give is A1111's ldm module tree (``sd_model.model.diffusion_model``): that attribute is
    the diffusers UNet here, so code that walks ldm block names finds nothing."""

    def __init__(self, engine: "Engine", model: Any) -> None:
        object.__setattr__(self, "_engine", engine)
        object.__setattr__(self, "_model", model)

    @property
    def sd_checkpoint_info(self) -> Any:
        return self._engine.checkpoint_info

    @property
    def sd_model_checkpoint(self) -> str | None:
        info = self._engine.checkpoint_info
        return info.filename if info is not None else None

    @property
    def sd_model_hash(self) -> str | None:
        info = self._engine.checkpoint_info
        return info.shorthash if info is not None else None

    is_sdxl = property(lambda self: self._model.family in ("sdxl", "sdxl-refiner"))  # A1111: has a conditioner
    is_sd2 = property(lambda self: self._model.family == "sd2")
    is_sd1 = property(lambda self: self._model.family == "sd1")
    is_sd3 = property(lambda self: False)
    is_ssd = property(lambda self: False)
    parameterization = property(lambda self: "v" if self._model.prediction_type == "v_prediction" else "eps")
    cond_stage_key = "txt"
    model = property(lambda self: SimpleNamespace(diffusion_model=self._model.unet))
    first_stage_model = property(lambda self: self._model.vae)
    device = property(lambda self: self._engine.devices.device)
    dtype = property(lambda self: self._engine.devices.dtype)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)  # extensions tag the model; kept on this view only

    def __bool__(self) -> bool:
        return True


def resolve_sd_model(engine: "Engine") -> SdModelView | None:
    """The loaded model (loading the selected checkpoint if none is: A1111's ``shared.sd_model`` does too)."""
    if engine.model is None:
        try:
            engine.ensure_model()
        except Exception:  # noqa: BLE001 - no checkpoint loads: A1111 answers None then too
            return None
    state = runtime.engine_state(engine)
    view = state.get("sd_model")
    if view is None or view._model is not engine.model:
        view = state["sd_model"] = SdModelView(engine, engine.model)
    return view


class ModelData:
    """``sd_models.model_data``."""

    def __init__(self, engine: "Engine") -> None:
        self._engine = engine

    @property
    def sd_model(self) -> Any:
        return resolve_sd_model(self._engine)

    def get_sd_model(self) -> Any:
        return resolve_sd_model(self._engine)

    def set_sd_model(self, model: Any, already_loaded: bool = False) -> None:
        raise RuntimeError("sd_models.model_data.set_sd_model: this app loads models itself (use "
                           "sd_models.reload_model_weights(info=...))")

    @property
    def loaded_sd_models(self) -> list:
        model = resolve_sd_model(self._engine)
        return [model] if model is not None else []


def checkpoints_list(engine: "Engine") -> dict[str, Any]:
    return {info.title: info for info in engine.available_checkpoints()}


def checkpoint_aliases(engine: "Engine") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for info in engine.available_checkpoints():
        for alias in (info.title, info.name, info.name_for_extra, info.model_name, info.short_title,
                      info.shorthash, info.sha256):
            if alias:
                out.setdefault(alias, info)
    return out


def reload_model_weights(engine: "Engine", sd_model: Any = None, info: Any = None, forced_reload: bool = False) -> Any:
    """Load ``info`` (a CheckpointInfo or a name) or the selected checkpoint; returns the model view."""
    if info is not None:
        target = info if hasattr(info, "filename") else engine.resolve_checkpoint(str(info))
        engine.select_checkpoint(target.title)
    if forced_reload:
        engine.reload_checkpoint()
    engine.ensure_model()
    return resolve_sd_model(engine)


# --- devices ------------------------------------------------------------------------------------------

def resolve_device_attr(engine: "Engine", name: str) -> Any:
    import torch

    cfg = engine.devices
    table = {"device": cfg.device, "device_interrogate": cfg.device, "device_gfpgan": cfg.device,
             "device_esrgan": cfg.device, "device_codeformer": cfg.device, "cpu": torch.device("cpu"),
             "dtype": cfg.dtype, "dtype_vae": cfg.vae_dtype, "dtype_unet": cfg.dtype,
             "dtype_inference": cfg.dtype, "unet_needs_upcast": False, "fp8": False}
    if name not in table:
        raise AttributeError(f"module 'modules.devices' has no attribute {name!r}")
    return table[name]


@contextlib.contextmanager
def autocast(disable: bool = False) -> Iterator[None]:
    """A1111's ``devices.autocast()``: this app runs each model in its own dtype; nothing to switch."""
    yield


@contextlib.contextmanager
def without_autocast(disable: bool = False) -> Iterator[None]:
    yield


# --- paths --------------------------------------------------------------------------------------------

def resolve_path_attr(engine: "Engine", name: str) -> str:
    paths = engine.paths
    table = {
        "script_path": paths.repo_root, "data_path": paths.data_dir, "models_path": paths.models_dir,
        "extensions_dir": paths.extensions_dir, "extensions_builtin_dir": paths.extensions_builtin_dir,
        "config_states_dir": Path(paths.data_dir) / "config_states",
        "default_output_dir": paths.outputs_dir, "sd_model_file": Path(paths.repo_root) / "model.ckpt",
        "sd_default_config": Path(paths.repo_root) / "configs" / "v1-inference.yaml",
        "sd_configs_path": Path(paths.repo_root) / "configs", "cwd": os.getcwd(),
    }
    if name not in table:
        raise AttributeError(f"module 'modules.paths' has no attribute {name!r}")
    return str(table[name])


# --- small helpers A1111 keeps in shared ----------------------------------------------------------------

def walk_files(path: str, allowed_extensions: Any = None) -> Iterator[str]:
    """Every file under ``path`` (sorted per folder), optionally only with the given extensions."""
    if not os.path.exists(path):
        return
    wanted = {e.lower() for e in allowed_extensions} if allowed_extensions is not None else None
    for root, dirs, files in os.walk(path, followlinks=True):
        dirs.sort()
        for filename in sorted(files):
            if wanted is not None and os.path.splitext(filename)[1].lower() not in wanted:
                continue
            yield os.path.join(root, filename)


class UpscalerEntry:
    """One of ``shared.sd_upscalers``: A1111's ``UpscalerData`` (``name``, ``scaler.upscale(img, scale, path)``)."""

    def __init__(self, upscaler: Any) -> None:
        self.name = upscaler.name
        self.data_path = str(getattr(upscaler, "path", "") or "")
        self.scale = 4
        self.model = None
        self.scaler = SimpleNamespace(upscale=lambda img, scale, path=None: upscaler.upscale(img, scale),
                                      name=upscaler.name)
        self._upscaler = upscaler


def _face_restorers(engine: "Engine") -> list:
    from modules.scripting.a1111_upscaler import face_restorers

    return face_restorers(engine)


def resolve_sd_upscalers(engine: "Engine") -> list[Any]:
    from modules.scripting.a1111_upscaler import ExtensionUpscaler

    return [u.data if isinstance(u, ExtensionUpscaler) else UpscalerEntry(u) for u in engine.upscalers.list()]


def _shared_items(name: str) -> Callable[[Any], Any]:
    """A1111 1.5's ``shared.list_checkpoint_tiles`` / ``refresh_checkpoints``, now in ``shared_items``."""
    def resolve(engine: "Engine") -> Any:
        from modules.scripting import a1111_misc

        return getattr(a1111_misc, name)
    return resolve


SHARED_RESOLVERS: dict[str, Callable[[Any], Any]] = {
    "list_checkpoint_tiles": _shared_items("list_checkpoint_tiles"),
    "refresh_checkpoints": _shared_items("refresh_checkpoints"),
    "opts": resolve_opts,
    "options_templates": resolve_options_templates,
    "cmd_opts": resolve_cmd_opts,
    "state": resolve_state,
    "sd_model": resolve_sd_model,
    "device": lambda e: e.devices.device,
    "weight_load_location": lambda e: None,
    "sd_upscalers": resolve_sd_upscalers,
    "prompt_styles": lambda e: e.styles,
    "config_filename": lambda e: str(e.paths.config_file),
    "styles_filename": lambda e: [str(p) for p in e.paths.styles_files],
    "hypernetworks": lambda e: {},
    "loaded_hypernetworks": lambda e: [],
    "face_restorers": lambda e: _face_restorers(e),
    "demo": lambda e: None,
    "listfiles": lambda e: (lambda dirname: sorted(os.path.join(dirname, x) for x in os.listdir(dirname)
                                                    if not x.startswith("."))),
}


# --- sd_models / sd_vae -----------------------------------------------------------------------------

def _closest(engine: "Engine") -> Callable[[str], Any]:
    def get_closet_checkpoint_match(search_string: str) -> Any:
        if not search_string:
            return None
        found = engine.checkpoints.get_closest(search_string)
        if found is not None:
            return found
        return checkpoint_aliases(engine).get(search_string)
    return get_closet_checkpoint_match


def _select(engine: "Engine") -> Callable[[], Any]:
    return lambda: engine.resolve_checkpoint(engine.options.get("sd_model_checkpoint") or None)


SD_MODELS_RESOLVERS: dict[str, Callable[[Any], Any]] = {
    "model_data": lambda e: ModelData(e),
    "checkpoints_list": checkpoints_list,
    "checkpoint_aliases": checkpoint_aliases,
    "checkpoint_alisases": checkpoint_aliases,  # A1111's misspelt alias of the same dict
    "get_closet_checkpoint_match": _closest,
    "select_checkpoint": _select,
    "list_models": lambda e: (lambda: e.refresh_checkpoints()),
    "checkpoint_tiles": lambda e: (lambda use_short=False: [
        (i.short_title if use_short else i.title) for i in e.available_checkpoints()]),
    "reload_model_weights": lambda e: (lambda sd_model=None, info=None, forced_reload=False:
                                       reload_model_weights(e, sd_model, info, forced_reload)),
    "load_model": lambda e: (lambda checkpoint_info=None, already_loaded_state_dict=None:
                             reload_model_weights(e, None, checkpoint_info)),
    "unload_model_weights": lambda e: (lambda sd_model=None, info=None: e.unload_checkpoint()),
    "model_path": lambda e: str(e.paths.sd_models_dir),
}


def vae_dict(engine: "Engine") -> dict[str, str]:
    return {name: engine.vaes.get(name) for name in engine.vaes.names()}


SD_VAE_RESOLVERS: dict[str, Callable[[Any], Any]] = {
    "vae_dict": vae_dict,
    "loaded_vae_file": lambda e: str(e._loaded_vae_path) if getattr(e, "_loaded_vae_path", None) else None,
    "refresh_vae_list": lambda e: (lambda: e.vaes.refresh()),
    "vae_path": lambda e: str(e.paths.vae_dirs[0]) if e.paths.vae_dirs else "",
}


class AppArgsParser:
    """``cmd_args.parser``: A1111's launch-flag parser. ``parse_args()`` / ``parse_known_args()`` without an
    argument list answer the running app's flags (extensions call them to read flags; the process's own
    ``sys.argv`` may not be the app's, e.g. under a test runner or a service manager)."""

    def __init__(self, engine: "Engine") -> None:
        from modules.settings import cmd_args

        self._engine = engine
        self._parser = cmd_args.build_parser()

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        if args is None and self._engine is not None:
            return CmdOpts(self._engine.args, self._engine.paths)
        return self._parser.parse_args(args, namespace)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        if args is None and self._engine is not None:
            return CmdOpts(self._engine.args, self._engine.paths), []
        return self._parser.parse_known_args(args, namespace)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)


def extensions_attr(name: str) -> Any:
    """``modules.extensions.<name>`` of the running app."""
    engine = runtime.current()
    if name == "extensions":
        return runtime.host(engine).extensions.list()
    if name == "extensions_dir":
        return str(engine.paths.extensions_dir)
    if name == "extensions_builtin_dir":
        return str(engine.paths.extensions_builtin_dir)
    raise AttributeError(f"module 'modules.extensions' has no attribute {name!r}")
