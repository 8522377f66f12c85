"""Paths: A1111's default layout, this project's embeddings folders, flag overrides."""
import dataclasses
from pathlib import Path

import pytest

from modules.settings.cmd_args import parse_args
from modules.settings.paths import Paths


def make(tmp_path, *argv, environ=None):
    args = parse_args(["--data-dir", str(tmp_path)] + list(argv), environ={})
    return Paths.from_args(args, repo_root=tmp_path / "repo", environ=environ or {})


def test_defaults(tmp_path):
    p = make(tmp_path)
    m = tmp_path / "models"
    assert p.data_dir == tmp_path and p.models_dir == m
    assert p.ckpt_dirs == (m / "Stable-diffusion",)
    assert p.sd_models_dir == m / "Stable-diffusion"
    assert p.vae_dirs == (m / "VAE",)
    assert p.lora_dirs == (m / "Lora", m / "LyCORIS")
    assert p.hypernetwork_dirs == (m / "hypernetworks",)
    assert p.embeddings_dirs == (m / "embeddings",)  # <data>/embeddings does not exist
    assert p.extensions_dir == tmp_path / "extensions"
    assert p.outputs_dir == tmp_path / "outputs"
    assert p.txt2img_samples_dir == tmp_path / "outputs" / "txt2img-images"
    assert p.img2img_samples_dir == tmp_path / "outputs" / "img2img-images"
    assert p.txt2img_grids_dir == tmp_path / "outputs" / "txt2img-grids"
    assert p.img2img_grids_dir == tmp_path / "outputs" / "img2img-grids"
    assert p.extras_samples_dir == tmp_path / "outputs" / "extras-images"
    assert p.config_file == tmp_path / "config.json"
    assert p.ui_config_file == tmp_path / "ui-config.json"
    assert p.styles_files == (tmp_path / "styles.csv",)
    assert p.cache_dir == tmp_path / "cache"
    assert p.params_txt == tmp_path / "params.txt"


def test_frozen(tmp_path):
    p = make(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.data_dir = Path("/")


def test_repo_root_is_default_data_dir(repo_root):
    p = Paths.from_args(parse_args([], environ={}), repo_root=repo_root, environ={})
    assert p.data_dir == repo_root
    assert p.models_dir == repo_root / "models"
    assert p.embeddings_dirs[0] == repo_root / "models" / "embeddings"


def test_embeddings_dirs(tmp_path):
    (tmp_path / "embeddings").mkdir()
    p = make(tmp_path)
    assert p.embeddings_dirs == (tmp_path / "models" / "embeddings", tmp_path / "embeddings")
    p = make(tmp_path, "--embeddings-dir", str(tmp_path / "emb2"))
    assert p.embeddings_dirs == (tmp_path / "models" / "embeddings", tmp_path / "embeddings", tmp_path / "emb2")


def test_overrides(tmp_path):
    p = make(tmp_path, "--models-dir", str(tmp_path / "M"), "--ckpt-dir", str(tmp_path / "ck"),
             "--vae-dir", str(tmp_path / "vae"), "--lora-dir", str(tmp_path / "lo"),
             "--hypernetwork-dir", str(tmp_path / "hn"), "--ui-settings-file", str(tmp_path / "s.json"),
             "--ui-config-file", str(tmp_path / "u.json"), "--no-prompt-history")
    m = tmp_path / "M"
    assert p.models_dir == m
    assert p.ckpt_dirs == (tmp_path / "ck", m / "Stable-diffusion")  # A1111 walks --ckpt-dir first
    assert p.sd_models_dir == m / "Stable-diffusion"
    assert p.vae_dirs == (m / "VAE", tmp_path / "vae")
    assert p.lora_dirs == (tmp_path / "lo", m / "LyCORIS")
    assert p.hypernetwork_dirs == (tmp_path / "hn",)
    assert p.embeddings_dirs == (m / "embeddings",)
    assert p.config_file == tmp_path / "s.json"
    assert p.ui_config_file == tmp_path / "u.json"
    assert p.params_txt is None
    assert p.data_dir == tmp_path  # outputs stay under the data dir
    assert p.outputs_dir == tmp_path / "outputs"


def test_duplicate_dirs_removed(tmp_path):
    sd = tmp_path / "models" / "Stable-diffusion"
    p = make(tmp_path, "--ckpt-dir", str(sd), "--vae-dir", str(tmp_path / "models" / "VAE"))
    assert p.ckpt_dirs == (sd,)
    assert p.vae_dirs == (tmp_path / "models" / "VAE",)


def test_styles_files_repeat_and_glob(tmp_path):
    for name in ("b2.csv", "b10.csv", "b1.csv"):
        (tmp_path / name).write_text("name,prompt\n")
    p = make(tmp_path, "--styles-file", str(tmp_path / "a.csv"), "--styles-file", str(tmp_path / "b*.csv"))
    assert p.styles_files == (tmp_path / "a.csv", tmp_path / "b1.csv", tmp_path / "b10.csv", tmp_path / "b2.csv")
    assert make(tmp_path, "--styles-file", str(tmp_path / "none*.csv")).styles_files == ()


def test_cache_dir_from_environment(tmp_path):
    p = make(tmp_path, environ={"SD_WEBUI_CACHE_DIR": str(tmp_path / "elsewhere")})
    assert p.cache_dir == tmp_path / "elsewhere"


def test_minimal_namespace(tmp_path):
    import argparse
    p = Paths.from_args(argparse.Namespace(), repo_root=tmp_path, environ={})
    assert p.data_dir == tmp_path and p.lora_dirs == (tmp_path / "models" / "Lora", tmp_path / "models" / "LyCORIS")


def test_resolve_setting_paths(tmp_path):
    p = make(tmp_path)
    assert p.resolve("outputs/txt2img-images") == tmp_path / "outputs" / "txt2img-images"
    assert p.resolve(str(tmp_path / "abs")) == tmp_path / "abs"
