"""The training pictures of a folder, their captions and latents, and the batch of every step.

Captions come from a ``.txt`` file beside the picture (same stem), else from the file name: leading digits and
dashes go (``00012-a red circle.png`` -> ``a red circle``), and when the ``dataset_filename_word_regex``
setting is set, only its matches are kept, joined by ``dataset_filename_join_string`` (A1111's rules).

Which pictures, template line and tag order a step gets depends only on (seed, step, micro-batch), never on a
running random state: training resumed from a file at step N sees exactly the batches an uninterrupted run
would have seen from step N on, which makes resumed weights bit-identical.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = ["DatasetError", "TrainingItem", "TrainingDataset", "caption_from_filename", "step_seed",
           "LATENT_SAMPLING_METHODS"]

LATENT_SAMPLING_METHODS = ("once", "deterministic", "random")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
_NUMBERS_AT_START = re.compile(r"^[-\d]+\s*")


class DatasetError(ValueError):
    pass


def step_seed(*parts: int) -> int:
    """A 63-bit seed from integers (a hash, so neighbouring steps get unrelated streams)."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint64)[0] >> 1)


def caption_from_filename(stem: str, word_regex: str = "", join_string: str = " ") -> str:
    text = _NUMBERS_AT_START.sub("", stem)
    if word_regex:
        text = (join_string or "").join(re.findall(word_regex, text))
    return text


@dataclass
class TrainingItem:
    path: Path
    caption: str
    size: tuple[int, int]  # (width, height) in pixels, after resizing or cropping
    mean: torch.Tensor  # [C, h, w] latent mean (scaled), or the fixed sample for "once"
    std: torch.Tensor | None  # latent std, kept only for "random"
    weight: torch.Tensor | None  # [1, h, w] loss weight from the alpha channel (mean 1), or None


def _load_picture(path: Path, width: int, height: int, varsize: bool, multiple: int) -> tuple[Image.Image, Image.Image | None]:
    try:
        with Image.open(path) as im:
            im.load()
            alpha = im.getchannel("A") if "A" in im.getbands() else None
            rgb = im.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise DatasetError(f"{path.name}: cannot read the picture ({e})") from e
    if varsize:
        w, h = rgb.width // multiple * multiple, rgb.height // multiple * multiple
        if w < multiple or h < multiple:
            raise DatasetError(f"{path.name}: {rgb.width}x{rgb.height} is smaller than {multiple} pixels")
        rgb = rgb.crop((0, 0, w, h))
        alpha = alpha.crop((0, 0, w, h)) if alpha is not None else None
    else:
        rgb = rgb.resize((width, height), Image.BICUBIC)
        alpha = alpha.resize((width, height), Image.BICUBIC) if alpha is not None else None
    return rgb, alpha


def _to_tensor(image: Image.Image) -> torch.Tensor:
    a = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(a).permute(2, 0, 1).contiguous()


