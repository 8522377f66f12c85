"""Settings: A1111 defaults, validation, config.json round trip, atomic save, overrides."""
import json
import threading
import logging
import os

import pytest

from modules.core import fileio
from modules.settings.options import OPTION_TABLE, OptionInfo, Options

A1111_DEFAULTS = {
    "sd_model_checkpoint": None, "sd_vae": "Automatic", "sd_vae_overrides_per_model_preferences": True,
    "CLIP_stop_at_last_layers": 1, "emphasis": "Original", "comma_padding_backtrack": 20, "randn_source": "GPU",
    "eta_noise_seed_delta": 0, "eta_ancestral": 1.0, "eta_ddim": 0.0, "use_old_scheduling": False,
    "enable_prompt_comments": True, "samples_save": True, "samples_format": "png", "grid_save": True,
    "grid_format": "png", "save_images_add_number": True, "outdir_samples": "",
    "outdir_txt2img_samples": "outputs/txt2img-images", "outdir_img2img_samples": "outputs/img2img-images",
    "outdir_extras_samples": "outputs/extras-images", "outdir_grids": "", "outdir_txt2img_grids": "outputs/txt2img-grids",
    "outdir_img2img_grids": "outputs/img2img-grids", "jpeg_quality": 80, "enable_pnginfo": True,
    "add_model_hash_to_info": True, "add_model_name_to_info": True, "add_vae_hash_to_info": True,
    "add_vae_name_to_info": True, "add_version_to_infotext": True, "add_user_name_to_info": False,
    "show_progress_every_n_steps": 10, "live_preview_content": "Prompt", "show_progressbar": True,
    "live_previews_enable": True, "extra_networks_default_multiplier": 1.0,
    "sd_checkpoint_hash": "", "upcast_attn": False, "sdxl_clip_l_skip": False, "img2img_fix_steps": False,
    "initial_noise_multiplier": 1.0, "inpainting_mask_weight": 1.0, "always_discard_next_to_last_sigma": False,
    "pad_cond_uncond": False, "save_to_dirs": True, "directories_filename_pattern": "[date]",
    "samples_filename_pattern": "", "s_churn": 0.0, "s_tmin": 0.0, "s_tmax": 0.0, "s_noise": 1.0,
    "s_min_uncond": 0.0, "override_settings_restore_afterwards": True,
}
# Where this web UI differs from A1111 v1.10.1 on purpose.
OWN_DEFAULTS = {
    "quicksettings_list": ["sd_model_checkpoint", "sd_vae"],  # A1111: the checkpoint only
    "show_progress_type": "Approx cheap",  # A1111: "Approx NN" (needs a model file not shipped here)
}


def test_a1111_defaults():
    opts = Options()
    for key, value in {**A1111_DEFAULTS, **OWN_DEFAULTS}.items():
        assert opts.get(key) == value, key
        assert type(opts.get(key)) is type(value), key
    assert opts.info("randn_source").current_choices() == ["GPU", "CPU", "NV"]
    assert "Approx cheap" in opts.info("show_progress_type").current_choices()
    assert opts.info("CLIP_stop_at_last_layers").minimum == 1 and opts.info("CLIP_stop_at_last_layers").maximum == 12
    assert opts.info("CLIP_stop_at_last_layers").infotext == "Clip skip"
    assert opts.samples_format == "png"  # attribute access, as A1111 code expects


def test_every_default_is_valid():
    from modules.settings.options import check_value
    for info in OPTION_TABLE:
        assert check_value(info, info.default) == info.default, info.key


def test_labels_and_sections():
    opts = Options()
    assert opts.labels()["samples_save"] == "Always save all generated images"
    sections = opts.sections()
    ids = [(sid, label) for sid, label, _ in sections]
    assert ("saving-images", "Saving images/grids") in ids and ("sd", "Stable Diffusion") in ids
    assert ("ui", "User interface") in ids and ("ui", "Live previews") in ids  # A1111 shares the id
    keys = dict(((sid, label), k) for sid, label, k in sections)
    assert "CLIP_stop_at_last_layers" in keys[("sd", "Stable Diffusion")]
    assert sum(len(k) for _, _, k in sections) == len(OPTION_TABLE)


def test_set_validates():
    opts = Options()
    assert opts.set("CLIP_stop_at_last_layers", 2) is True
    assert opts.set("CLIP_stop_at_last_layers", 2) is False  # unchanged
    assert opts.set("CLIP_stop_at_last_layers", 3.0) and opts.get("CLIP_stop_at_last_layers") == 3
    assert opts.set("eta_ancestral", 0) and opts.get("eta_ancestral") == 0.0 and isinstance(opts.get("eta_ancestral"), float)
    cases = [
        ("CLIP_stop_at_last_layers", 13, "maximum"),
        ("CLIP_stop_at_last_layers", 0, "minimum"),
        ("CLIP_stop_at_last_layers", 2.5, "integer"),
        ("CLIP_stop_at_last_layers", True, "integer"),
        ("samples_save", "yes", "true or false"),
        ("randn_source", "TPU", "not one of"),
        ("jpeg_quality", "80", "integer"),
        ("quicksettings_list", "sd_vae", "list"),
        ("sd_model_checkpoint", 5, "string"),
    ]
    for key, value, reason in cases:
        with pytest.raises(ValueError) as e:
            opts.set(key, value)
        assert key in str(e.value) and reason in str(e.value), (key, str(e.value))
    with pytest.raises(ValueError, match="unknown setting 'no_such_key'"):
        opts.set("no_such_key", 1)
    opts.set("sd_model_checkpoint", "model.safetensors [abc]")
    opts.set("sd_model_checkpoint", None)


