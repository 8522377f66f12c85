"""img2img image operations: resize modes on an asymmetric pattern, flatten, VAE tensor conversion."""
import numpy as np
import pytest
import torch
from PIL import Image

from modules.core.img2img_ops import (
    RESIZE_MODES, flatten, image_to_tensor, resize_image, tensor_to_images,
)

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


def gradient(w=30, h=20):
    """Every pixel distinct: R encodes x, G encodes y."""
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = (np.arange(w) * 8)[None, :]
    a[..., 1] = (np.arange(h) * 12)[:, None]
    a[..., 2] = 77
    return Image.fromarray(a)


def banded(w=30, h=20):
    """Gradient inside; top 2 rows red, bottom 2 green, left 2 columns blue, right 2 yellow."""
    a = np.array(gradient(w, h))
    a[:, :2] = BLUE
    a[:, -2:] = YELLOW
    a[:2] = RED
    a[-2:] = GREEN
    return Image.fromarray(a)


def px(im):
    return np.array(im)


def test_mode_names():
    assert RESIZE_MODES == ["Just resize", "Crop and resize", "Resize and fill", "Just resize (latent upscale)"]


def test_just_resize_stretches_with_lanczos():
    im = gradient()
    out = resize_image(0, im, 45, 50)
    assert out.size == (45, 50)
    assert np.array_equal(px(out), px(im.resize((45, 50), Image.Resampling.LANCZOS)))
    assert np.array_equal(px(resize_image(0, im, 30, 20)), px(im))


def test_latent_mode_is_just_resize_at_image_level():
    im = gradient()
    assert np.array_equal(px(resize_image(3, im, 45, 50)), px(resize_image(0, im, 45, 50)))


def test_crop_and_resize_taller_target_crops_the_sides():
    im = gradient()
    out = resize_image(1, im, 20, 20)
    assert out.size == (20, 20)
    assert np.array_equal(px(out), px(im)[:, 5:25])  # centred: 5 columns cut on each side


def test_crop_and_resize_wider_target_crops_top_and_bottom():
    im = gradient()
    out = resize_image(1, im, 30, 10)
    assert np.array_equal(px(out), px(im)[5:15])


def test_crop_and_resize_scales_to_cover():
    im = gradient()
    out = resize_image(1, im, 40, 40)  # scaled to 60x40, then 10 columns cut on each side
    expected = px(im.resize((60, 40), Image.Resampling.LANCZOS))[:, 10:50]
    assert out.size == (40, 40)
    assert np.array_equal(px(out), expected)


def test_resize_and_fill_vertical_bands_take_the_edge_rows():
    im = banded()
    out = px(resize_image(2, im, 30, 30))
    assert np.array_equal(out[5:25], px(im))  # centred, not scaled
    assert (out[:5] == RED).all()
    assert (out[25:] == GREEN).all()


def test_resize_and_fill_horizontal_bands_take_the_edge_columns():
    im = banded()
    out = px(resize_image(2, im, 60, 20))
    assert np.array_equal(out[:, 15:45], px(im))
    # the corners of the source are red/green rows; the band copies each row's edge pixel
    assert (out[2:18, :15] == BLUE).all()
    assert (out[2:18, 45:] == YELLOW).all()
    assert (out[0, :15] == RED).all() and (out[19, 45:] == GREEN).all()


def test_resize_and_fill_odd_free_space_reaches_the_edge():
    out = px(resize_image(2, banded(), 30, 31))  # 5 rows above, 6 below
    assert (out[:5] == RED).all()
    assert (out[25:] == GREEN).all()


def test_resize_and_fill_scales_to_fit():
    out = resize_image(2, banded(), 60, 60)  # fits as 60x40, bands of 10 rows
    assert out.size == (60, 60)
    a = px(out).astype(int)
    assert np.abs(a[:8] - RED).max() <= 12
    assert np.abs(a[52:] - GREEN).max() <= 12


