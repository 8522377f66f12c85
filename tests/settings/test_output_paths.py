"""Output folders and file names from A1111's settings, through process_images."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from modules.settings import output_paths
from modules.core.request import GenerationRequest
from modules.settings.options import Options


def _tags(**over):
    values = dict(seed=42, prompt="a red, circle", negative_prompt="", steps=5, cfg_scale=7.0, width=64, height=64,
                  sampler="Euler a", scheduler="Automatic", model_name="tiny", model_hash="abcdef1234", styles=[],
                  clip_skip=1, denoising=None, batch_number=0, generation_number=0, job_timestamp="20261122000000",
                  now=dt.datetime(2026, 11, 22, 10, 11, 12))
    values.update(over)
    return output_paths.filename_tags(**values)


def test_default_folders_and_patterns(tmp_path):
    opts = Options(None)
    base = output_paths.base_directory(opts, tmp_path, tmp_path / "outputs", is_img2img=False, grid=False)
    assert base == tmp_path / "outputs" / "txt2img-images"
    assert output_paths.image_directory(opts, base, _tags(), grid=False) == base / "2026-11-22"
    assert output_paths.file_pattern(opts, grid=False) == "[seed]"
    assert output_paths.file_pattern(opts, grid=True) == ""
    opts.set("save_to_dirs", False)
    assert output_paths.image_directory(opts, base, _tags(), grid=False) == base
    assert output_paths.file_pattern(opts, grid=False) == "[seed]-[prompt_spaces]"


def test_outdir_settings_win_and_relative_ones_live_in_the_data_folder(tmp_path):
    opts = Options(None)
    opts.set("outdir_img2img_samples", "mine/i2i")
    assert output_paths.base_directory(opts, tmp_path, tmp_path / "o", is_img2img=True, grid=False) == tmp_path / "mine/i2i"
    opts.set("outdir_samples", str(tmp_path / "all"))
    assert output_paths.base_directory(opts, tmp_path, tmp_path / "o", is_img2img=True, grid=False) == tmp_path / "all"
    opts.set("outdir_grids", "g")
    assert output_paths.base_directory(opts, tmp_path, tmp_path / "o", is_img2img=False, grid=True) == tmp_path / "g"
    opts.set("directories_filename_pattern", "[model_name]/[date]")
    assert output_paths.image_directory(opts, tmp_path, _tags(), grid=False) == tmp_path / "tiny" / "2026-11-22"


def test_generation_uses_the_folder_and_file_name_settings(tiny_engine):
    opts = tiny_engine.options
    out = Path(tiny_engine.paths.data_dir) / "out"  # images are written inside the data folder only
    with opts.override(outdir_samples=str(out), save_to_dirs=False,
                       samples_filename_pattern="[seed]-[steps]-[prompt_words]", save_txt=True, samples_save=True):
        processed = tiny_engine.generate(GenerationRequest(prompt="red circle, blue", steps=2, width=64, height=64,
                                                           seed=77, do_not_save_grid=True))
    saved = [Path(p) for p in processed.saved_paths]
    assert len(saved) == 1 and saved[0].parent == out
    assert saved[0].stat().st_mode & 0o777 == 0o644
    assert saved[0].name.endswith("-77-2-red circle blue.png")
    assert saved[0].with_suffix(".txt").read_text(encoding="utf-8").rstrip("\n") == processed.infotexts[0]


def test_full_live_preview_is_the_vae_decode(tiny_engine):
    import torch

    latent = torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(0))
    with tiny_engine.options.override(show_progress_type="Full"):
        full = tiny_engine.preview_image(latent)
    assert full.size == (64, 64) and full.tobytes() == tiny_engine.decode(latent[None])[0].tobytes()
    cheap = tiny_engine.preview_image(latent)
    assert cheap.tobytes() != full.tobytes()
