"""External VAE files and which one a checkpoint gets (spec §13.4).

Listed (later entries win on equal basenames, as in A1111):
``<models>/Stable-diffusion/**/*.vae.{ckpt,pt,safetensors}``, ``<models>/VAE/**/*.{ckpt,pt,safetensors}``,
``--ckpt-dir/**/*.vae.*``, ``--vae-dir/**/*.{ckpt,pt,safetensors}``; keyed by basename, natural-sorted.
"""
from __future__ import annotations

import logging
import os
import threading

from modules.core import fileio
from modules.settings.paths import Paths

log = logging.getLogger(__name__)

VAE_EXTENSIONS = (".ckpt", ".pt", ".safetensors")
AUTOMATIC = "Automatic"
NONE = "None"

SOURCE_ARG = "from commandline argument"
SOURCE_SETTINGS = "specified in settings"
SOURCE_METADATA = "from user metadata"
SOURCE_NEAR = "found near the checkpoint"
SOURCE_BAKED = "baked into the checkpoint"


def is_vae_filename(path: str | os.PathLike) -> bool:
    """``*.vae.*`` files: VAEs kept next to checkpoints, never listed as checkpoints."""
    return ".vae." in os.path.basename(path).lower()


class VaeRegistry:
    """The VAE files on disk, by basename, and ``resolve_vae``."""

    def __init__(self, paths: Paths):
        self.paths = paths
        self._lock = threading.Lock()
        self._vaes: dict[str, str] = {}

    def refresh(self) -> dict[str, str]:
        """Re-list the folders; returns {basename: absolute path} in natural order of the names."""
        found: dict[str, str] = {}
        vae_dirs = set(self.paths.vae_dirs)
        # A1111 order: checkpoints folder (*.vae.*), VAE folder, --ckpt-dir (*.vae.*), --vae-dir.
        sources = [(self.paths.sd_models_dir, True)]
        sources += [(d, False) for d in self.paths.vae_dirs[:1]]
        sources += [(d, True) for d in self.paths.ckpt_dirs if d != self.paths.sd_models_dir and d not in vae_dirs]
        sources += [(d, False) for d in self.paths.vae_dirs[1:]]
        for folder, only_suffixed in sources:
            for path in fileio.walk_files(folder, VAE_EXTENSIONS):
                if not only_suffixed or is_vae_filename(path):
                    found[os.path.basename(path)] = os.path.abspath(path)
        vaes = dict(sorted(found.items(), key=lambda kv: fileio.natural_sort_key(kv[0])))
        with self._lock:
            self._vaes = vaes
        return dict(vaes)

    def names(self) -> list[str]:
        with self._lock:
            return list(self._vaes)

    def choices(self) -> list[str]:
        """Values the ``sd_vae`` setting accepts."""
        return [AUTOMATIC, NONE] + self.names()

    def get(self, name: str) -> str | None:
        with self._lock:
            return self._vaes.get(name)

    def _by_name(self, name: str) -> str:
        path = self.get(name)
        if path is None:
            raise ValueError(f"unknown VAE {name!r}; choices: {', '.join(self.choices())}")
        return path

    def find_near_checkpoint(self, checkpoint_path: str) -> str | None:
        """First listed VAE whose basename starts with the checkpoint's stem (``model.vae.pt`` for ``model.ckpt``)."""
        base = os.path.basename(os.path.normpath(checkpoint_path))
        stem = base if os.path.isdir(checkpoint_path) else base.rsplit(".", 1)[0]
        with self._lock:
            for name, path in self._vaes.items():
                if name.startswith(stem):
                    return path
        return None

    def resolve_vae(
        self,
        checkpoint_path: str,
        sd_vae_setting: str = AUTOMATIC,
        vae_path_arg: str | None = None,
        overrides_per_model: bool = True,
        user_metadata_vae: str | None = None,
    ) -> tuple[str | None, str]:
        """(VAE path or None for the checkpoint's own VAE, where the choice came from).

        Order: ``--vae-path``; the ``sd_vae`` setting when it overrides per-model preferences;
        the checkpoint's user metadata ``"vae"``; a VAE named after the checkpoint; the setting.
        Raises ValueError for a setting that names no listed VAE.
        """
        if vae_path_arg:
            return vae_path_arg, SOURCE_ARG
        automatic = sd_vae_setting in (AUTOMATIC, "", None)
        if overrides_per_model and not automatic:
            return self._from_setting(sd_vae_setting)
        if user_metadata_vae and user_metadata_vae != AUTOMATIC:
            if user_metadata_vae == NONE:
                return None, SOURCE_METADATA
            path = self.get(user_metadata_vae)
            if path is not None:
                return path, SOURCE_METADATA
            log.warning("VAE %r named in the user metadata of %s is not listed; ignoring it", user_metadata_vae, checkpoint_path)
        near = self.find_near_checkpoint(checkpoint_path)
        if near is not None:  # here the setting is Automatic or does not override per-model choices
            return near, SOURCE_NEAR
        if automatic:
            return None, SOURCE_BAKED
        return self._from_setting(sd_vae_setting)

    def _from_setting(self, setting: str) -> tuple[str | None, str]:
        if setting == NONE:
            return None, SOURCE_SETTINGS
        return self._by_name(setting), SOURCE_SETTINGS
