"""The Engine: the one object that owns the loaded model, its options, the job state and the queue.

Every door (web UI, HTTP API, the script layer) holds one Engine and calls its methods: ``generate`` for
pictures, ``apply_settings`` / ``select_checkpoint`` / ``reload_checkpoint`` / ``unload_checkpoint`` for every
change of model, VAE or settings. Each takes the queue, so a change waits for the running job and a job
never sees a model or setting change under it. Nothing here knows about Gradio, FastAPI or A1111's scripts:
the script layer plugs into a generation through :class:`~modules.engine.hooks.GenerationHooks`.
"""
from __future__ import annotations

import argparse
import logging
import threading
from collections import OrderedDict
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, TypeVar

import torch
from PIL import Image

from modules.core import img2img_ops, prompt_parser, samplers
from modules.core.request import GenerationRequest, Processed
from modules.core.styles import StyleDatabase
from modules.engine import live_preview
from modules.engine.devices import DeviceConfig, torch_gc
from modules.engine.hooks import NO_HOOKS, GenerationHooks
from modules.engine.job_state import JobState
from modules.engine.task_ids import TaskTracker
from modules.engine.sampling import SamplingInputs
from modules.models.checkpoints import CheckpointInfo, CheckpointRegistry
from modules.models.hashes import HashCache
from modules.models.upscalers import UpscalerRegistry
from modules.models.vae_list import VaeRegistry
from modules.networks.extra_networks import ExtraNetworkRegistry
from modules.settings.options import Options
from modules.settings.paths import Paths

if TYPE_CHECKING:
    from modules.models.checkpoint_loader import LoadedModel
    from modules.networks.manager import NetworkManager

log = logging.getLogger(__name__)

T = TypeVar("T")

# The settings that name what is loaded: changing one loads a model.
MODEL_KEYS = ("sd_model_checkpoint", "sd_vae")

# ids of the engines whose queue this thread / task already holds: a nested call (a script's grid cells, a
# settings change made by a running job) joins that turn instead of waiting behind itself.
_HELD: ContextVar[frozenset] = ContextVar("engine_queue_held", default=frozenset())


class ModelLoadError(RuntimeError):
    pass


