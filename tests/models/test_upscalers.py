"""Upscalers: built-ins, latent modes, model files (with a stand-in loader), tiling, Extras."""
import numpy as np
import pytest
import torch
from PIL import Image

from modules.models import upscalers
from modules.core.img2img_ops import resize_image
from modules.models.upscalers import (
    LATENT_UPSCALE_MODES, ModelUpscaler, Upscaler, UpscalerRegistry, UpscalerUnavailable, guess_scale,
    latent_upscale_modes_for_api, run_extras, tiled_apply, upscale_latent, upscale_with_model,
)

LANCZOS = Image.Resampling.LANCZOS


def px(im):
    return np.array(im)


def noise_image(w, h, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def builtins():
    return UpscalerRegistry([], device="cpu")


# ---- built-ins ----

def test_builtins_listed_for_api():
    reg = builtins()
    assert reg.names() == ["None", "Lanczos", "Nearest"]
    assert reg.upscalers_for_api() == [
        {"name": n, "model_name": None, "model_path": None, "model_url": None, "scale": 4}
        for n in ("None", "Lanczos", "Nearest")]
    for u in reg.list():
        assert isinstance(u, Upscaler)


def test_lanczos_by_factor_is_one_lanczos_resize():
    im = noise_image(32, 16)
    out = builtins().get("Lanczos").upscale(im, 2)
    assert out.size == (64, 32)
    assert np.array_equal(px(out), px(im.resize((64, 32), LANCZOS)))


def test_upscale_size_rounds_down_to_multiple_of_8():
    im = noise_image(30, 20)
    out = builtins().get("Lanczos").upscale(im, 2)
    assert out.size == (56, 40)
    assert np.array_equal(px(out), px(im.resize((60, 40), LANCZOS).resize((56, 40), LANCZOS)))
    assert builtins().get("Lanczos").upscale(noise_image(3, 3), 2).size == (6, 6)  # too small to round


def test_nearest_copies_pixels_exactly():
    im = noise_image(8, 8)
    out = builtins().get("Nearest").upscale(im, 2)
    assert np.array_equal(px(out), px(im).repeat(2, 0).repeat(2, 1))
    out3 = builtins().get("Nearest").upscale(im, 3)
    assert out3.size == (24, 24)
    assert np.array_equal(px(out3), px(im).repeat(3, 0).repeat(3, 1))


def test_none_upscaler():
    im = noise_image(30, 20)
    none = builtins().get("None")
    assert np.array_equal(px(none.upscale(im, 2)), px(im.resize((56, 40), LANCZOS)))
    assert np.array_equal(px(none.upscale_to(im, 61, 41)), px(im.resize((61, 41), LANCZOS)))


def test_upscale_to_exact_size():
    im = noise_image(8, 8)
    near = builtins().get("Nearest")
    assert np.array_equal(px(near.upscale_to(im, 16, 16)), px(im).repeat(2, 0).repeat(2, 1))
    assert near.upscale_to(im, 21, 13).size == (21, 13)


def test_for_resize():
    reg = builtins()
    assert reg.for_resize("None") is None and reg.for_resize(None) is None and reg.for_resize("") is None
    im = noise_image(8, 8)
    out = resize_image(0, im, 16, 16, reg.for_resize("Nearest"))
    assert np.array_equal(px(out), px(im).repeat(2, 0).repeat(2, 1))
    with pytest.raises(KeyError):
        reg.for_resize("missing")


def test_registry_hires_helpers(tmp_path):
    reg = UpscalerRegistry(tmp_path, device="cpu")  # one root given as a plain path
    assert reg.models_dirs == [tmp_path]
    assert reg.hr_choices() == [*LATENT_UPSCALE_MODES, "None", "Lanczos", "Nearest"]
    assert reg.exists("Latent (bicubic)") and reg.exists("Nearest") and not reg.exists("ESRGAN_4x")
    im = noise_image(8, 8)
    assert np.array_equal(px(reg.upscale_to(im, "Nearest", 16, 16)), px(im).repeat(2, 0).repeat(2, 1))
    assert np.array_equal(px(reg.upscale_to(im, "None", 20, 12)), px(im.resize((20, 12), LANCZOS)))


# ---- latent ----

def test_latent_modes_list_and_mapping():
    names = ["Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)",
             "Latent (nearest)", "Latent (nearest-exact)"]
    assert latent_upscale_modes_for_api() == [{"name": n} for n in names]
    assert LATENT_UPSCALE_MODES["Latent"] == ("bilinear", False)
    assert LATENT_UPSCALE_MODES["Latent (bicubic antialiased)"] == ("bicubic", True)
    assert upscalers.is_latent_upscaler("Latent (nearest)") and not upscalers.is_latent_upscaler("Lanczos")


@pytest.mark.parametrize("name", list(LATENT_UPSCALE_MODES))
def test_latent_shapes(name):
    lat = torch.randn(2, 4, 8, 12)
    out = upscale_latent(lat, name, 192, 128)
    assert out.shape == (2, 4, 16, 24) and out.dtype == torch.float32


def test_latent_values():
    row = torch.tensor([[[[0.0, 1.0]]]])
    assert torch.allclose(upscale_latent(row, "Latent", 32, 8)[0, 0, 0], torch.tensor([0.0, 0.25, 0.75, 1.0]))
    near = upscale_latent(row, "Latent (nearest)", 32, 8)[0, 0, 0]
    assert near.tolist() == [0.0, 0.0, 1.0, 1.0]
    step = torch.tensor([[[[0.0, 0.0, 1.0, 1.0]]]])
    bicubic = upscale_latent(step, "Latent (bicubic)", 64, 8)
    assert bicubic.min() < 0 and bicubic.max() > 1  # bicubic overshoots at a step, bilinear does not
    bilinear = upscale_latent(step, "Latent", 64, 8)
    assert bilinear.min() >= 0 and bilinear.max() <= 1


def test_latent_nearest_exact_differs_from_nearest():
    x = torch.tensor([[[[0.0, 1.0, 2.0]]]])
    assert upscale_latent(x, "Latent (nearest)", 16, 8)[0, 0, 0].tolist() == [0.0, 1.0]
    assert upscale_latent(x, "Latent (nearest-exact)", 16, 8)[0, 0, 0].tolist() == [0.0, 2.0]


def test_latent_antialias_applies_when_shrinking():
    stripes = torch.tensor([1.0, 0.0, 0.0, 0.0] * 4).view(1, 1, 1, 16)
    plain = upscale_latent(stripes, "Latent", 32, 8)
    smooth = upscale_latent(stripes, "Latent (antialiased)", 32, 8)
    assert torch.all(plain == 0) and torch.all(smooth > 0)


def test_latent_keeps_dtype_and_rejects_unknown():
    assert upscale_latent(torch.zeros(1, 4, 4, 4, dtype=torch.float16), "Latent", 64, 64).dtype == torch.float16
    with pytest.raises(ValueError):
        upscale_latent(torch.zeros(1, 4, 4, 4), "Latent (lanczos)", 64, 64)


# ---- model files ----

class NearestNet(torch.nn.Module):
    """A stand-in SR model: 1x1 conv copying each channel s*s times, then PixelShuffle = nearest upscale."""

    def __init__(self, scale=2):
        super().__init__()
        self.scale = scale
        self.conv = torch.nn.Conv2d(3, 3 * scale * scale, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            for c in range(3):
                self.conv.weight[c * scale * scale:(c + 1) * scale * scale, c] = 1
        self.shuffle = torch.nn.PixelShuffle(scale)
        self.calls = []

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        return self.shuffle(self.conv(x))


def make_models(root):
    files = ["ESRGAN/4x-Foo.pth", "ESRGAN/sub/2x_Bar.pt", "ESRGAN/Lanczos.pth", "ESRGAN/notes.txt",
             "RealESRGAN/RealESRGAN_x4plus.pth", "DAT/DAT_x2.safetensors", "DAT/4x-Foo.pth", "SwinIR/Plain.PTH"]
    for f in files:
        p = root / f
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    return root


def test_registry_lists_model_files(tmp_path, monkeypatch):
    monkeypatch.setattr(upscalers, "spandrel_available", lambda: False)
    reg = UpscalerRegistry([make_models(tmp_path)], device="cpu")
    names = reg.names()
    assert names[:3] == ["None", "Lanczos", "Nearest"]
    assert set(names[3:]) == {"4x-Foo", "2x_Bar", "Lanczos (ESRGAN)", "R-ESRGAN 4x+", "DAT x2", "4x-Foo (DAT)",
                              "Plain"}
    api = {d["name"]: d for d in reg.upscalers_for_api()}
    assert api["R-ESRGAN 4x+"] == {"name": "R-ESRGAN 4x+", "model_name": "RealESRGAN",
                                   "model_path": str(tmp_path / "RealESRGAN/RealESRGAN_x4plus.pth"),
                                   "model_url": None, "scale": 4}
    assert api["2x_Bar"]["scale"] == 2 and api["DAT x2"]["scale"] == 2 and api["Plain"]["scale"] == 4
    assert reg.missing_reason and "spandrel" in reg.missing_reason
    assert not reg.get("4x-Foo").available
    with pytest.raises(UpscalerUnavailable, match="spandrel"):
        reg.get("4x-Foo").upscale(noise_image(8, 8), 4)


def test_registry_extra_dirs_and_refresh(tmp_path):
    extra = tmp_path / "elsewhere"
    extra.mkdir()
    (extra / "x2-Extra.pth").write_bytes(b"")
    reg = UpscalerRegistry([tmp_path / "models"], extra_dirs={"ESRGAN": [extra]}, device="cpu",
                           loader=lambda p, d: NearestNet(2))
    assert "x2-Extra" in reg and reg.get("x2-Extra").model_name == "ESRGAN"
    first = reg.get("x2-Extra")
    first.load()
    (extra / "New.pth").write_bytes(b"")
    reg.refresh()
    assert "New" in reg
    assert reg.get("x2-Extra") is first and first._model is not None  # loaded model kept


def test_guess_scale():
    assert guess_scale("4x-UltraSharp") == 4
    assert guess_scale("RealESRGAN_x2plus") == 2
    assert guess_scale("ESRGAN_4x") == 4
    assert guess_scale("1x_SkinDetail") == 1
    assert guess_scale("realesr-animevideov3") == 4


def stand_in_registry(tmp_path, net, **kw):
    (tmp_path / "ESRGAN").mkdir(parents=True, exist_ok=True)
    (tmp_path / "ESRGAN" / "Stand.pth").write_bytes(b"")
    loads = []

    def loader(path, device):
        loads.append((path.name, device))
        return net

    return UpscalerRegistry([tmp_path], device="cpu", loader=loader, **kw), loads


def test_model_upscaler_runs_the_model(tmp_path):
    net = NearestNet(2)
    reg, loads = stand_in_registry(tmp_path, net)
    up = reg.get("Stand")
    assert isinstance(up, ModelUpscaler) and up.available
    im = noise_image(16, 16)
    out = up.upscale(im, 2)
    assert np.array_equal(px(out), px(im).repeat(2, 0).repeat(2, 1))
    up.upscale(im, 2)
    assert loads == [("Stand.pth", torch.device("cpu"))]  # loaded once
    assert up.scale == 2  # read from the loaded model
    up.unload()
    up.upscale(im, 2)
    assert len(loads) == 2


def test_model_upscaler_repeats_passes_to_reach_scale(tmp_path):
    net = NearestNet(2)
    reg, _ = stand_in_registry(tmp_path, net, tile_size=0)
    im = noise_image(8, 8)
    out = reg.get("Stand").upscale(im, 4)
    assert [c[-2:] for c in net.calls] == [(8, 8), (16, 16)]
    assert np.array_equal(px(out), px(im).repeat(4, 0).repeat(4, 1))


def test_tiled_equals_untiled_for_a_pointwise_model():
    net = NearestNet(2)
    im = noise_image(40, 28)
    whole = upscale_with_model(net, im, tile_size=0)
    net.calls.clear()
    tiled = upscale_with_model(net, im, tile_size=16, tile_overlap=4)
    assert np.array_equal(px(tiled), px(whole))
    assert len(net.calls) == 3 * 2  # x starts 0, 12, 24; y starts 0, 12
    assert all(h <= 16 and w <= 16 for *_, h, w in net.calls)


def test_tiled_blending_is_close_for_a_local_model():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3, padding=1), torch.nn.PixelShuffle(2))
    x = torch.rand(1, 3, 30, 40)
    with torch.no_grad():
        whole = net(x)
        tiled = tiled_apply(net, x, 16, 8)
    assert tiled.shape == whole.shape == (1, 3, 60, 80)
    diff = (tiled - whole).abs()
    assert diff.mean() < 0.01
    # where only the first tile contributes, away from its cut edges: exact
    assert torch.allclose(tiled[..., :16, :16], whole[..., :16, :16], atol=1e-5)


