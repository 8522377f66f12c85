"""What A1111's ``modules.modelloader`` and ``modules.upscaler_utils`` hold for extensions' upscalers: listing model
files, loading a spandrel model, the tiled model upscale. This app is offline: ``load_file_from_url`` answers a
file already in place and otherwise says where to put it, it never downloads."""
from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from typing import Any, Iterable

from modules.models import upscalers
from modules.scripting import runtime


def friendly_name(file: str) -> str:
    if file.startswith("http"):
        file = urllib.parse.urlparse(file).path
    return os.path.splitext(os.path.basename(file))[0]


def load_file_from_url(url: str, *, model_dir: str, progress: bool = True, file_name: str | None = None,
                       hash_prefix: str | None = None) -> str:
    """The path of ``file_name`` (or the URL's file name) in ``model_dir``; FileNotFoundError naming it when it is
    not there (download it yourself: this web UI makes no downloads)."""
    name = file_name or os.path.basename(urllib.parse.urlparse(url).path)
    path = os.path.abspath(os.path.join(model_dir, name))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing and this web UI does not download models: fetch {url} and put "
                                f"it there")
    return path


def _files(roots: Iterable[str | None], ext_filter: Iterable[str] | None,
           ext_blacklist: Iterable[str] | None) -> list[str]:
    wanted = [e.lower() for e in ext_filter] if ext_filter else None
    banned = [e.lower() for e in ext_blacklist or []]
    out: list[str] = []
    for root in roots:
        if not root or not os.path.isdir(root):
            continue
        for dirpath, _dirs, files in os.walk(root, followlinks=True):
            for name in sorted(files):
                low = name.lower()
                if wanted is not None and not any(low.endswith(e) for e in wanted):
                    continue
                if any(low.endswith(e) for e in banned):
                    continue
                full = os.path.join(dirpath, name)
                if full not in out:
                    out.append(full)
    return out


def load_models(model_path: str, model_url: str | None = None, command_path: str | None = None,
                ext_filter: Iterable[str] | None = None, download_name: str | None = None,
                ext_blacklist: Iterable[str] | None = None, hash_prefix: str | None = None) -> list[str]:
    """Model files under ``model_path`` and ``command_path``; with none and a ``model_url``: the URL (A1111 lists
    it to fetch later), or with ``download_name`` the file if it is already in ``model_path``."""
    found = _files([model_path, command_path], ext_filter, ext_blacklist)
    if not found and model_url is not None:
        if download_name:
            found.append(load_file_from_url(model_url, model_dir=model_path, file_name=download_name))
        else:
            found.append(model_url)
    return found


def load_upscalers() -> None:
    """List the ``Upscaler`` subclasses defined since start-up (A1111 calls this after loading scripts)."""
    from modules.scripting.a1111_upscaler import register_extension_upscalers

    register_extension_upscalers(runtime.current())


def load_spandrel_model(path: str | os.PathLike, *, device: Any = None, prefer_half: bool | None = None,
                        dtype: Any = None, expected_architecture: str | None = None) -> Any:
    """The spandrel model of ``path`` on ``device`` (the Engine's by default), in eval mode."""
    import torch

    if device is None:
        device = runtime.current().devices.device
    model = upscalers.spandrel_loader(Path(path), torch.device(device))
    if dtype is not None and hasattr(model, "to"):
        model.to(dtype=dtype)
    return model


def upscale_with_model(model: Any, img: Any, *, tile_size: int = upscalers.DEFAULT_TILE_SIZE, tile_overlap: int = 0,
                       desc: str = "tiled upscale") -> Any:
    """A1111's ``upscaler_utils.upscale_with_model``: one tiled pass of ``model`` over ``img``."""
    return upscalers.upscale_with_model(model, img, tile_size=tile_size or upscalers.DEFAULT_TILE_SIZE,
                                        tile_overlap=tile_overlap)
