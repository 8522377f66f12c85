"""Inpainting masks: binarising, blur, crop regions, fill, overlay composite, latent masks, the whole set-up."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from modules.core.img2img_ops import flatten, resize_image
from modules.core.masking import (
    INPAINTING_FILL_NAMES, apply_overlay, blur_kernel_size, blur_mask, create_binary_mask, create_overlay,
    expand_crop_region, fill, fill_latent, get_crop_region, mask_for_overlay, mask_to_latent,
    prepare_inpaint, prepare_mask,
)


def px(im):
    return np.array(im)


def rect_mask(w, h, box, value=255):
    a = np.zeros((h, w), np.uint8)
    x1, y1, x2, y2 = box
    a[y1:y2, x1:x2] = value
    return Image.fromarray(a, "L")


def solid(w, h, colour):
    return Image.new("RGB", (w, h), colour)


def test_fill_names():
    assert INPAINTING_FILL_NAMES == ["fill", "original", "latent noise", "latent nothing"]


def test_binary_mask_from_alpha_and_from_greyscale():
    a = np.zeros((1, 3, 4), np.uint8)
    a[0, :, 3] = (0, 128, 129)
    rgba = Image.fromarray(a, "RGBA")
    assert list(px(create_binary_mask(rgba))[0]) == [0, 0, 255]
    assert list(px(create_binary_mask(rgba, round=False))[0]) == [0, 128, 129]
    opaque = Image.new("RGBA", (2, 1), (255, 255, 255, 255))  # opaque RGBA: read as greyscale
    assert list(px(create_binary_mask(opaque))[0]) == [255, 255]
    grey = Image.new("RGB", (2, 1), (100, 100, 100))
    assert create_binary_mask(grey).mode == "L" and px(create_binary_mask(grey))[0, 0] == 100


def test_kernel_size_formula():
    assert blur_kernel_size(4) == 21
    assert blur_kernel_size(0.5) == 3
    assert blur_kernel_size(1) == 7


def impulse(size=41):
    a = np.zeros((size, size), np.uint8)
    a[size // 2, size // 2] = 255
    return Image.fromarray(a, "L")


def test_blur_is_symmetric_and_separable():
    m = rect_mask(41, 41, (16, 16, 25, 25))
    out = px(blur_mask(m, 4, 4)).astype(int)
    assert np.array_equal(out, out[::-1]) and np.array_equal(out, out[:, ::-1])
    assert np.abs(out - out.T).max() <= 1  # x then y, rounded to 8 bits in between (as two cv2 passes)
    assert out[20, 20] == out.max() and 0 < out[20, 20] < 255
    assert out[20, 11] > 0 and out[20, 5] == 0  # spreads 10 px (kernel 21) past the square at most


def test_blur_x_only_matches_the_truncated_gaussian():
    sigma = 4
    out = px(blur_mask(impulse(), sigma, 0)).astype(int)
    assert (out[:20] == 0).all() and (out[21:] == 0).all()  # y untouched
    k = np.array([math.exp(-d * d / (2 * sigma * sigma)) for d in range(-10, 11)])
    k /= k.sum()
    row = out[20]
    assert np.array_equal(row[10:31], np.rint(255 * k).astype(int))
    assert row[9] == 0 and row[31] == 0  # kernel ends 10 px from the centre (size 21)


def test_blur_y_only_and_zero_blur():
    out = px(blur_mask(impulse(), 0, 2)).astype(int)
    assert (out[:, :20] == 0).all() and (out[:, 21:] == 0).all()
    assert np.array_equal(px(blur_mask(impulse(), 0, 0)), px(impulse()))


def test_blur_mirrors_at_the_border():
    a = np.zeros((1, 9), np.uint8)
    a[0, 1] = 255
    out = px(blur_mask(Image.fromarray(a, "L"), 1, 0)).astype(float)[0]
    # reflect-101 border (OpenCV's default): the edge pixel is not repeated, so the pixel next to it is
    # mirrored onto x = -1 and the edge pixel gets its weight twice
    k = np.array([math.exp(-d * d / 2) for d in range(-3, 4)])
    k /= k.sum()
    assert out[1] == np.rint(255 * (k[3] + k[1]))
    assert out[0] == np.rint(255 * 2 * k[2])


def test_prepare_mask_invert_blur_and_resize():
    m = rect_mask(40, 30, (10, 5, 20, 15))
    inv = prepare_mask(m, blur_x=0, blur_y=0, invert=True)
    assert np.array_equal(px(inv), 255 - px(m))
    blurred = px(prepare_mask(m, blur_x=4, blur_y=4)).astype(int)
    blurred_inv = px(prepare_mask(m, blur_x=4, blur_y=4, invert=True)).astype(int)
    assert np.abs(blurred + blurred_inv - 255).max() <= 1
    sized = prepare_mask(m, width=80, height=60, resize_mode=0, blur_x=0, blur_y=0)
    assert sized.size == (80, 60) and sized.mode == "L"
    cropped = prepare_mask(m, width=30, height=30, resize_mode=1, blur_x=0, blur_y=0)
    assert np.array_equal(px(cropped), px(m)[:, 5:35])


def test_prepare_mask_blurs_before_resizing():
    m = rect_mask(40, 30, (10, 5, 20, 15))
    direct = prepare_mask(m, width=80, height=60, blur_x=4, blur_y=4)
    assert np.array_equal(px(direct), px(resize_image(0, blur_mask(m, 4, 4), 80, 60)))


def test_crop_region_padding_clamping_and_blank():
    m = rect_mask(40, 30, (10, 5, 20, 10))
    assert get_crop_region(m) == (10, 5, 20, 10)
    assert get_crop_region(m, 3) == (7, 2, 23, 13)
    assert get_crop_region(m, 100) == (0, 0, 40, 30)
    assert get_crop_region(rect_mask(40, 30, (0, 0, 0, 0))) is None
    assert get_crop_region(px(m), 1) == (9, 4, 21, 11)
    assert get_crop_region(rect_mask(40, 30, (10, 5, 20, 10), value=1)) == (10, 5, 20, 10)


def test_expand_crop_region_to_aspect():
    # the reference's own example: a 128x32 region processed at 512x512 becomes 128x128
    assert expand_crop_region((100, 100, 228, 132), 512, 512, 1000, 1000) == (100, 52, 228, 180)
    # pushed past the top: shifted down
    assert expand_crop_region((100, 0, 228, 32), 512, 512, 1000, 1000) == (100, 0, 228, 128)
    # pushed past the bottom: shifted up
    assert expand_crop_region((100, 100, 228, 132), 512, 512, 1000, 140) == (100, 12, 228, 140)
    # more than the image can give: clamped to it
    assert expand_crop_region((0, 0, 400, 100), 512, 512, 1000, 100) == (0, 0, 400, 100)
    # odd difference: the extra pixel goes to the far end
    assert expand_crop_region((50, 50, 60, 55), 64, 64, 100, 100) == (50, 48, 60, 58)
    # widening for a 2:1 processing size
    assert expand_crop_region((50, 50, 55, 60), 512, 256, 100, 100) == (43, 50, 63, 60)
    # already the right ratio: unchanged
    assert expand_crop_region((10, 10, 30, 20), 512, 256, 100, 100) == (10, 10, 30, 20)


def test_fill_keeps_unmasked_and_paints_from_surroundings():
    a = np.zeros((48, 64, 3), np.uint8)
    a[:, :32] = (200, 30, 30)
    a[:, 32:] = (30, 30, 200)
    image = Image.fromarray(a)
    mask = rect_mask(64, 48, (24, 0, 40, 48))  # a vertical strip across the colour boundary
    out = px(fill(image, mask)).astype(int)
    keep = px(mask) == 0
    assert np.array_equal(out[keep], a[keep].astype(int))
    left, right = out[:, 25], out[:, 38]
    assert (left[:, 0] > left[:, 2] + 50).all()  # near the red side: red
    assert (right[:, 2] > right[:, 0] + 50).all()  # near the blue side: blue


def test_fill_uniform_surroundings_give_their_colour():
    image = solid(40, 40, (120, 60, 30))
    image.paste((0, 255, 0), (15, 15, 25, 25))
    mask = rect_mask(40, 40, (15, 15, 25, 25))
    out = px(fill(image, mask)).astype(int)
    assert np.abs(out - (120, 60, 30)).max() <= 4  # 8-bit premultiplied-alpha rounding


def test_mask_for_overlay_doubles_and_clips():
    m = Image.fromarray(np.array([[0, 10, 127, 128, 200]], np.uint8), "L")
    assert list(px(mask_for_overlay(m))[0]) == [0, 20, 254, 255, 255]


def test_overlay_composite_keeps_original_where_mask_is_zero():
    original = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8))
    result = solid(30, 20, (9, 200, 50))
    mask = rect_mask(30, 20, (15, 0, 30, 20))
    out = px(apply_overlay(result, None, create_overlay(original, mask)))
    assert np.array_equal(out[:, :15], px(original)[:, :15])
    assert (out[:, 15:] == (9, 200, 50)).all()


def test_overlay_partial_mask_mixes():
    original, result = solid(4, 1, (200, 0, 0)), solid(4, 1, (0, 0, 200))
    mask = Image.fromarray(np.array([[0, 64, 128, 255]], np.uint8), "L")
    out = px(apply_overlay(result, None, create_overlay(original, mask))).astype(int)[0]
    assert tuple(out[0]) == (200, 0, 0) and tuple(out[3]) == (0, 0, 200)
    assert 130 <= out[1, 0] <= 160 and 40 <= out[1, 2] <= 70  # alpha 191: mostly original
    assert 90 <= out[2, 0] <= 110


def test_overlay_with_paste_location():
    original = Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8))
    mask = rect_mask(40, 30, (10, 5, 30, 25))
    generated = solid(64, 64, (1, 2, 3))
    out = px(apply_overlay(generated, (10, 5, 20, 20), create_overlay(original, mask)))
    inside = px(mask) == 255
    assert (out[inside] == (1, 2, 3)).all()
    assert np.array_equal(out[~inside], px(original)[~inside])


def test_apply_overlay_without_overlay_returns_rgb():
    out = apply_overlay(Image.new("RGBA", (3, 3), (5, 6, 7, 255)), None, None)
    assert out.mode == "RGB" and tuple(px(out)[0, 0]) == (5, 6, 7)


def test_apply_overlay_size_mismatch_raises():
    with pytest.raises(ValueError):
        apply_overlay(solid(4, 4, (0, 0, 0)), None, create_overlay(solid(5, 5, (0, 0, 0)), Image.new("L", (5, 5))))


def test_mask_to_latent_downsamples():
    m = rect_mask(64, 64, (0, 0, 32, 64))
    lat = mask_to_latent(m, 8, 8)
    assert lat.shape == (1, 1, 8, 8) and lat.dtype == torch.float32
    assert (lat[..., :4] == 1).all() and (lat[..., 4:] == 0).all()
    soft = mask_to_latent(m, 8, 8, round=False)
    assert 0.5 < soft[0, 0, 0, 3] < 1 and 0 < soft[0, 0, 0, 4] < 0.5
    assert (soft[..., :2] == 1).all() and (soft[..., 6:] == 0).all()
    assert mask_to_latent(m, 6, 10).shape == (1, 1, 6, 10)


def test_fill_latent_modes():
    init = torch.ones(2, 4, 2, 2)
    noise = torch.full((2, 4, 2, 2), 5.0)
    m = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    assert fill_latent(init, m, 1) is init and fill_latent(init, m, 0) is init
    nothing = fill_latent(init, m, 3)
    assert (nothing[:, :, 0, 0] == 0).all() and (nothing[:, :, 1, 1] == 1).all()
    noisy = fill_latent(init, m, 2, noise)
    assert (noisy[:, :, 0, 0] == 5).all() and (noisy[:, :, 0, 1] == 1).all()
    with pytest.raises(ValueError):
        fill_latent(init, m, 2)


def test_prepare_inpaint_whole_picture():
    image = Image.fromarray(np.random.default_rng(2).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    mask = rect_mask(64, 48, (16, 12, 48, 36))
    got = prepare_inpaint(image, mask, width=32, height=24, inpaint_full_res=False, mask_blur_x=0, mask_blur_y=0)
    assert got.image.size == got.latent_mask.size == got.overlay.size == (32, 24)
    assert got.paste_to is None
    assert np.array_equal(px(got.image), px(resize_image(0, image, 32, 24)))
    assert np.array_equal(px(got.latent_mask), px(resize_image(0, mask, 32, 24)))
    alpha = px(got.overlay)[..., 3]
    assert np.array_equal(alpha, 255 - px(mask_for_overlay(got.latent_mask)))
    assert got.extra_params == {}
    assert got.comment is None


def test_prepare_inpaint_only_masked_and_final_composite():
    image = Image.fromarray(np.random.default_rng(3).integers(0, 256, (80, 100, 3), dtype=np.uint8))
    mask = rect_mask(100, 80, (40, 30, 60, 50))
    got = prepare_inpaint(image, mask, width=64, height=64, inpaint_full_res=True, inpaint_full_res_padding=4,
                          mask_blur_x=0, mask_blur_y=0, inpainting_fill=1)
    assert got.paste_to == (36, 26, 28, 28)
    assert got.image.size == got.latent_mask.size == (64, 64)
    assert np.array_equal(px(got.image), px(resize_image(2, image.crop((36, 26, 64, 54)), 64, 64)))
    assert got.overlay.size == (100, 80)
    assert got.extra_params == {"Inpaint area": "Only masked", "Masked area padding": 4}
    final = px(apply_overlay(solid(64, 64, (0, 0, 0)), got.paste_to, got.overlay))
    outside = px(mask) == 0
    assert np.array_equal(final[outside], px(image)[outside])
    assert (final[px(mask) == 255] == 0).all()


def test_prepare_inpaint_blank_mask_only_masked_falls_back():
    image = solid(40, 30, (10, 20, 30))
    got = prepare_inpaint(image, Image.new("L", (40, 30)), width=32, height=32, inpaint_full_res=True)
    assert got.latent_mask is None and got.overlay is None and got.paste_to is None
    assert got.image.size == (32, 32) and "blank" in got.comment


def test_prepare_inpaint_fill_invert_and_params():
    image = solid(32, 32, (100, 100, 100))
    image.paste((255, 0, 0), (8, 8, 24, 24))
    mask = rect_mask(32, 32, (8, 8, 24, 24))
    got = prepare_inpaint(image, mask, width=32, height=32, inpaint_full_res=False, inpainting_fill=0,
                          mask_blur_x=0, mask_blur_y=0)
    assert got.extra_params == {"Masked content": "fill"}
    centre = px(got.image)[16, 16].astype(int)
    assert np.abs(centre - 100).max() <= 4  # the red square was painted over with the grey around it
    blurred = prepare_inpaint(image, mask, width=32, height=32, inpaint_full_res=False, inpainting_fill=0)
    assert list(blurred.extra_params) == ["Mask blur", "Masked content"]
    assert blurred.extra_params == {"Mask blur": 4, "Masked content": "fill"}
    inv = prepare_inpaint(image, mask, width=32, height=32, inpaint_full_res=False, invert=True,
                          mask_blur_x=2, mask_blur_y=3, inpainting_fill=3)
    assert inv.extra_params == {"Mask mode": "Inpaint not masked", "Masked content": "latent nothing"}
    assert px(inv.latent_mask)[16, 16] <= 2 and px(inv.latent_mask)[0, 0] == 255


def test_prepare_inpaint_flattens_transparency():
    image = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    got = prepare_inpaint(image, rect_mask(16, 16, (4, 4, 8, 8)), width=16, height=16, inpaint_full_res=False,
                          background="#102030")
    assert tuple(px(got.image)[0, 0]) == (16, 32, 48)
    assert np.array_equal(px(got.image), px(flatten(image, "#102030")))


def test_prepare_inpaint_latent_mode_keeps_image_size():
    image = solid(40, 30, (1, 2, 3))
    got = prepare_inpaint(image, rect_mask(40, 30, (5, 5, 10, 10)), width=64, height=48, resize_mode=3,
                          inpaint_full_res=False, inpainting_fill=0)
    assert got.image.size == (40, 30)
    assert got.latent_mask.size == got.overlay.size == (64, 48)


def test_prepare_inpaint_explicit_latent_mask():
    image = solid(32, 32, (50, 50, 50))
    latent_mask = rect_mask(16, 16, (0, 0, 8, 16))
    got = prepare_inpaint(image, rect_mask(32, 32, (0, 0, 4, 4)), width=32, height=32, inpaint_full_res=False,
                          latent_mask_image=latent_mask, inpainting_fill=0)
    assert got.latent_mask.size == (16, 16)
    assert (mask_to_latent(got.latent_mask, 4, 4)[..., :2] == 1).all()


def test_prepare_inpaint_mask_of_another_size_is_stretched_to_the_image():
    image = Image.fromarray(np.random.default_rng(4).integers(0, 256, (80, 100, 3), dtype=np.uint8))
    small_mask = rect_mask(50, 40, (20, 15, 30, 25))  # the same area as (40, 30, 60, 50) at 100x80
    got = prepare_inpaint(image, small_mask, width=64, height=64, inpaint_full_res=True, mask_blur_x=0,
                          mask_blur_y=0)
    x, y, w, h = got.paste_to
    assert abs(x - 40) <= 2 and abs(y - 30) <= 2 and abs(w - 20) <= 4 and w == h
    assert got.overlay.size == (100, 80)