def test_tiled_apply_checks_integer_scale():
    with pytest.raises(ValueError):
        tiled_apply(lambda t: t[..., :-1, :-1], torch.zeros(1, 3, 20, 20), 8, 2)


def test_model_load_errors_are_reported(tmp_path):
    (tmp_path / "DAT").mkdir()
    (tmp_path / "DAT" / "Broken.pth").write_bytes(b"")

    def loader(path, device):
        raise RuntimeError("unsupported architecture")

    reg = UpscalerRegistry([tmp_path], device="cpu", loader=loader)
    with pytest.raises(UpscalerUnavailable, match="Broken.*unsupported architecture"):
        reg.get("Broken").upscale(noise_image(8, 8), 2)


@pytest.mark.skipif(not upscalers.spandrel_available(), reason="spandrel is not installed")
def test_spandrel_loads_a_tiny_esrgan(tmp_path):
    from safetensors.torch import save_file

    # old-style ESRGAN (RRDBNet) keys: 4 filters, one RRDB block, growth 32 (spandrel's fixed value), 4x
    nf, gc = 4, 32
    sd = {"model.0.weight": torch.randn(nf, 3, 3, 3) * 0.1, "model.0.bias": torch.zeros(nf)}
    for r in range(3):
        for c in range(5):
            cin = nf + c * gc
            cout = gc if c < 4 else nf
            sd[f"model.1.sub.0.RDB{r + 1}.conv{c + 1}.0.weight"] = torch.randn(cout, cin, 3, 3) * 0.1
            sd[f"model.1.sub.0.RDB{r + 1}.conv{c + 1}.0.bias"] = torch.zeros(cout)
    sd["model.1.sub.1.weight"] = torch.randn(nf, nf, 3, 3) * 0.1
    sd["model.1.sub.1.bias"] = torch.zeros(nf)
    for i in (3, 6, 8):
        sd[f"model.{i}.weight"] = torch.randn(nf, nf, 3, 3) * 0.1
        sd[f"model.{i}.bias"] = torch.zeros(nf)
    sd["model.10.weight"] = torch.randn(3, nf, 3, 3) * 0.1
    sd["model.10.bias"] = torch.zeros(3)
    (tmp_path / "ESRGAN").mkdir()
    save_file(sd, str(tmp_path / "ESRGAN" / "4x_Tiny.safetensors"))
    reg = UpscalerRegistry([tmp_path], device="cpu", tile_size=16, tile_overlap=4)
    up = reg.get("4x_Tiny")
    assert up.scale == 4  # from the file name until loaded
    out = up.upscale(noise_image(24, 24), 4)  # tiled: 24 px > 16 px tiles
    assert out.size == (96, 96) and up.scale == 4


