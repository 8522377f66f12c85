"""Where things live on disk, worked out once from the launch flags (spec §0).

``Paths`` is a frozen value object built by :meth:`Paths.from_args` and handed to whatever
needs a folder; nothing here is global. Lists of folders are tuples in search order, with
duplicates removed.

Differences from A1111, on purpose:
- embeddings are kept under ``<models>/embeddings``; ``<data>/embeddings`` (A1111's place) is
  still read when it exists, and so is ``--embeddings-dir`` when given.
"""
from __future__ import annotations

import glob
import os
from argparse import Namespace
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

OUTPUT_SUBDIRS = ("txt2img-images", "img2img-images", "txt2img-grids", "img2img-grids", "extras-images")


def _unique(paths: Iterable[Path | None]) -> tuple[Path, ...]:
    seen: set[str] = set()
    out = []
    for p in paths:
        if p is None:
            continue
        key = os.path.normcase(os.path.abspath(p))
        if key not in seen:
            seen.add(key)
            out.append(Path(os.path.abspath(p)))
    return tuple(out)


def _opt(args: Namespace, name: str) -> Path | None:
    value = getattr(args, name, None)
    return Path(value).absolute() if value else None


def expand_styles_files(entries: Iterable[str], default: Path) -> tuple[Path, ...]:
    """``--styles-file`` entries (repeatable, may be wildcards); ``default`` when none is given.

    A pattern with wildcards gives its matches in sorted order (none if nothing matches); a
    plain path is kept even when it does not exist yet, so that it can be created.
    """
    entries = list(entries or [])
    if not entries:
        return (default,)
    out: list[Path] = []
    for entry in entries:
        if glob.has_magic(entry):
            out.extend(Path(p).absolute() for p in sorted(glob.glob(entry, recursive=True)))
        else:
            out.append(Path(entry).absolute())
    return _unique(out)


@dataclass(frozen=True)
class Paths:
    repo_root: Path
    data_dir: Path
    models_dir: Path
    sd_models_dir: Path  # <models>/Stable-diffusion
    ckpt_dirs: tuple[Path, ...]  # A1111 walk order: --ckpt-dir first, then <models>/Stable-diffusion
    vae_dirs: tuple[Path, ...]  # <models>/VAE, --vae-dir
    lora_dirs: tuple[Path, ...]  # --lora-dir (<models>/Lora), --lyco-dir-backcompat (<models>/LyCORIS)
    hypernetwork_dirs: tuple[Path, ...]
    embeddings_dirs: tuple[Path, ...]  # <models>/embeddings, <data>/embeddings if it exists, --embeddings-dir
    extensions_dir: Path
    extensions_builtin_dir: Path
    outputs_dir: Path
    txt2img_samples_dir: Path
    img2img_samples_dir: Path
    txt2img_grids_dir: Path
    img2img_grids_dir: Path
    extras_samples_dir: Path
    config_file: Path
    ui_config_file: Path
    styles_files: tuple[Path, ...]
    cache_dir: Path
    params_txt: Path | None  # None with --no-prompt-history
    # --allowed-output-path: folders outside the data folder that outdir_* settings may name
    allowed_output_dirs: tuple[Path, ...] = ()

    @classmethod
    def from_args(cls, args: Namespace, repo_root: str | os.PathLike, environ: Mapping[str, str] = os.environ) -> "Paths":
        """Build from a parsed launch-flag namespace; missing attributes take A1111's defaults."""
        repo_root = Path(repo_root).absolute()
        data = _opt(args, "data_dir") or repo_root
        models = _opt(args, "models_dir") or data / "models"
        sd_models = models / "Stable-diffusion"

        data_embeddings = data / "embeddings"
        arg_embeddings = _opt(args, "embeddings_dir")
        embeddings = [
            models / "embeddings",
            data_embeddings if data_embeddings.is_dir() else None,
            arg_embeddings if arg_embeddings != data_embeddings else None,
        ]

        outputs = data / "outputs"
        cache_env = environ.get("SD_WEBUI_CACHE_DIR")
        return cls(
            repo_root=repo_root,
            data_dir=data,
            models_dir=models,
            sd_models_dir=sd_models,
            ckpt_dirs=_unique([_opt(args, "ckpt_dir"), sd_models]),
            vae_dirs=_unique([models / "VAE", _opt(args, "vae_dir")]),
            lora_dirs=_unique([
                _opt(args, "lora_dir") or models / "Lora",
                _opt(args, "lyco_dir_backcompat") or models / "LyCORIS",
            ]),
            hypernetwork_dirs=_unique([_opt(args, "hypernetwork_dir") or models / "hypernetworks"]),
            embeddings_dirs=_unique(embeddings),
            extensions_dir=data / "extensions",
            extensions_builtin_dir=repo_root / "extensions-builtin",
            outputs_dir=outputs,
            txt2img_samples_dir=outputs / "txt2img-images",
            img2img_samples_dir=outputs / "img2img-images",
            txt2img_grids_dir=outputs / "txt2img-grids",
            img2img_grids_dir=outputs / "img2img-grids",
            extras_samples_dir=outputs / "extras-images",
            config_file=_opt(args, "ui_settings_file") or data / "config.json",
            ui_config_file=_opt(args, "ui_config_file") or data / "ui-config.json",
            styles_files=expand_styles_files(getattr(args, "styles_file", None), data / "styles.csv"),
            cache_dir=Path(cache_env).absolute() if cache_env else data / "cache",
            params_txt=None if getattr(args, "no_prompt_history", False) else data / "params.txt",
            allowed_output_dirs=tuple(Path(p).expanduser().absolute()
                                      for p in (getattr(args, "allowed_output_path", None) or [])),
        )

    def resolve(self, value: str | os.PathLike) -> Path:
        """A path from a setting (e.g. ``outputs/txt2img-images``): relative ones are under the data folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.data_dir / p
