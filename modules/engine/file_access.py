"""Which files the doors may hand out: images in the output folders and previews of known models.

Lookups used by two routes (spec §5.2):

- ``GET /sd_extra_networks/thumb?filename=<path>&mtime=<any>`` (mounted by ``modules.ui_extra_networks``,
  which also serves checkpoint previews): :func:`find_thumb`, the ``.preview`` image of an entry of the
  Lora, hypernetwork or embedding catalog, or an image under an output folder. ``mtime`` only busts
  browser caches.
- ``GET /file=<path>`` (``modules.server.file_serving.add_file_routes``, before the Gradio app is mounted): an image under an output folder (absolute, or relative to the data folder).

Refused with 403 (nothing read): NUL, backslashes, ``..`` segments, percent-encoded dots, slashes,
backslashes or NULs left after the one decoding the server does (a double-encoded attack), and any
path whose real path (symlinks resolved) leaves the allowed folder. Everything else that is not an
allowed file (missing, not an image, not a preview) is 404. Only png, jpg, jpeg, webp, gif and avif
are served, and the extension of the real file counts, not only of the name asked for.

Output folders: ``<data>/outputs`` plus the output-folder settings (``outdir_*``), except a setting
that points at a folder holding the data, models or program folders (or at ``/``), which would
expose far more than images of outputs.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from modules.engine.engine import Engine

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".avif"})
OUTDIR_OPTIONS = ("outdir_samples", "outdir_txt2img_samples", "outdir_img2img_samples", "outdir_extras_samples",
                  "outdir_grids", "outdir_txt2img_grids", "outdir_img2img_grids", "outdir_save", "outdir_init_images")
# What a second round of URL decoding would turn into ".", "/", "\" or NUL.
_ENCODED_SEPARATOR = re.compile(r"%(2e|2f|5c|00)", re.IGNORECASE)


class FileRefused(Exception):
    """The request names a path that must not be served. ``status`` is 403 or 404."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def check_request_path(raw: str) -> None:
    """Raise FileRefused(403) for a path that tries to step out of where it is looked up."""
    if not raw:
        raise FileRefused(404, "no file named")
    if "\x00" in raw or "\\" in raw:
        raise FileRefused(403, "forbidden character in the path")
    if _ENCODED_SEPARATOR.search(raw):
        raise FileRefused(403, "encoded path separator in the path")
    if ".." in raw.split("/"):
        raise FileRefused(403, "'..' in the path")


def is_within(path: str, root: str) -> bool:
    """Both real paths; True when ``path`` is ``root`` or below it."""
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives, or a mix of absolute and relative
        return False


def _has_image_extension(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def _real(path: str | os.PathLike) -> str:
    return os.path.realpath(os.path.abspath(path))


def output_roots(engine: Engine) -> list[str]:
    """Real paths of the folders whose images may be served."""
    paths = engine.paths
    roots = [_real(paths.outputs_dir)]
    protected = [_real(p) for p in (paths.data_dir, paths.models_dir, paths.repo_root, Path.home())]
    options = getattr(engine, "options", None)
    for key in OUTDIR_OPTIONS:
        try:
            value = options.get(key, "") if options is not None else ""
        except Exception:  # an option not registered in this build
            value = ""
        if not value:
            continue
        real = _real(paths.resolve(str(value)))
        if real == os.path.sep or any(is_within(p, real) for p in protected):
            continue  # it holds far more than outputs
        if not any(is_within(real, root) for root in roots):
            roots.append(real)
    return roots


def find_output_image(engine: Engine, raw: str) -> Path:
    """The image ``raw`` names under an output folder, or FileRefused."""
    check_request_path(raw)
    requested = Path(raw)
    if not requested.is_absolute():
        requested = Path(engine.paths.data_dir) / requested
    real = _real(requested)
    if not any(is_within(real, root) for root in output_roots(engine)):
        raise FileRefused(403, "not in an output folder")
    if not (_has_image_extension(str(requested)) and _has_image_extension(real)):
        raise FileRefused(404, "not an image")
    if not os.path.isfile(real):
        raise FileRefused(404, "no such file")
    return Path(real)


def _catalogs(engine: Engine) -> Iterable[Any]:
    networks = getattr(engine, "networks", None)
    if networks is None:
        return ()
    return [c for c in (getattr(networks, name, None) for name in ("loras", "hypernetworks", "embedding_files"))
            if c is not None]


class PreviewIndex:
    """{absolute preview path: entry} over the engine's catalogs, rebuilt only when a catalog changed: a page
    asks for thousands of thumbs, and each lookup must not walk every entry."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._key: tuple = ()
        self._index: dict[str, Any] = {}

    def get(self, path: str) -> Any:
        catalogs = list(_catalogs(self.engine))
        key = tuple((id(c), c.version) for c in catalogs)
        if key != self._key or not catalogs:
            self._index = {os.path.abspath(e.preview): e for c in catalogs for e in c.items() if e.preview is not None}
            self._key = key
        return self._index.get(path)


def find_preview(engine: Engine, raw: str, index: PreviewIndex | None = None) -> Path:
    """The preview image of a catalog entry that ``raw`` names (as the catalog lists it), or FileRefused.

    The preview's real path must stay in its model file's folder or its catalog folder: a preview
    that is a symlink to somewhere else is refused.
    """
    check_request_path(raw)
    entry = (index or PreviewIndex(engine)).get(os.path.abspath(raw))
    if entry is None:
        raise FileRefused(404, "not the preview of a known model")
    real = _real(entry.preview)
    homes = (_real(Path(entry.path).parent), _real(entry.root))
    if not any(is_within(real, home) for home in homes):
        raise FileRefused(403, "the preview leaves its model folder")
    if not _has_image_extension(real):
        raise FileRefused(404, "not an image")
    if not os.path.isfile(real):
        raise FileRefused(404, "no such file")
    return Path(real)


def find_thumb(engine: Engine, raw: str, index: PreviewIndex | None = None) -> Path:
    """A model preview, else an output image (``/sd_extra_networks/thumb``)."""
    try:
        return find_preview(engine, raw, index)
    except FileRefused as e:
        if e.status != 404 or e.reason != "not the preview of a known model":
            raise
    return find_output_image(engine, raw)
