"""Inpainting masks as AUTOMATIC1111 v1.10.1 handles them (``modules/masking.py``, ``modules/processing.py``).

Conventions: masks are PIL "L" images, white (255) = the area to inpaint. ``paste_to``/``paste_loc`` is
``(x, y, w, h)`` in the original image; crop regions are ``(x1, y1, x2, y2)`` with x2/y2 exclusive.

The whole flow of A1111's img2img set-up is ``prepare_inpaint``; the pieces it uses are public for
callers (scripts, the API) that need one step alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps
from scipy.ndimage import convolve1d

from modules.core.img2img_ops import BICUBIC, RESIZE_FILL, RESIZE_LATENT, UpscaleFn, flatten, resize_image

# Index = the ``inpainting_fill`` value of the API.
INPAINTING_FILL_NAMES = ["fill", "original", "latent noise", "latent nothing"]
FILL, ORIGINAL, LATENT_NOISE, LATENT_NOTHING = range(4)

CropRegion = tuple[int, int, int, int]


def create_binary_mask(image: Image.Image, round: bool = True) -> Image.Image:
    """The mask as "L". An RGBA mask whose alpha is not fully opaque is read from its alpha channel
    (thresholded at > 128 when ``round``), as A1111 does for masks drawn in the browser; any other image
    is converted to greyscale as it is."""
    if image.mode == "RGBA" and image.getextrema()[-1] != (255, 255):
        alpha = image.getchannel("A")
        return alpha.point(lambda v: 255 if v > 128 else 0) if round else alpha
    return image.convert("L")


def blur_kernel_size(sigma: float) -> int:
    """A1111's odd kernel size for a mask blur of ``sigma`` pixels: 2 * int(2.5 * sigma + 0.5) + 1."""
    return 2 * int(2.5 * sigma + 0.5) + 1


def _gaussian_1d(sigma: float) -> np.ndarray:
    size = blur_kernel_size(sigma)
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    k = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return k / k.sum()


def blur_mask(mask: Image.Image, blur_x: float = 4, blur_y: float = 4) -> Image.Image:
    """Separable Gaussian blur of an "L" mask: first along x with sigma ``blur_x``, then along y with
    ``blur_y``, each with kernel size ``blur_kernel_size(sigma)`` and rounded to 8 bits after each pass,
    as A1111's two ``cv2.GaussianBlur`` calls with kernels (k, 1) and (1, k).

    Done with numpy/scipy (no OpenCV): the border is mirrored without repeating the edge pixel
    (scipy "mirror" = OpenCV's default BORDER_REFLECT_101). OpenCV's fixed-point 8-bit path can differ
    from this float computation by one level on some pixels. A sigma <= 0 skips that axis.
    """
    arr = np.asarray(mask.convert("L"), dtype=np.float64)
    for axis, sigma in ((1, blur_x), (0, blur_y)):
        if sigma > 0:
            arr = np.clip(np.rint(convolve1d(arr, _gaussian_1d(sigma), axis=axis, mode="mirror")), 0, 255)
    return Image.fromarray(arr.astype(np.uint8), "L")


def prepare_mask(mask_image: Image.Image, *, width: int | None = None, height: int | None = None,
                 resize_mode: int = 0, blur_x: float = 4, blur_y: float = 4, invert: bool = False,
                 round_mask: bool = True) -> Image.Image:
    """A user's mask -> "L" mask, white = inpaint: binarise (``create_binary_mask``), invert ("Inpaint not
    masked"), blur at the mask's own size, then, when ``width`` and ``height`` are given, fit it to the
    processing size with ``resize_mode`` (``img2img_ops.resize_image``). Leave the size out to keep the
    original size (the "Only masked" path crops first)."""
    mask = create_binary_mask(mask_image, round=round_mask)
    if invert:
        mask = ImageOps.invert(mask)
    if blur_x > 0 or blur_y > 0:
        mask = blur_mask(mask, blur_x, blur_y)
    if width is not None and height is not None:
        mask = resize_image(resize_mode, mask, width, height)
    return mask