def test_resize_keeps_mask_mode_and_skips_upscaler_for_masks():
    calls = []

    def upscale(im, scale):
        calls.append(scale)
        return im.resize((int(im.width * scale), int(im.height * scale)), Image.Resampling.NEAREST)

    mask = Image.new("L", (30, 20), 255)
    for mode in range(4):
        assert resize_image(mode, mask, 64, 64, upscale).mode == "L"
    assert calls == []
    resize_image(0, gradient(), 60, 40, upscale)
    resize_image(0, gradient(), 15, 10, upscale)  # shrinking: no upscaler
    assert calls == [2.0]


def test_resize_with_upscaler_then_exact_size():
    im = gradient(8, 8)

    def nearest(im, scale):
        return im.resize((int(im.width * scale), int(im.height * scale)), Image.Resampling.NEAREST)

    out = resize_image(0, im, 16, 16, nearest)
    assert np.array_equal(px(out), px(im).repeat(2, 0).repeat(2, 1))


def test_resize_rejects_unknown_mode_and_bad_size():
    with pytest.raises(ValueError):
        resize_image(4, gradient(), 10, 10)
    with pytest.raises(ValueError):
        resize_image(0, gradient(), 0, 10)


def test_flatten_composites_alpha_over_background():
    a = np.zeros((2, 2, 4), np.uint8)
    a[0, 0] = (255, 0, 0, 255)
    a[0, 1] = (255, 0, 0, 0)
    a[1, 0] = (255, 0, 0, 128)
    a[1, 1] = (0, 0, 255, 255)
    out = flatten(Image.fromarray(a, "RGBA"), "#ffffff")
    assert out.mode == "RGB"
    o = px(out).astype(int)
    assert tuple(o[0, 0]) == (255, 0, 0)
    assert tuple(o[0, 1]) == (255, 255, 255)
    assert np.abs(o[1, 0] - (255, 127, 127)).max() <= 1
    assert tuple(o[1, 1]) == (0, 0, 255)
    black = flatten(Image.fromarray(a, "RGBA"), "black")
    assert tuple(px(black)[0, 1]) == (0, 0, 0)


def test_flatten_other_alpha_modes_and_plain_rgb():
    la = Image.new("LA", (2, 2), (0, 0))
    assert tuple(px(flatten(la, "#ffffff"))[0, 0]) == (255, 255, 255)
    rgb = gradient(4, 4)
    assert np.array_equal(px(flatten(rgb)), px(rgb))
    assert flatten(rgb.convert("L")).mode == "RGB"


def test_image_to_tensor_range_and_layout():
    im = gradient(6, 4)
    t = image_to_tensor(im)
    assert t.shape == (1, 3, 4, 6) and t.dtype == torch.float32
    a = px(im).astype(np.float32)
    assert torch.allclose(t[0, 0], torch.from_numpy(a[..., 0] / 127.5 - 1))
    black_white = image_to_tensor([Image.new("RGB", (2, 2), (0, 0, 0)), Image.new("RGB", (2, 2), (255, 255, 255))])
    assert black_white.shape == (2, 3, 2, 2)
    assert (black_white[0] == -1).all() and (black_white[1] == 1).all()


def test_image_to_tensor_converts_modes_and_checks_sizes():
    assert image_to_tensor(Image.new("L", (3, 3), 255)).shape == (1, 3, 3, 3)
    with pytest.raises(ValueError):
        image_to_tensor([Image.new("RGB", (2, 2)), Image.new("RGB", (3, 2))])
    with pytest.raises(ValueError):
        image_to_tensor([])


def test_tensor_round_trip_is_exact():
    im = gradient()
    back = tensor_to_images(image_to_tensor(im))
    assert len(back) == 1 and np.array_equal(px(back[0]), px(im))


def test_tensor_to_images_clamps_and_rounds():
    t = torch.tensor([2.0, -3.0, 10.6 / 127.5 - 1, 10.4 / 127.5 - 1]).view(1, 1, 1, 4).expand(2, 3, 1, 4)
    ims = tensor_to_images(t)
    assert len(ims) == 2
    assert list(px(ims[1])[0, :, 0]) == [255, 0, 11, 10]
    assert tensor_to_images(t[0])[0].size == (4, 1)
    with pytest.raises(ValueError):
        tensor_to_images(torch.zeros(1, 4, 2, 2))
