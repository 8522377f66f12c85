"""Extras tab handler with real pixels: Lanczos by factor, scale-to with crop, batch, errors, a spandrel model."""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

from modules.settings import cmd_args
from modules.models import upscalers
from modules.engine.job_state import JobState
from modules.settings.options import Options
from modules.settings.paths import Paths
from modules.page.extras import BATCH, SCALE_TO, run_extras_ui
from modules.models.upscalers import UpscalerRegistry

LANCZOS = Image.Resampling.LANCZOS
REPO_ROOT = Path(__file__).resolve().parents[2]


def noise_image(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def make_engine(data: Path) -> SimpleNamespace:
    """What the Extras tab uses of an engine: upscalers, options, job state, paths; no model."""
    paths = Paths.from_args(cmd_args.parse_args(["--data-dir", str(data)], environ={}), REPO_ROOT)
    state = JobState()
    return SimpleNamespace(upscalers=UpscalerRegistry([data / "models"], device="cpu"),
                           options=Options(data / "config.json"), state=state, paths=paths,
                           exclusive=state.queue.hold)


@pytest.fixture()
def engine(tmp_path):
    return make_engine(tmp_path)


def save_png(image: Image.Image, path: Path, parameters: str | None = None) -> Path:
    info = PngImagePlugin.PngInfo()
    if parameters:
        info.add_text("parameters", parameters)
    image.save(path, pnginfo=info)
    return path


def test_lanczos_2x_equals_pil_and_is_saved_with_its_infotext(engine, tmp_path):
    src = noise_image(40, 24)
    path = save_png(src, tmp_path / "in.png", parameters="a cat\nSteps: 20, Seed: 1")
    out = run_extras_ui(engine, image=str(path), upscaling_resize=2, upscaler_1="Lanczos")
    assert out.error == ""
    [result] = out.images
    assert result.size == (80, 48)
    assert np.array_equal(np.asarray(result), np.asarray(src.resize((80, 48), LANCZOS)))
    assert out.html_info == "<p>Postprocess upscale by: 2.0, Postprocess upscaler: Lanczos</p>"
    [saved] = out.saved_paths
    assert Path(saved).parent == tmp_path / "outputs" / "extras-images"
    with Image.open(saved) as im:
        assert im.size == (80, 48) and np.array_equal(np.asarray(im.convert("RGB")), np.asarray(result))
        assert im.info["postprocessing"] == "Postprocess upscale by: 2.0, Postprocess upscaler: Lanczos"
        assert im.info["parameters"] == "a cat\nSteps: 20, Seed: 1"  # the source's infotext is kept
    assert "Saved 1 image to " in out.status_html()


def test_output_folder_setting_is_used(engine, tmp_path):
    engine.options.set("outdir_extras_samples", str(tmp_path / "elsewhere"))
    out = run_extras_ui(engine, image=noise_image(16, 16), upscaling_resize=2, upscaler_1="Nearest")
    assert Path(out.saved_paths[0]).parent == tmp_path / "elsewhere"


def expected_scale_to(src: Image.Image, w: int, h: int) -> Image.Image:
    """A1111's steps, written out: scale by max(w/W, h/H) with Lanczos, sides rounded down to multiples of 8, then
    a centred crop to exactly w x h."""
    s = max(w / src.width, h / src.height)
    up = src.resize((int(src.width * s), int(src.height * s)), LANCZOS)
    dest = (int(src.width * s // 8 * 8), int(src.height * s // 8 * 8))
    if up.size != dest:
        up = up.resize(dest, LANCZOS)
    left, top = w // 2 - up.width // 2, h // 2 - up.height // 2
    canvas = Image.new("RGB", (w, h))
    canvas.paste(up, (left, top))
    return canvas


def test_scale_to_with_and_without_crop(engine):
    src = noise_image(40, 24)
    out = run_extras_ui(engine, image=src, resize_mode=SCALE_TO, upscaling_resize_w=96, upscaling_resize_h=96,
                        upscaling_crop=True, upscaler_1="Lanczos", save=False)
    [result] = out.images
    assert result.size == (96, 96)
    assert np.array_equal(np.asarray(result), np.asarray(expected_scale_to(src, 96, 96)))
    assert "Postprocess upscale to: 96x96" in out.html_info and "Postprocess crop to: 96x96" in out.html_info
    assert out.saved_paths == []

    out = run_extras_ui(engine, image=src, resize_mode=SCALE_TO, upscaling_resize_w=96, upscaling_resize_h=96,
                        upscaling_crop=False, upscaler_1="Lanczos", save=False)
    s = 96 / 24  # covers 96x96: 160x96
    assert out.images[0].size == (math.floor(40 * s // 8 * 8), 96) == (160, 96)


def test_second_upscaler_is_blended_by_visibility(engine):
    src = noise_image(16, 16)
    out = run_extras_ui(engine, image=src, upscaling_resize=2, upscaler_1="Lanczos", upscaler_2="Nearest",
                        extras_upscaler_2_visibility=0.25, save=False)
    a = src.resize((32, 32), LANCZOS)
    b = src.resize((32, 32), Image.Resampling.NEAREST)
    assert np.array_equal(np.asarray(out.images[0]), np.asarray(Image.blend(a, b, 0.25)))
    assert "Postprocess upscaler 2: Nearest" in out.html_info


def test_batch_keeps_the_original_names(engine, tmp_path):
    files = [save_png(noise_image(16, 8, seed=i), tmp_path / f"photo{i}.png") for i in range(2)]
    out = run_extras_ui(engine, mode=BATCH, files=[str(f) for f in files], upscaling_resize=2, upscaler_1="Nearest")
    assert [im.size for im in out.images] == [(32, 16), (32, 16)]
    names = [Path(p).name for p in out.saved_paths]
    assert names[0].endswith("-photo0.png") and names[1].endswith("-photo1.png")
    assert "Saved 2 images to " in out.status_html()


@pytest.mark.parametrize("kwargs, message", [
    (dict(), "image: choose an image first"),
    (dict(mode=BATCH), "image_batch: choose one or more image files first"),
    (dict(image="IMG", upscaler_1="Nope"), "upscaler_1: unknown upscaler 'Nope'; choose one of None, Lanczos, Nearest"),
    (dict(image="IMG", upscaler_1="Lanczos", upscaling_resize=0), "upscaling_resize: must be above 0 and at most 8"),
    (dict(image="TXT", upscaler_1="Lanczos"), "image: notes.txt is not an image that can be read"),
])
def test_errors_are_one_line_naming_the_field(engine, tmp_path, kwargs, message):
    if kwargs.get("image") == "IMG":
        kwargs["image"] = noise_image(8, 8)
    elif kwargs.get("image") == "TXT":
        (tmp_path / "notes.txt").write_text("hello")
        kwargs["image"] = str(tmp_path / "notes.txt")
    out = run_extras_ui(engine, **kwargs)
    assert out.error.startswith(message) and out.images == [] and "\n" not in out.error
    assert 'class="sd-extras-error"' in out.status_html()


# --- a real upscaler model file through spandrel --------------------------------------------------------


def realesrgan_state_dict(scale: int, nf: int = 8, gc: int = 32, blocks: int = 1, seed: int = 0) -> dict:
    """Random weights with the key layout of Real-ESRGAN's RRDBNet files (``RealESRGAN_x4plus.pth``): conv_first,
    body.N.rdbK.convM, conv_body, conv_up1/2, conv_hr, conv_last; x2 models take pixel-unshuffled input (12
    channels). At toy widths (spandrel reads the widths from the shapes; growth 32 is what it assumes)."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}

    def conv(name: str, out_ch: int, in_ch: int) -> None:
        sd[f"{name}.weight"] = torch.randn(out_ch, in_ch, 3, 3, generator=g) * 0.05
        sd[f"{name}.bias"] = torch.randn(out_ch, generator=g) * 0.01

    conv("conv_first", nf, 3 * {4: 1, 2: 4, 1: 16}[scale])
    for b in range(blocks):
        for r in (1, 2, 3):
            for c in range(1, 6):
                conv(f"body.{b}.rdb{r}.conv{c}", nf if c == 5 else gc, nf + (c - 1) * gc)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        conv(name, nf, nf)
    conv("conv_last", 3, nf)
    return sd


@pytest.fixture()
def model_engine(tmp_path):
    if not upscalers.spandrel_available():
        pytest.skip("spandrel is not installed (tools/setup_env.sh installs it)")
    from safetensors.torch import save_file

    folder = tmp_path / "models" / "ESRGAN"
    folder.mkdir(parents=True)
    torch.save({"params_ema": realesrgan_state_dict(2)}, folder / "TinyESRGAN_x2.pth")  # as Real-ESRGAN ships them
    save_file(realesrgan_state_dict(4, seed=1), str(folder / "4x_TinyESRGAN.safetensors"))
    return make_engine(tmp_path)


def reference_run(path: Path, image: Image.Image) -> np.ndarray:
    """The model run directly by spandrel on the whole image, RGB in [0, 1], rounded as the upscaler does."""
    spandrel = upscalers.import_spandrel()
    model = spandrel.ModelLoader(device="cpu").load_from_file(str(path)).eval()
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        y = model(x)
    return (y[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def test_spandrel_model_files_are_listed_and_upscale(model_engine, tmp_path):
    names = model_engine.upscalers.names()
    assert names == ["None", "Lanczos", "Nearest", "4x_TinyESRGAN", "TinyESRGAN_x2"]
    src = noise_image(24, 16)
    out = run_extras_ui(model_engine, image=src, upscaling_resize=2, upscaler_1="TinyESRGAN_x2", save=False)
    assert out.error == ""
    [result] = out.images
    assert result.size == (48, 32)
    expected = reference_run(tmp_path / "models" / "ESRGAN" / "TinyESRGAN_x2.pth", src)
    assert np.array_equal(np.asarray(result), expected)
    assert not np.array_equal(np.asarray(result), np.asarray(src.resize((48, 32), LANCZOS)))
    assert model_engine.upscalers.get("TinyESRGAN_x2").scale == 2

    # a 4x model asked for 2x: one 4x pass, then Lanczos down to the target (A1111's upscaler loop)
    out = run_extras_ui(model_engine, image=src, upscaling_resize=2, upscaler_1="4x_TinyESRGAN", save=False)
    four = reference_run(tmp_path / "models" / "ESRGAN" / "4x_TinyESRGAN.safetensors", src)
    assert out.images[0].size == (48, 32)
    assert np.array_equal(np.asarray(out.images[0]), np.asarray(Image.fromarray(four).resize((48, 32), LANCZOS)))
    assert "Postprocess upscaler: 4x_TinyESRGAN" in out.html_info


def test_spandrel_import_leaves_no_torchvision_behind():
    import importlib.util
    import sys

    if not upscalers.spandrel_available():
        pytest.skip("spandrel is not installed")
    upscalers.import_spandrel()
    if importlib.util.find_spec("torchvision") is None:
        assert not any(name == "torchvision" or name.startswith("torchvision.") for name in sys.modules)


def test_a_broken_model_file_is_reported(tmp_path):
    if not upscalers.spandrel_available():
        pytest.skip("spandrel is not installed")
    folder = tmp_path / "models" / "ESRGAN"
    folder.mkdir(parents=True)
    torch.save({"unrelated.weight": torch.zeros(3)}, folder / "Mystery.pth")
    out = run_extras_ui(make_engine(tmp_path), image=noise_image(8, 8), upscaling_resize=2, upscaler_1="Mystery",
                        save=False)
    assert out.error.startswith("upscaler 'Mystery' (")
    assert out.error.endswith("Mystery.pth): not a model architecture that spandrel knows")
    assert out.images == []