def get_crop_region(mask: Image.Image | np.ndarray, pad: int = 0) -> CropRegion | None:
    """Bounding box (x1, y1, x2, y2) of the mask's non-zero pixels, grown by ``pad`` on every side and
    clamped to the image; None for an all-black mask (A1111's ``get_crop_region_v2``)."""
    if isinstance(mask, np.ndarray):
        mask = Image.fromarray(mask.astype(np.uint8) if mask.dtype != np.uint8 else mask)
    mask = mask.convert("L")
    box = mask.getbbox()
    if box is None:
        return None
    x1, y1, x2, y2 = box
    if not pad:
        return box
    return max(x1 - pad, 0), max(y1 - pad, 0), min(x2 + pad, mask.width), min(y2 + pad, mask.height)


def _grow_span(lo: int, hi: int, desired: float, limit: int) -> tuple[int, int]:
    """Grow [lo, hi) to about ``desired`` long, centred, then shift it back inside [0, limit)."""
    diff = int(desired - (hi - lo))
    lo -= diff // 2
    hi += diff - diff // 2
    if hi >= limit:
        lo -= hi - limit
        hi = limit
    if lo < 0:
        hi -= lo
        lo = 0
    return lo, min(hi, limit)


def expand_crop_region(crop_region: CropRegion, processing_width: int, processing_height: int,
                       image_width: int, image_height: int) -> CropRegion:
    """Grow a crop region along one axis until it has the processing size's aspect ratio, staying inside
    the image where it can (A1111's "Only masked" mode): a 128x32 region for 512x512 becomes 128x128.
    The shorter side grows by the truncated difference, split with the extra pixel at the far end;
    a region pushed past an edge is shifted back; one larger than the image is clamped to it."""
    x1, y1, x2, y2 = crop_region
    ratio_processing = processing_width / processing_height
    if (x2 - x1) / (y2 - y1) > ratio_processing:
        y1, y2 = _grow_span(y1, y2, (x2 - x1) / ratio_processing, image_height)
    else:
        x1, x2 = _grow_span(x1, x2, (y2 - y1) * ratio_processing, image_width)
    return x1, y1, x2, y2


def _keep_unmasked(image: Image.Image, mask: Image.Image) -> Image.Image:
    """Premultiplied ("RGBa") copy of ``image`` whose alpha is the inverted mask: opaque where kept."""
    kept = Image.new("RGBa", image.size)
    kept.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    return kept


def fill(image: Image.Image, mask: Image.Image) -> Image.Image:
    """Masked content "fill": paint the masked area with the colours around it.

    The unmasked part (alpha = inverted mask) is blurred with radii 256, 64, 16 (x2), 4 (x4), 2 (x2) and
    0, each layer alpha-composited over the last, so wide blurs give the far colours and narrow ones the
    near ones; the final radius-0 layer puts the unmasked pixels back unchanged."""
    kept = _keep_unmasked(image, mask)
    out = Image.new("RGBA", image.size)
    for radius, repeats in ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)):
        blurred = kept.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            out.alpha_composite(blurred)
    return out.convert("RGB")


def mask_for_overlay(processing_mask: Image.Image) -> Image.Image:
    """"Whole picture" mode's overlay mask: the resized mask doubled and clipped, so the generated image
    shows fully already from half the mask's value and the original only where the mask is near 0."""
    arr = np.asarray(processing_mask.convert("L"), dtype=np.float32) * 2
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")


def create_overlay(image: Image.Image, overlay_mask: Image.Image) -> Image.Image:
    """The original as RGBA with alpha = 255 - mask: composited over the result, it puts the original back
    where the mask is 0 and lets the generated pixels through where it is 255."""
    return _keep_unmasked(image, overlay_mask).convert("RGBA")


