"""Soft inpainting (A1111 1.8+'s built-in extension), as pure functions: the per-step latent blend under a soft mask,
and the difference-based mask of the final composite.

Per step, where the mask is partial the denoised latent is blended with the original one. The mask's opacity is
raised to the power ``σ^schedule_bias · preservation_strength``, so a strong blend at high noise fades as σ falls, and
the blend interpolates magnitudes separately (``transition_contrast_boost`` biases them towards the larger one) so that
partly masked areas keep their contrast. After decoding, the original pixels are put back where the result hardly
differs from the original: the latent difference is smoothed, divided by a threshold (biased by the mask with
``mask_influence``) and turned into an opacity by a sigmoid of ``difference_contrast``.

The constants (the σ-power form, the 1e-5 and 1.00001 guards, the 1.5/2 px Gaussian, the 0.9–1 then 0.25–0.75
percentile filters, smootherstep, the 4 px blur) are A1111's, so that the same settings give the same picture.
"""
from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageFilter

from modules.core import img2img_ops, masking

# A1111's labels: the UI's, and the infotext keys (pasted back), in argument order.
UI_LABELS = ("Schedule bias", "Preservation strength", "Transition contrast boost", "Mask influence",
             "Difference threshold", "Difference contrast")
INFOTEXT_KEYS = ("Soft inpainting schedule bias", "Soft inpainting preservation strength",
                 "Soft inpainting transition contrast boost", "Soft inpainting mask influence",
                 "Soft inpainting difference threshold", "Soft inpainting difference contrast")
ENABLED_KEY = "Soft inpainting enabled"


@dataclass(frozen=True)
class SoftInpaintingSettings:
    schedule_bias: float = 1.0  # A1111's mask_blend_power
    preservation_strength: float = 0.5  # mask_blend_scale
    transition_contrast_boost: float = 4.0  # inpaint_detail_preservation
    mask_influence: float = 0.0  # composite_mask_influence
    difference_threshold: float = 0.5  # composite_difference_threshold
    difference_contrast: float = 2.0  # composite_difference_contrast

    def infotext(self) -> dict[str, object]:
        return {ENABLED_KEY: True, **dict(zip(INFOTEXT_KEYS, astuple(self)))}