class Engine:
    def __init__(self, *, args: argparse.Namespace, paths: Paths, options: Options, devices: DeviceConfig) -> None:
        self.args = args
        self.paths = paths
        self.options = options
        self.devices = devices
        self.state = JobState()
        self.tasks = TaskTracker()  # task ids waiting / done, for the progress routes and A1111's modules.progress
        self.hash_cache = HashCache(Path(paths.cache_dir) / "hashes.json", enabled=not getattr(args, "no_hashing", False))
        self.checkpoints = CheckpointRegistry(paths, self.hash_cache, getattr(args, "ckpt", None))
        self.vaes = VaeRegistry(paths)
        self.styles = StyleDatabase(list(paths.styles_files))
        self.upscalers = UpscalerRegistry(Path(paths.models_dir))
        self.extra_networks = ExtraNetworkRegistry()
        self.networks: NetworkManager = self._make_network_manager()
        self.model: LoadedModel | None = None
        self.checkpoint_info: CheckpointInfo | None = None
        self.vae_info: dict[str, str] | None = None
        self.conditioner: Any = None  # conditioning.TextConditioner of the loaded model
        self._baked_vae_state: dict[str, torch.Tensor] | None = None
        self._loaded_vae_path: Path | None = None
        self._latent_rgb: torch.Tensor | None = None
        self._model_lock = threading.RLock()
        self._cond_cache: OrderedDict[tuple, Any] = OrderedDict()
        self.model_generation = 0  # counts checkpoint loads, so listeners can tell a new model
        self.builtin_checkpoint: Path | None = None

    def _make_network_manager(self) -> Any:
        from modules.networks.extra_networks_hypernet import ExtraNetworkHypernet
        from modules.networks.extra_networks_lora import ExtraNetworkLora
        from modules.networks.manager import NetworkManager

        paths = self.paths
        manager = NetworkManager(
            lora_dirs=paths.lora_dirs, hypernetwork_dirs=paths.hypernetwork_dirs, embeddings_dirs=paths.embeddings_dirs,
            cache_dir=Path(paths.cache_dir), hash_cache=self.hash_cache, options=self.options,
            allow_unsafe_pickle=bool(getattr(self.args, "disable_safe_unpickle", False)))
        for handler in (ExtraNetworkLora(manager), ExtraNetworkHypernet(manager)):
            self.extra_networks.register(handler, aliases=handler.aliases)
        return manager

    # --- the queue -----------------------------------------------------------------
    @contextmanager
    def exclusive(self) -> Iterator[bool]:
        """This engine's turn in the queue (FIFO); yields True when this context holds it already (nested)."""
        held = _HELD.get()
        if id(self) in held:
            yield True
            return
        with self.state.queue.hold():
            token = _HELD.set(held | {id(self)})
            try:
                yield False
            finally:
                _HELD.reset(token)

    @contextmanager
    def job(self, request: GenerationRequest) -> Iterator[None]:
        """The queue turn, the request's setting overrides, the model and the job state around a generation.

        ``override_settings`` apply to this request only (to this context, so a concurrent reader of the
        options never sees them) and are gone afterwards, even when the job fails; with
        ``override_settings_restore_afterwards`` false they are applied as a settings change instead, as A1111
        does. Nested inside another job (a script's grid cells), the outer job's turn and state are kept: the
        job count grows if the cells need more than the script announced."""
        request.validate()
        with self.exclusive() as nested:
            overrides = dict(request.override_settings or {})
            if overrides and not request.override_settings_restore_afterwards:
                self._set_options(overrides)
                overrides = {}
            with self.options.scoped(overrides):
                self.ensure_model()
                state = self.state
                if nested:
                    state.job_count = max(state.job_count, state.job_no + request.n_iter)
                    yield
                    return
                state.begin("img2img" if request.is_img2img else "txt2img", request.n_iter, request.id_task)
                try:
                    yield
                finally:
                    state.end()

    def generate(self, request: GenerationRequest, hooks: GenerationHooks = NO_HOOKS) -> Processed:
        """Pictures for ``request``; ``hooks`` let the script layer take part (see :mod:`modules.engine.hooks`)."""
        from modules.engine import pipeline

        # No autograd bookkeeping while sampling (A1111's process_images runs under no_grad too).
        with self.job(request), torch.no_grad():
            return pipeline.generate(self, request, hooks)

    def run_exclusive(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the queue's turn (Extras and other model-using work that is not a generation)."""
        with self.exclusive():
            return fn()

    # --- settings ------------------------------------------------------------------
    def apply_settings(self, values: Mapping[str, Any], *, save: bool = True) -> list[str]:
        """Set already-checked setting values (see :mod:`modules.engine.settings_check`); returns the keys
        that changed. Waits for the running job. A new checkpoint or VAE is loaded before returning; when
        loading fails, the model and settings stay as they were and the error propagates. The settings file
        is written when anything changed."""
        with self.exclusive():
            previous = {key: self.options.get(key) for key in values}
            changed = self._set_options(values)
            if changed and save and self.options.path is not None:
                try:
                    self.options.save()
                except OSError:  # a full disk: nothing is applied, so that memory and the file agree
                    self._set_options({key: previous[key] for key in changed})
                    raise
            return changed

    def _set_options(self, values: Mapping[str, Any]) -> list[str]:
        opts = self.options
        previous = {key: opts.get(key) for key in values}
        changed = [key for key, value in values.items() if opts.set(key, value)]
        if any(key in changed for key in MODEL_KEYS):
            try:
                self.ensure_model()
            except Exception:
                for key in MODEL_KEYS:
                    if key in previous:
                        opts.set(key, previous[key], run_callbacks=False)
                raise
        return changed

    def select_checkpoint(self, title: str) -> CheckpointInfo | None:
        """Load the checkpoint ``title`` names (a listed checkpoint's title) and make it the setting; returns what
        is loaded now."""
        self.apply_settings({"sd_model_checkpoint": title})
        return self.checkpoint_info

    def reload_checkpoint(self) -> None:
        with self.exclusive():
            self.reload()

    def unload_checkpoint(self) -> None:
        with self.exclusive():
            self.unload()

    def train(self, params: Any) -> Any:
        """Train an embedding or a hypernetwork (``modules.training.trainer.TrainParams``) as one job."""
        from modules.training.trainer import run_training

        return run_training(self, params)

    # --- checkpoints ---------------------------------------------------------------
    def refresh_checkpoints(self) -> None:
        self.checkpoints.refresh()
        self.vaes.refresh()

    def merge_checkpoints(self, recipe: Any) -> Any:
        """Checkpoint Merger (:mod:`modules.engine.merger`): write the merged file, list it; the loaded model stays.
        In the queue's turn: a merge waits for the running generation (both need the memory, and a merge of the
        loaded checkpoint must not race a model change)."""
        from modules.engine import merger

        with self.exclusive():
            return merger.merge_checkpoints(self, recipe)

    def available_checkpoints(self) -> list[Any]:
        items = self.checkpoints.list()
        if not items:
            items = [self._builtin_info()]
        return items

    def _builtin_info(self) -> Any:
        """The default checkpoint when the checkpoint folders are empty: the shipped demo model (or, if its
        file is missing, the generated placeholder)."""
        from modules.models.builtin_model import default_model

        # Under the model lock: building the placeholder patches torch globally (meta-device init),
        # which must never overlap with a checkpoint load in another thread.
        with self._model_lock:
            if self.builtin_checkpoint is None:
                self.builtin_checkpoint = default_model(Path(self.paths.cache_dir) / "builtin")
        return self.checkpoints.info_for_path(self.builtin_checkpoint)

    def native_size(self) -> tuple[int, int]:
        """(width, height) the UI should default to: the loaded model's native size, else the size the
        checkpoint that would load declares in its header (512 x 512 when nothing says)."""
        from modules.models import checkpoint_loader

        size = getattr(self.model, "native_size", None) if self.model is not None else None
        if size is None:
            try:
                info = self.resolve_checkpoint(self.options.get("sd_model_checkpoint") or None)
                size = checkpoint_loader.native_size_of_file(info.filename)
            except Exception as exc:  # noqa: BLE001 - a default size must never fail the page
                log.debug("native size of the default checkpoint unknown: %s", exc)
        if size is None:
            return 512, 512
        if isinstance(size, int):
            return size, size
        return int(size[0]), int(size[1])

    def resolve_checkpoint(self, name: str | None) -> Any:
        if name:
            info = self.checkpoints.get_closest(name)
            if info is not None:
                return info
            builtin = self._builtin_info()
            if name in (builtin.title, builtin.name, builtin.name_for_extra, builtin.model_name):
                return builtin
            raise ModelLoadError(f"checkpoint {name!r} not found; available: {', '.join(c.title for c in self.available_checkpoints())}")
        return self.available_checkpoints()[0]

    def ensure_model(self) -> None:
        """Load the checkpoint and VAE the options ask for, if not loaded already."""
        with self._model_lock:
            wanted = self.resolve_checkpoint(self.options.get("sd_model_checkpoint") or None)
            if self.checkpoint_info is None or Path(wanted.filename) != Path(self.checkpoint_info.filename) or self.model is None:
                self.load_checkpoint(wanted)
            self._apply_vae_setting()

    def park_for_job(self) -> "ParkedModel | None":
        """Take the loaded model out whole, its weights back to the checkpoint's own (no adapter patched), to be put
        back by :meth:`unpark` instead of read again from disk (the refiner's switch back). On a GPU it waits in CPU
        memory. None when offloading (its hooks are tied to the loaded modules): the model is then loaded again."""
        with self._model_lock:
            if self.model is None or self.devices.offload != "none":
                return None
            self.networks.restore_weights()
            parked = ParkedModel(self.model, self.checkpoint_info, self._baked_vae_state, self._loaded_vae_path,
                                 self.vae_info)
            if torch.device(self.devices.device).type != "cpu":
                for module in (self.model.unet, self.model.vae, *self.model.text_encoders):
                    module.to("cpu")
            return parked

    def unpark(self, parked: "ParkedModel") -> None:
        """The parked model loaded again, with the VAE it had; the settings keep naming it (it is the job's model)."""
        with self._model_lock:
            self._unload()
            model = parked.model
            for module in (model.unet, model.vae, *model.text_encoders):
                module.to(self.devices.device)
            self._install(model, parked.info, remember=False)
            self._baked_vae_state, self._loaded_vae_path, self.vae_info = parked.baked_vae, parked.vae_path, parked.vae_info
            self._apply_vae_setting()

    def load_for_job(self, info: Any) -> None:
        """Load ``info`` for the rest of the running job (the refiner switch): the ``sd_model_checkpoint`` setting
        keeps naming the model the job started on, so :meth:`ensure_model` brings that one back."""
        with self._model_lock:
            if self.model is None or self.checkpoint_info is None or Path(info.filename) != Path(self.checkpoint_info.filename):
                self.load_checkpoint(info, remember=False)
            self._apply_vae_setting()

    def load_checkpoint(self, info: Any, *, remember: bool = True) -> None:
        from modules.models import checkpoint_loader
        from modules.models.safe_load import CheckpointLoadError

        with self._model_lock:
            previous = self.checkpoint_info
            self._unload()
            try:
                model = checkpoint_loader.load_any(
                    Path(info.filename),
                    device=self.devices.device if self.devices.offload == "none" else torch.device("cpu"),
                    dtype=self.devices.dtype,
                    vae_dtype=self.devices.vae_dtype,
                    allow_unsafe_pickle=bool(getattr(self.args, "disable_safe_unpickle", False)),
                )
            except Exception as exc:
                log.error("Could not load checkpoint %s: %s", info.filename, exc)
                if previous is not None and Path(previous.filename) != Path(info.filename):
                    # The user keeps the model they had.
                    try:
                        self.load_checkpoint(previous, remember=remember)
                    except Exception:  # pragma: no cover - the previous file vanished meanwhile
                        log.exception("Could not reload the previous checkpoint %s", previous.filename)
                if isinstance(exc, (ModelLoadError, CheckpointLoadError)):
                    raise
                # Any other failure (an unknown layout, a shape mismatch...) names the file too.
                raise ModelLoadError(f"could not load checkpoint {info.filename}: {exc}") from exc
            self._install(model, info, remember=remember)

    def _install(self, model: Any, info: Any, *, remember: bool = True) -> None:
        from modules.engine.compiled import CompileConfig, compile_model
        from modules.engine.conditioning import TextConditioner

        self.model = model
        self.checkpoint_info = info
        self.checkpoints.calculate_hash(info)
        self._baked_vae_state = {k: v.detach().to("cpu", copy=True) for k, v in model.vae.state_dict().items()}
        self._loaded_vae_path = None
        self.vae_info = None
        self.conditioner = TextConditioner(model.family, model.tokenizers, model.text_encoders, self.conditioning_options(None))
        self._latent_rgb = None
        self.model_generation += 1
        self._cond_cache.clear()
        self._apply_offload()
        compile_model(model, CompileConfig.from_args(self.args, self.devices.device), self.devices.offload)
        self.networks.attach(model)
        # Keep the setting naming what is loaded (A1111 semantics of sd_model_checkpoint), unless this load
        # serves one request's override: that must not outlive the request.
        if remember and not self.options.is_scoped("sd_model_checkpoint"):
            self.options.set("sd_model_checkpoint", info.title, run_callbacks=False)
        log.info("Loaded %s (%s, %s) on %s", info.title, model.family, model.prediction_type, self.devices.describe())

    def _apply_offload(self) -> None:
        if self.devices.offload == "none":
            return
        from accelerate import cpu_offload, cpu_offload_with_hook

        device = self.devices.device
        modules = [*self.model.text_encoders, self.model.unet, self.model.vae]
        if self.devices.offload == "sequential":
            for module in modules:
                cpu_offload(module, execution_device=device)
        else:
            hook = None
            for module in modules:
                _, hook = cpu_offload_with_hook(module, execution_device=device, prev_module_hook=hook)

    def _unload(self) -> None:
        self.networks.detach()
        self.model = None
        self.conditioner = None
        self.checkpoint_info = None
        self._baked_vae_state = None
        self._cond_cache.clear()
        torch_gc()

    def unload(self) -> None:
        with self._model_lock:
            self._unload()

    def reload(self) -> None:
        with self._model_lock:
            info = self.checkpoint_info or self.resolve_checkpoint(self.options.get("sd_model_checkpoint") or None)
            self._unload()
            self.load_checkpoint(info)

    # --- VAE -----------------------------------------------------------------------
    def _apply_vae_setting(self) -> None:
        from modules.models import checkpoint_loader

        setting = self.options.get("sd_vae") or "Automatic"
        found, _source = self.vaes.resolve_vae(
            str(self.checkpoint_info.filename),
            setting,
            vae_path_arg=getattr(self.args, "vae_path", None),
            overrides_per_model=bool(self.options.get("sd_vae_overrides_per_model_preferences")),
        )
        path = Path(found) if found else None
        if path == self._loaded_vae_path:
            return
        vae = self.model.vae
        if path is None:
            vae.load_state_dict(self._baked_vae_state)
            self.vae_info = None
        else:
            state = checkpoint_loader.load_vae(Path(path), allow_unsafe_pickle=bool(getattr(self.args, "disable_safe_unpickle", False)))
            checkpoint_loader.apply_vae(vae, state)
            sha = self.hash_cache.get_sha256(Path(path), f"vae/{Path(path).name}")
            self.vae_info = {"name": Path(path).name, "hash": sha[:10] if sha else None}
        self._loaded_vae_path = path
        self._latent_rgb = None

    # --- conditioning --------------------------------------------------------------
    def conditioning_options(self, clip_skip: int | None) -> Any:
        from modules.engine.conditioning import ConditioningOptions

        return ConditioningOptions(
            comma_padding_backtrack=int(self.options.get("comma_padding_backtrack")),
            emphasis=str(self.options.get("emphasis")),
            clip_skip=int(clip_skip or self.options.get("CLIP_stop_at_last_layers") or 1),
            sdxl_clip_l_skip=bool(self.options.get("sdxl_clip_l_skip")),
            crop_top=int(self.options.get("sdxl_crop_top") or 0),
            crop_left=int(self.options.get("sdxl_crop_left") or 0),
            high_aesthetic_score=float(self.options.get("sdxl_refiner_high_aesthetic_score")),
            low_aesthetic_score=float(self.options.get("sdxl_refiner_low_aesthetic_score")),
        )

    def conditioning(self, plan: Any, batch: Any, *, steps: int, hires_steps: int | None, sampler: Any,
                     width: int | None = None, height: int | None = None) -> tuple[Any, Any, Any]:
        """(cond, uncond, empty chunk) for a batch; embeddings found in its prompts are added to
        `plan.used_embeddings` (for "TI hashes"), from the cache too. ``width``/``height``: the pass's image size
        (default the request's), which the SDXL refiner's conditioning holds."""
        req = plan.request
        width, height = width or req.width, height or req.height
        # only a conditioning that holds the size is encoded again for another one (the hires pass)
        size_key = (width, height) if self.model.family == "sdxl-refiner" else (req.width, req.height)
        cond_opts = self.conditioning_options(plan.clip_skip)
        self.conditioner.options = cond_opts
        lookup = _RecordingLookup(self.networks.prepare_embeddings(rescan=False))
        self.conditioner.embeddings = lookup
        total = samplers.total_denoiser_calls(sampler, steps)
        hires_total = samplers.total_denoiser_calls(sampler, hires_steps) if hires_steps else None
        use_old = bool(self.options.get("use_old_scheduling"))
        key = (
            tuple(batch.cond_prompts), tuple(batch.negative_prompts), total, hires_total, use_old, *size_key,
            tuple(vars(cond_opts).items()), self.model_generation, lookup.db.version,
            self.networks.text_encoder_signature(),
        )
        hit = self._cond_cache.get(key)
        if hit is not None:
            self._cond_cache.move_to_end(key)
            conds, used = hit
        else:
            with torch.no_grad():
                c = prompt_parser.get_multicond_learned_conditioning(
                    self.conditioner, prompt_parser.SdConditioning(batch.cond_prompts, width=width, height=height),
                    total, hires_total, use_old)
                uc = prompt_parser.get_learned_conditioning(
                    self.conditioner,
                    prompt_parser.SdConditioning(batch.negative_prompts, is_negative_prompt=True, width=width,
                                                 height=height),
                    total, hires_total, use_old)
                empty = self.conditioner.empty_chunk()
            conds, used = (c, uc, empty), tuple(lookup.used.values())
            self._cond_cache[key] = (conds, used)
            while len(self._cond_cache) > 4:
                self._cond_cache.popitem(last=False)
        for embedding in used:
            plan.used_embeddings.setdefault(embedding.name, embedding)
        return conds

    def network_infotext_params(self, used_embeddings: Any = ()) -> dict[str, Any]:
        """`Lora hashes` and `TI hashes` for the infotext of the running generation."""
        return self.networks.infotext_params(used_embeddings)

    def after_generation(self) -> None:
        """Hook run after every generation, failed or interrupted ones too. The adapters stay applied: the next
        request's activation makes the weights exactly what it asks for, touching only what differs."""
        self.networks.generation_finished()

    def sampling_inputs(self, conds: tuple[Any, Any, Any], cfg_scale: float, width: int, height: int, n: int) -> SamplingInputs:
        c, uc, empty = conds
        time_ids = None
        if self.model.family == "sdxl":  # the refiner's rows are part of its conditioning (conditioning.py)
            opts = self.options
            crop = [int(opts.get("sdxl_crop_top") or 0), int(opts.get("sdxl_crop_left") or 0)]
            row = torch.tensor([height, width, *crop, height, width], dtype=torch.float32)
            time_ids = row.unsqueeze(0).repeat(n, 1).to(self.devices.device)
        return SamplingInputs(cond=c, uncond=uc, cfg_scale=cfg_scale, empty_chunk=empty, time_ids=time_ids)

    # --- VAE encode / decode -------------------------------------------------------
    @contextmanager
    def _vae_precision(self) -> Iterator[torch.nn.Module]:
        vae = self.model.vae
        dtype = next(vae.parameters()).dtype
        upcast = dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False))
        if upcast:
            vae.to(torch.float32)
        try:
            yield vae
        finally:
            if upcast:
                vae.to(dtype)

    def decode(self, latents: torch.Tensor) -> list[Image.Image]:
        return img2img_ops.tensor_to_images(self.decode_tensor(latents), truncate=True)

    def encode(self, images: list[Image.Image]) -> torch.Tensor:
        return self.encode_tensor(img2img_ops.image_to_tensor(images))

    @torch.no_grad()
    def decode_tensor(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents to pixels in [-1, 1] (B, 3, H, W), float32, unclamped (A1111's ``samples_to_images_tensor``)."""
        with self._vae_precision() as vae:
            cfg = vae.config
            # 1/scale · z as LDM's decode_first_stage writes it; one image at a time, as A1111 decodes
            x = 1.0 / cfg.scaling_factor * latents + (getattr(cfg, "shift_factor", None) or 0.0)
            dtype = next(vae.parameters()).dtype
            device = vae.device if hasattr(vae, "device") else x.device
            return torch.cat([vae.decode(x[i:i + 1].to(device, dtype)).sample for i in range(x.shape[0])]).float()

    @torch.no_grad()
    def encode_tensor(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [-1, 1] (B, 3, H, W) to scaled latents."""
        with self._vae_precision() as vae:
            cfg = vae.config
            x = pixels.to(self.devices.device, next(vae.parameters()).dtype)
            # The distribution's mean rather than a sample: the same init image gives the same latents.
            lat = torch.cat([vae.encode(x[i:i + 1]).latent_dist.mean for i in range(x.shape[0])]).float()
        return (lat - (getattr(cfg, "shift_factor", None) or 0.0)) * cfg.scaling_factor

    def inpaint_cond(self, images: list[Image.Image], mask: Image.Image | None) -> torch.Tensor:
        """Mask + masked-image latents for 9-channel inpainting UNets (A1111's conditioning image)."""
        import numpy as np

        w, h = images[0].size
        if mask is None:
            m = torch.ones((1, 1, h, w))
        else:
            m = torch.from_numpy(np.array(mask.convert("L"), dtype=np.float32) / 255.0)[None, None]
            m = (m >= 0.5).float()
        pixels = img2img_ops.image_to_tensor(images)
        masked = pixels * (1 - m)
        masked_latents = self.encode(img2img_ops.tensor_to_images(masked))
        m_lat = torch.nn.functional.interpolate(m, size=(h // 8, w // 8)).to(masked_latents)
        return torch.cat([m_lat.expand(masked_latents.shape[0], -1, -1, -1), masked_latents], dim=1)

    def blank_inpaint_cond(self, n: int, height: int, width: int) -> torch.Tensor:
        gray = [Image.new("RGB", (width, height), (127, 127, 127))] * n
        return self.inpaint_cond(gray, None)

    # --- misc ------------------------------------------------------------------------
    @contextmanager
    def tiling(self, enabled: bool) -> Iterator[None]:
        if not enabled:
            yield
            return
        convs = [m for model in (self.model.unet, self.model.vae) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        before = [m.padding_mode for m in convs]
        for m in convs:
            m.padding_mode = "circular"
        try:
            yield
        finally:
            for m, mode in zip(convs, before):
                m.padding_mode = mode

    def preview_image(self, latent: torch.Tensor) -> Image.Image:
        """The live preview of one latent: the ``show_progress_type`` setting picks a full VAE decode or the cheap
        linear latent->RGB projection (fitted once per loaded VAE)."""
        if self.options.get("show_progress_type") == "Full":
            return self.decode(latent[None])[0]
        if self._latent_rgb is None:
            with self._vae_precision() as vae:
                self._latent_rgb = live_preview.fit_latent_to_rgb(vae, latent.shape[0])
        return live_preview.latent_to_rgb_image(latent, self._latent_rgb)


@dataclass
class ParkedModel:
    """A loaded model taken out for the rest of a job (:meth:`Engine.park_for_job`), with its VAE state."""

    model: Any
    info: Any
    baked_vae: dict[str, torch.Tensor] | None
    vae_path: Path | None
    vae_info: dict[str, str] | None


class _RecordingLookup:
    """Embedding lookup for the conditioner that remembers, in first-use order, which embeddings it found."""

    def __init__(self, db: Any):
        self.db = db
        self.used: dict[str, Any] = {}

    def find_embedding_at_position(self, tokens: list[int], offset: int) -> tuple[Any, int]:
        embedding, length = self.db.find_embedding_at_position(tokens, offset)
        if embedding is not None:
            self.used.setdefault(embedding.name, embedding)
        return embedding, length