def test_round_trip_keeps_unknown_keys(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"samples_format": "jpg", "my_extension_key": {"x": [1, 2]}, "CLIP_stop_at_last_layers": 2}))
    opts = Options(path)
    assert opts.get("samples_format") == "jpg" and opts.get("CLIP_stop_at_last_layers") == 2
    assert opts.get("my_extension_key") == {"x": [1, 2]} and "my_extension_key" in opts
    opts.set("grid_format", "webp")
    opts.save()
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["my_extension_key"] == {"x": [1, 2]}
    assert saved["grid_format"] == "webp" and saved["samples_format"] == "jpg"
    assert set(saved) == set(opts.data())
    again = Options(path)
    assert again.data() == opts.data()


def test_wrong_types_fall_back_with_warning(tmp_path, caplog):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"samples_save": "no", "jpeg_quality": 500, "randn_source": "XPU",
                                "CLIP_stop_at_last_layers": 2, "eta_ddim": 1}))
    with caplog.at_level(logging.WARNING):
        opts = Options(path)
    assert opts.get("samples_save") is True and opts.get("jpeg_quality") == 80 and opts.get("randn_source") == "GPU"
    assert opts.get("CLIP_stop_at_last_layers") == 2 and opts.get("eta_ddim") == 1.0  # int accepted for a float
    for key in ("samples_save", "jpeg_quality", "randn_source"):
        assert key in caplog.text


def test_corrupt_config_keeps_a_copy(tmp_path, caplog):
    path = tmp_path / "config.json"
    path.write_text('{"samples_save": false,')
    with caplog.at_level(logging.WARNING):
        opts = Options(path)
    assert opts.get("samples_save") is True
    assert (tmp_path / "config.json.corrupt").read_text() == '{"samples_save": false,'
    assert "config.json" in caplog.text


def test_a1111_migrations(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"sd_vae_as_default": True, "quicksettings": "sd_model_checkpoint, sd_vae"}))
    opts = Options(path)
    assert opts.get("sd_vae_overrides_per_model_preferences") is False
    assert opts.get("quicksettings_list") == ["sd_model_checkpoint", "sd_vae"]


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    opts = Options(path)
    opts.save()
    before = path.read_bytes()
    opts.set("samples_format", "webp")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        opts.save()
    assert path.read_bytes() == before  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temp file left
    monkeypatch.undo()
    opts.save()
    assert fileio.read_json(path)["samples_format"] == "webp"


def test_override_restores(tmp_path):
    opts = Options()
    opts.set("CLIP_stop_at_last_layers", 2)
    with opts.override(CLIP_stop_at_last_layers=1, sd_model_checkpoint="x.safetensors"):
        assert opts.get("CLIP_stop_at_last_layers") == 1 and opts.get("sd_model_checkpoint") == "x.safetensors"
    assert opts.get("CLIP_stop_at_last_layers") == 2 and opts.get("sd_model_checkpoint") is None
    # restored on error too, including after a bad value part-way through
    with pytest.raises(ValueError):
        with opts.override(eta_ddim=0.5, jpeg_quality=1000):
            pass
    assert opts.get("eta_ddim") == 0.0
    with pytest.raises(RuntimeError):
        with opts.override(eta_ddim=0.5):
            raise RuntimeError
    assert opts.get("eta_ddim") == 0.0


def test_on_change_callbacks():
    opts = Options()
    seen = []
    opts.on_change("sd_model_checkpoint", lambda: seen.append(opts.get("sd_model_checkpoint")))
    opts.set("sd_model_checkpoint", "a")
    opts.set("sd_model_checkpoint", "a")
    with opts.override(sd_model_checkpoint="b"):
        assert opts.get("sd_model_checkpoint") == "b"
    # A request's overrides are scoped to it: no change callbacks (A1111 sets them with run_callbacks=False).
    assert seen == ["a"]


def test_scoped_values_never_reach_another_thread():
    opts = Options()
    opts.set("eta_ddim", 0.25)
    inside, outside = threading.Event(), threading.Event()
    seen = {}

    def reader():
        inside.wait(5)
        seen["other"] = opts.get("eta_ddim")
        outside.set()

    thread = threading.Thread(target=reader)
    thread.start()
    with opts.scoped({"eta_ddim": 0.75}):
        inside.set()
        outside.wait(5)
        seen["own"] = opts.get("eta_ddim")
        assert opts.is_scoped("eta_ddim") and opts.data()["eta_ddim"] == 0.25
    thread.join(5)
    assert seen == {"other": 0.25, "own": 0.75}
    assert opts.get("eta_ddim") == 0.25 and not opts.is_scoped("eta_ddim")


def test_add_option_for_extensions(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"ext_strength": 0.5, "ext_bad": "zz"}))
    opts = Options(path)
    assert opts.get("ext_strength") == 0.5  # kept though unknown
    opts.add_option(OptionInfo("ext_strength", 1.0, "Strength", section=("ext", "My ext"), minimum=0.0, maximum=1.0))
    opts.add_option(OptionInfo("ext_bad", 3, "Bad"))
    assert opts.get("ext_strength") == 0.5 and opts.get("ext_bad") == 3
    with pytest.raises(ValueError):
        opts.set("ext_strength", 2.0)
    assert opts.data()["ext_strength"] == 0.5


def test_dynamic_choices():
    vaes = ["a.pt"]
    opts = Options()
    opts.add_option(OptionInfo("sd_vae", "Automatic", "SD VAE", choices=lambda: ["Automatic", "None"] + vaes))
    opts.set("sd_vae", "a.pt")
    with pytest.raises(ValueError, match="sd_vae"):
        opts.set("sd_vae", "b.pt")


def test_data_is_a_copy():
    opts = Options()
    d = opts.data()
    d["quicksettings_list"].append("zzz")
    assert opts.get("quicksettings_list") == ["sd_model_checkpoint", "sd_vae"]