def step_opacity(settings: SoftInpaintingSettings, nmask: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """The mask for this step (1 = the denoised latent, 0 = the original): ``nmask ^ (σ^bias · strength)``."""
    return torch.pow(nmask, (sigma ** settings.schedule_bias) * settings.preservation_strength)


def latent_blend(settings: SoftInpaintingSettings, original: torch.Tensor, current: torch.Tensor,
                 t: torch.Tensor) -> torch.Tensor:
    """``original`` → ``current`` by ``t`` (per pixel), with the vectors' lengths interpolated apart: as power means of
    exponent ``transition_contrast_boost``, in float64 (the powers get large)."""
    t = t if t.dim() == 4 else t.unsqueeze(0)
    t_pixel = t[:, :1]
    mixed = original * (1 - t) + current * t
    power = settings.transition_contrast_boost
    length = torch.linalg.vector_norm(mixed, dim=1, keepdim=True).double() + 0.00001
    wanted = (torch.linalg.vector_norm(original, dim=1, keepdim=True).double().pow(power) * (1 - t_pixel)
              + torch.linalg.vector_norm(current, dim=1, keepdim=True).double().pow(power) * t_pixel).pow(1 / power)
    return mixed * (wanted / length).to(mixed.dtype)


def gaussian_kernel(stddev_radius: float = 1.0, max_radius: int = 2) -> tuple[np.ndarray, int]:
    """A (2r+1)² Gaussian whose value reaches 0 one pixel beyond ``max_radius`` (peak 1); and its centre index."""
    def gauss(square: np.ndarray | float) -> np.ndarray | float:
        return np.exp(-square / (stddev_radius * stddev_radius))

    zero = gauss((max_radius + 1.0) ** 2)
    offsets = np.arange(-max_radius, max_radius + 1, dtype=np.float64)
    square = offsets[:, None] ** 2 + offsets[None, :] ** 2
    return np.maximum(0.0, (gauss(square) - zero) / (1 - zero)), max_radius


def weighted_histogram_filter(img: np.ndarray, kernel: np.ndarray, center: int, percentile_min: float = 0.0,
                              percentile_max: float = 1.0, min_width: float = 1.0) -> np.ndarray:
    """Each pixel becomes the weighted mean of the neighbourhood values whose place in the kernel-weighted,
    sorted stack lies between the two percentiles (a window of at least ``min_width`` weight): 0–1 is a weighted
    mean, a narrow middle window a weighted median, 0.9–1 a soft maximum. Edges use the part of the kernel inside."""
    h, w = img.shape
    k = kernel.shape[0]
    out = np.empty_like(img)
    for y in range(h):
        y0, y1 = max(0, y - center), min(h, y - center + k)
        for x in range(w):
            x0, x1 = max(0, x - center), min(w, x - center + k)
            values = img[y0:y1, x0:x1].ravel()
            weights = kernel[y0 - y + center:y1 - y + center, x0 - x + center:x1 - x + center].ravel()
            order = np.argsort(values, kind="stable")
            values, weights = values[order], weights[order]
            tops = np.cumsum(weights)
            bottoms = tops - weights
            total = tops[-1]
            lo, hi = total * percentile_min, total * percentile_max
            if hi - lo < min_width:
                mid = (lo + hi) / 2
                lo, hi = mid - min_width / 2, mid + min_width / 2
                if hi > total:
                    lo, hi = total - min_width, total
                if lo < 0:
                    lo, hi = 0.0, min_width
            overlap = np.clip(np.minimum(hi, tops) - np.maximum(lo, bottoms), 0.0, None)
            weight = overlap.sum()
            out[y, x] = (values * overlap).sum() / weight if weight != 0 else 0
    return out


def smootherstep(x: np.ndarray) -> np.ndarray:
    return x * x * x * (x * (6 * x - 15) + 10)


def difference_masks(settings: SoftInpaintingSettings, nmask: torch.Tensor, original: torch.Tensor,
                     processed: torch.Tensor, width: int, height: int) -> list[Image.Image]:
    """One "L" mask per image at ``width`` x ``height`` (255 = the generated pixels, 0 = the original's) from how far
    each latent pixel moved from the original."""
    latent_mask = (nmask[0] if nmask.dim() == 3 else nmask[:, 0]).float()
    scalar = 1 - torch.clamp(latent_mask, 0, 1) ** (settings.preservation_strength / 2)
    scalar = 0.5 * (1 - settings.mask_influence) + scalar * settings.mask_influence
    scalar = (scalar / (1.00001 - scalar)).cpu().numpy()
    distances = torch.linalg.vector_norm(processed.float() - original.float(), dim=1).cpu().numpy()
    kernel, center = gaussian_kernel(stddev_radius=1.5, max_radius=2)
    masks = []
    for i, distance in enumerate(distances):
        smooth = weighted_histogram_filter(distance, kernel, center, 0.9, 1.0, 1.0)
        smooth = weighted_histogram_filter(smooth, kernel, center, 0.25, 0.75, 1.0)
        image_scalar = scalar if scalar.ndim == 2 else scalar[i if scalar.shape[0] > i else 0]
        # threshold 0: every change is too much (keep 0), and no change at all keeps the original (0/0)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            ratio = smooth / (settings.difference_threshold * image_scalar)  # 1 where the original is half opaque
            keep = smootherstep(1 / (1 + ratio ** settings.difference_contrast))
        keep = np.where(np.isnan(keep), 1.0, keep)
        mask = Image.fromarray((255.0 * (1 - keep)).astype(np.uint8), "L")
        mask = img2img_ops.resize_image(2, mask, width, height).convert("L")
        masks.append(mask.filter(ImageFilter.GaussianBlur(radius=4)))  # no latent-pixel blocks
    return masks


def overlays(masks: Sequence[Image.Image], originals: Sequence[Image.Image],
             paste_to: Sequence[int] | None) -> list[tuple[Image.Image, Image.Image]]:
    """(overlay mask, RGBA overlay) per image for the final composite; with "Only masked" (``paste_to``) the masks
    are put back into the whole picture, the original kept outside the crop."""
    out = []
    for mask, original in zip(masks, originals):
        if paste_to is not None:
            mask = masking.uncrop(mask, original.size, paste_to).convert("L")
        elif mask.size != original.size:  # "Just resize (latent upscale)" keeps the original's size
            mask = mask.resize(original.size, Image.LANCZOS)
        out.append((mask, masking.create_overlay(original, mask)))
    return out