# ---- Extras ----

def test_extras_by_factor():
    im = noise_image(32, 16)
    info = {}
    out = run_extras(im, resize_mode=0, upscaling_resize=2, upscaler_1="Lanczos", info=info)
    assert np.array_equal(px(out), px(im.resize((64, 32), LANCZOS)))
    assert info == {"Postprocess upscale by": 2, "Postprocess upscaler": "Lanczos"}


def test_extras_none_returns_the_image():
    im = noise_image(30, 20)
    out = run_extras(im, upscaler_1="None", upscaler_2="Lanczos", extras_upscaler_2_visibility=1)
    assert np.array_equal(px(out), px(im))
    rgba = Image.new("RGBA", (4, 4), (1, 2, 3, 4))
    assert run_extras(rgba).mode == "RGB"


def test_extras_to_size_with_and_without_crop():
    im = noise_image(30, 20)
    up = builtins().get("Nearest").upscale(im, 64 / 20)  # scale 3.2 -> 96x64
    info = {}
    out = run_extras(im, resize_mode=1, upscaling_resize_w=64, upscaling_resize_h=64, upscaling_crop=True,
                     upscaler_1="Nearest", info=info)
    assert out.size == (64, 64)
    assert np.array_equal(px(out), px(up)[:, 16:80])
    assert info["Postprocess upscale to"] == "64x64" and info["Postprocess crop to"] == "64x64"
    uncropped = run_extras(im, resize_mode=1, upscaling_resize_w=64, upscaling_resize_h=64, upscaling_crop=False,
                           upscaler_1="Nearest")
    assert uncropped.size == (96, 64)