class TrainingDataset:
    """Pictures of ``folder`` encoded once by ``encode`` (pixels [1, 3, H, W] in -1..1 -> latent (mean, std),
    both scaled like the UNet's input). See the module docstring for captions and batches."""

    def __init__(self, folder: str | Path, *, encode: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                 width: int, height: int, varsize: bool = False, latent_sampling_method: str = "once",
                 use_weight: bool = False, batch_size: int = 1, seed: int = 0, word_regex: str = "",
                 join_string: str = " ", multiple: int = 8, progress: Callable[[int, int], None] | None = None):
        root = Path(folder)
        if not str(folder).strip() or not root.is_dir():
            raise DatasetError(f"dataset folder {str(folder)!r} does not exist")
        if latent_sampling_method not in LATENT_SAMPLING_METHODS:
            raise DatasetError(f"latent sampling method must be one of {', '.join(LATENT_SAMPLING_METHODS)}, "
                               f"got {latent_sampling_method!r}")
        self.method = latent_sampling_method
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DatasetError(f"dataset folder {root} holds no pictures ({', '.join(IMAGE_SUFFIXES)})")
        pictures = []
        for path in files:
            rgb, alpha = _load_picture(path, int(width), int(height), varsize, multiple)
            sidecar = path.with_suffix(".txt")
            if sidecar.is_file():
                caption = sidecar.read_text(encoding="utf-8", errors="replace").strip()
            else:
                caption = caption_from_filename(path.stem, word_regex, join_string)
            pictures.append((path, caption, rgb, alpha))
        encoded = self._encode_all(encode, [rgb for _, _, rgb, _ in pictures], progress)
        self.items: list[TrainingItem] = []
        for index, ((path, caption, rgb, alpha), (mean, std)) in enumerate(zip(pictures, encoded)):
            if latent_sampling_method == "once":
                gen = torch.Generator().manual_seed(step_seed(self.seed, 1, index))
                mean, std = mean + std * torch.randn(mean.shape, generator=gen), None
            elif latent_sampling_method == "deterministic":
                std = None
            weight = None
            if use_weight and alpha is not None:
                small = alpha.resize((mean.shape[-1], mean.shape[-2]), Image.BICUBIC)
                w = torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0)[None]
                weight = w / w.mean().clamp_min(1e-6)
            self.items.append(TrainingItem(path, caption, rgb.size, mean, std, weight))
        groups: dict[tuple[int, int], list[int]] = {}
        for i, item in enumerate(self.items):
            groups.setdefault(item.size, []).append(i)
        self._groups = list(groups.values())
        self.batches_per_epoch = sum(len(g) // self.batch_size for g in self._groups)
        if self.batches_per_epoch == 0:
            sizes = ", ".join(f"{len(g)} of {self.items[g[0]].size[0]}x{self.items[g[0]].size[1]}" for g in self._groups)
            raise DatasetError(f"batch size {self.batch_size} needs at least that many pictures of one size; "
                               f"the folder has {sizes}")
        self._epoch_cache: dict[int, list[list[int]]] = {}

    @staticmethod
    def _encode_all(encode, images: list[Image.Image], progress, chunk: int = 16) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(mean, std) of every picture; pictures of one size are encoded together, ``chunk`` at a time."""
        out: list = [None] * len(images)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(images):
            by_size.setdefault(im.size, []).append(i)
        done = 0
        for indices in by_size.values():
            for lo in range(0, len(indices), chunk):
                part = indices[lo:lo + chunk]
                with torch.no_grad():
                    mean, std = encode(torch.stack([_to_tensor(images[i]) for i in part]))
                for j, i in enumerate(part):
                    out[i] = (mean[j].float().cpu(), std[j].float().cpu())
                done += len(part)
                if progress is not None:
                    progress(done, len(images))
        return out

    def __len__(self) -> int:
        return len(self.items)

    def _epoch(self, epoch: int) -> list[list[int]]:
        """The batches (item indices) of one epoch: shuffled within each picture size, then batch order shuffled."""
        cached = self._epoch_cache.get(epoch)
        if cached is None:
            rng = np.random.default_rng(step_seed(self.seed, 2, epoch))
            batches = []
            for group in self._groups:
                order = [group[i] for i in rng.permutation(len(group))]
                batches += [order[i:i + self.batch_size] for i in range(0, len(order) - self.batch_size + 1,
                                                                         self.batch_size)]
            cached = [batches[i] for i in rng.permutation(len(batches))]
            self._epoch_cache = {epoch: cached}
        return cached

    def batch(self, index: int) -> tuple[list[TrainingItem], torch.Tensor, torch.Tensor | None]:
        """Batch number ``index`` (counted over the whole training): its items, latents [B, C, h, w] (a fresh
        sample for "random") and loss weights [B, 1, h, w] or None."""
        epoch, within = divmod(int(index), self.batches_per_epoch)
        items = [self.items[i] for i in self._epoch(epoch)[within]]
        latents = torch.stack([it.mean for it in items])
        if self.method == "random":
            gen = torch.Generator().manual_seed(step_seed(self.seed, 3, index))
            stds = torch.stack([it.std for it in items])
            latents = latents + stds * torch.randn(latents.shape, generator=gen)
        weights = None
        if any(it.weight is not None for it in items):
            weights = torch.stack([it.weight if it.weight is not None else torch.ones_like(latents[0, :1])
                                   for it in items])
        return items, latents, weights

    def epoch_of(self, index: int) -> tuple[int, int]:
        """(epoch, batch within the epoch) of batch ``index``."""
        return divmod(int(index), self.batches_per_epoch)


def make_prompt(template_lines: Sequence[str], name: str, caption: str, *, shuffle_tags: bool, tag_drop_out: float,
                rng: np.random.Generator) -> str:
    """A1111's prompt for one picture: a random template line, ``[filewords]`` the caption's comma-separated
    tags (some dropped with probability ``tag_drop_out``, shuffled if asked), ``[name]`` the name."""
    line = template_lines[int(rng.integers(len(template_lines)))]
    tags = caption.split(",")
    if tag_drop_out:
        tags = [t for t in tags if rng.random() > tag_drop_out]
    if shuffle_tags:
        tags = [tags[i] for i in rng.permutation(len(tags))]
    return line.replace("[filewords]", ",".join(tags)).replace("[name]", name)