def uncrop(image: Image.Image, dest_size: tuple[int, int], paste_loc: Sequence[int]) -> Image.Image:
    """Put a generated crop back at ``paste_loc`` (x, y, w, h) on a transparent RGBA canvas of
    ``dest_size``, fitted to w x h with "Crop and resize"."""
    x, y, w, h = paste_loc
    canvas = Image.new("RGBA", dest_size)
    canvas.paste(resize_image(1, image, w, h), (x, y))
    return canvas


def apply_overlay(result_image: Image.Image, paste_loc: Sequence[int] | None,
                  overlay_image: Image.Image | None) -> Image.Image:
    """Final inpainting composite (A1111's overlay_images step): with ``paste_loc`` ("Only masked") the
    generated crop is first put back with ``uncrop``; then ``overlay_image`` (from ``create_overlay``)
    is alpha-composited on top. Returns RGB; the input unchanged (as RGB) when there is no overlay.
    A1111 also returns the pre-composite image; a caller that wants it calls ``uncrop`` itself."""
    if overlay_image is None:
        return result_image.convert("RGB")
    if paste_loc is not None:
        result_image = uncrop(result_image, overlay_image.size, paste_loc)
    out = result_image.convert("RGBA")
    if out.size != overlay_image.size:
        raise ValueError(f"result {out.size} and overlay {overlay_image.size} differ in size")
    out.alpha_composite(overlay_image)
    return out.convert("RGB")


def mask_to_latent(mask: Image.Image, latent_h: int, latent_w: int, round: bool = True) -> torch.Tensor:
    """Latent-space mask [1, 1, h, w] float32, 1 = area to regenerate (A1111's ``nmask``; its ``mask`` is
    1 minus this): the mask resized bicubically to the latent size, / 255, rounded to 0/1 when ``round``
    (the API's ``mask_round``)."""
    small = mask.convert("L").resize((latent_w, latent_h), resample=BICUBIC)
    t = torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0)
    if round:
        t = torch.round(t)
    return t[None, None]


def fill_latent(init_latent: torch.Tensor, latent_mask: torch.Tensor, inpainting_fill: int,
                noise: torch.Tensor | None = None) -> torch.Tensor:
    """Masked content in latent space: "latent noise" (2) replaces the masked area with ``noise`` (the
    seed's initial noise, same shape as the latent), "latent nothing" (3) zeroes it; 0 and 1 leave the
    latent as it is. ``latent_mask`` is ``mask_to_latent``'s tensor (broadcast over batch and channels)."""
    if inpainting_fill not in (LATENT_NOISE, LATENT_NOTHING):
        return init_latent
    m = latent_mask.to(device=init_latent.device, dtype=init_latent.dtype)
    kept = init_latent * (1 - m)
    if inpainting_fill == LATENT_NOTHING:
        return kept
    if noise is None:
        raise ValueError('"latent noise" needs the noise tensor')
    return kept + noise.to(device=init_latent.device, dtype=init_latent.dtype) * m


@dataclass
class InpaintInputs:
    """What ``prepare_inpaint`` hands the sampler and the final composite."""
    image: Image.Image  # RGB to VAE-encode: processing size (original size for resize mode 3)
    latent_mask: Image.Image | None  # "L", source for ``mask_to_latent``; None: plain img2img
    overlay: Image.Image | None  # RGBA for ``apply_overlay``
    paste_to: tuple[int, int, int, int] | None  # "Only masked": (x, y, w, h) in the original image
    extra_params: dict = field(default_factory=dict)  # infotext fields, in A1111's order
    comment: str | None = None  # a note for the user (blank mask in "Only masked" mode)