def test_extras_crop_never_leaves_black_bands():
    im = Image.new("RGB", (30, 20), (200, 100, 50))
    out = run_extras(im, resize_mode=1, upscaling_resize_w=100, upscaling_resize_h=100, upscaler_1="Lanczos")
    assert out.size == (100, 100)
    assert (px(out).astype(int) - (200, 100, 50)).__abs__().max() <= 1


def test_extras_second_upscaler_blend():
    im = noise_image(32, 16)
    first = run_extras(im, upscaler_1="Lanczos")
    second = run_extras(im, upscaler_1="Nearest")
    info = {}
    mixed = run_extras(im, upscaler_1="Lanczos", upscaler_2="Nearest", extras_upscaler_2_visibility=0.5, info=info)
    assert np.array_equal(px(mixed), px(Image.blend(first, second, 0.5)))
    assert info["Postprocess upscaler 2"] == "Nearest"
    off = run_extras(im, upscaler_1="Lanczos", upscaler_2="Nearest", extras_upscaler_2_visibility=0)
    assert np.array_equal(px(off), px(first))


def test_extras_with_a_model_and_unknown_names(tmp_path):
    reg, _ = stand_in_registry(tmp_path, NearestNet(2))
    im = noise_image(16, 8)
    out = run_extras(im, upscaler_1="Stand", upscaling_resize=2, registry=reg)
    assert np.array_equal(px(out), px(im).repeat(2, 0).repeat(2, 1))
    with pytest.raises(KeyError):
        run_extras(im, upscaler_1="Nope")
    with pytest.raises(KeyError):
        run_extras(im, upscaler_1="Lanczos", upscaler_2="Nope")
    with pytest.raises(ValueError):
        run_extras(im, upscaler_1="Lanczos", resize_mode=2)