def prepare_inpaint(init_image: Image.Image, mask_image: Image.Image, *, width: int, height: int,
                    resize_mode: int = 0, mask_blur_x: float = 4, mask_blur_y: float = 4,
                    invert: bool = False, round_mask: bool = True, inpainting_fill: int = ORIGINAL,
                    inpaint_full_res: bool = True, inpaint_full_res_padding: int = 0,
                    latent_mask_image: Image.Image | None = None, background: str = "#ffffff",
                    upscale: UpscaleFn | None = None) -> InpaintInputs:
    """A1111's img2img set-up for one init image with a mask, in its order:

    1. ``prepare_mask`` at the mask's own size (binarise, invert, blur).
    2. "Only masked" (``inpaint_full_res``): the crop region of the blurred mask (+ padding), expanded to
       the processing aspect ratio; mask and image are cropped to it and fitted with "Resize and fill";
       the overlay uses the blurred mask. A blank mask falls back to plain img2img with a comment.
       "Whole picture": the mask is fitted with ``resize_mode`` and the overlay mask is it doubled.
    3. The init image is flattened onto ``background`` and fitted; the overlay is made from it.
    4. Masked content other than "original" runs ``fill`` on the processing image (A1111 does this for
       the latent modes too, before their latent step: ``fill_latent``).

    ``latent_mask_image`` is the API's ``latent_mask``: used as given (no blur) in place of the processed
    mask for ``fill`` and the latent mask; a mask of another size than the image is resized for ``fill``
    (A1111 fails there). A user mask of another size than the init image is stretched (bilinear) to the
    image's size after blurring. In resize mode 3 the image stays at its own size for the caller's
    latent resize, and the overlay is made at the processing size (A1111 makes it at the original size,
    which then fails to composite).
    """
    image = flatten(init_image, background)
    mask = prepare_mask(mask_image, blur_x=mask_blur_x, blur_y=mask_blur_y, invert=invert,
                        round_mask=round_mask)
    if mask.size != image.size:  # A1111 would crop the wrong region of the image
        mask = mask.resize(image.size, resample=Image.Resampling.BILINEAR)
    params: dict = {}
    if invert:
        params["Mask mode"] = "Inpaint not masked"
    if (mask_blur_x > 0 or mask_blur_y > 0) and mask_blur_x == mask_blur_y:
        params["Mask blur"] = mask_blur_x

    def fit(im: Image.Image, upscale_fn: UpscaleFn | None = upscale) -> Image.Image:
        return resize_image(resize_mode, im, width, height, upscale_fn)

    if inpaint_full_res:
        crop_region = get_crop_region(mask, inpaint_full_res_padding)
        if crop_region is None:
            return InpaintInputs(image if resize_mode == RESIZE_LATENT else fit(image), None, None, None, params,
                                 comment='Unable to perform "Inpaint Only mask" because mask is blank, '
                                         'switch to img2img mode.')
        crop_region = expand_crop_region(crop_region, width, height, mask.width, mask.height)
        x1, y1, x2, y2 = crop_region
        paste_to = (x1, y1, x2 - x1, y2 - y1)
        params["Inpaint area"] = "Only masked"
        params["Masked area padding"] = inpaint_full_res_padding
        overlay = create_overlay(image, mask)
        processing_mask = resize_image(RESIZE_FILL, mask.crop(crop_region), width, height)
        image = resize_image(RESIZE_FILL, image.crop(crop_region), width, height, upscale)
    else:
        paste_to = None
        processing_mask = fit(mask)
        if resize_mode == RESIZE_LATENT:  # the caller resizes the latent; the composite is at processing size
            overlay = create_overlay(fit(image, None), mask_for_overlay(processing_mask))
        else:
            image = fit(image)
            overlay = create_overlay(image, mask_for_overlay(processing_mask))

    latent_mask = latent_mask_image.convert("L") if latent_mask_image is not None else processing_mask
    if inpainting_fill != ORIGINAL:
        fill_mask = latent_mask if latent_mask.size == image.size else latent_mask.resize(image.size, BICUBIC)
        image = fill(image, fill_mask)
        params["Masked content"] = INPAINTING_FILL_NAMES[inpainting_fill]
    return InpaintInputs(image, latent_mask, overlay, paste_to, params)
