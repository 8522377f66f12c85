"""Settings tab and quicksettings: option -> control, applying changes, config.json, checkpoint switching."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from modules.page import settings as ui_settings
from modules.settings.options import OptionInfo, Options
from modules.engine.engine import Engine
from modules.engine.job_state import JobState
from modules.page.settings import (
    ApplyResult, apply_settings, component_spec, from_component_value, quicksettings_keys, settings_sections,
)

CKPT = "a.safetensors [0123456789]"


class StubEngine:
    """What the settings code reads of an engine, without a model (model keys are not applied with it); changes go
    through the real Engine's queue and ``apply_settings``."""

    exclusive = Engine.exclusive
    apply_settings = Engine.apply_settings
    _set_options = Engine._set_options

    def __init__(self, path: Path | None = None, **args):
        self.state = JobState()
        self.options = Options(path)
        self.args = SimpleNamespace(**args)
        self.vaes = SimpleNamespace(choices=lambda: ["Automatic", "None", "kl-f8.safetensors"], refresh=lambda: None)
        self.checkpoint_info = None
        self.networks = None

    def available_checkpoints(self):
        return [SimpleNamespace(title=CKPT, ids=[CKPT, "a.safetensors"], hash=None)]


def section_of(engine) -> dict[str, str]:
    return {i.key: label for _, label, infos in settings_sections(engine, quicksettings_keys(engine)) for i in infos}


# --- which options, where -------------------------------------------------------------------------------------


def test_the_options_the_issue_names_are_in_sensible_sections():
    where = section_of(StubEngine())
    for key in ("outdir_samples", "outdir_txt2img_samples", "outdir_img2img_samples", "outdir_extras_samples",
                "outdir_grids", "outdir_txt2img_grids", "outdir_img2img_grids"):
        assert where[key] == "Paths for saving", key
    for key in ("samples_filename_pattern", "samples_format", "grid_format", "samples_save", "grid_save",
                "jpeg_quality", "export_for_4chan"):
        assert where[key] == "Saving images/grids", key
    assert where["save_txt"] == where["enable_pnginfo"] == "Infotext"
    assert where["extra_networks_default_multiplier"] == "Extra Networks"
    for key in ("live_previews_enable", "show_progress_every_n_steps", "show_progress_type"):
        assert where[key] == "Live previews", key
    for key in ("comma_padding_backtrack", "emphasis", "randn_source", "CLIP_stop_at_last_layers"):
        assert where[key] == "Stable Diffusion", key
    assert where["quicksettings_list"] == "User interface"
    # in the top bar by default, so not in the tab (as A1111); hidden options never
    assert "sd_model_checkpoint" not in where and "sd_vae" not in where
    assert "disabled_extensions" not in where and "sd_checkpoint_hash" not in where


def test_quick_keys_come_back_to_the_tab_when_removed_from_the_bar():
    engine = StubEngine()
    engine.options.set("quicksettings_list", ["CLIP_stop_at_last_layers", "no_such_key"])
    assert quicksettings_keys(engine) == ["CLIP_stop_at_last_layers"]
    where = section_of(engine)
    assert where["sd_model_checkpoint"] == "Stable Diffusion" and where["sd_vae"] == "VAE"
    assert "CLIP_stop_at_last_layers" not in where


def test_folder_settings_hidden_with_hide_ui_dir_config():
    where = section_of(StubEngine(hide_ui_dir_config=True))
    assert not any(k.startswith("outdir_") for k in where)
    assert "samples_filename_pattern" not in where and "samples_format" in where


def test_section_ids_are_unique_even_when_a1111_shares_one():
    ids = [elem for elem, _, _ in settings_sections(StubEngine())]
    assert len(ids) == len(set(ids))
    assert "settings_section_user_interface" in ids and "settings_section_live_previews" in ids


def test_live_preview_methods_are_the_supported_ones_and_a1111_values_migrate(tmp_path):
    opts = Options()
    assert opts.info("show_progress_type").current_choices() == ["Approx cheap", "Full"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"show_progress_type": "Approx NN"}))
    assert Options(path).get("show_progress_type") == "Approx cheap"
    assert opts.get("quicksettings_list") == ["sd_model_checkpoint", "sd_vae"]


# --- option -> control ----------------------------------------------------------------------------------------


def spec(key: str, engine=None):
    engine = engine or StubEngine()
    info = engine.options.info(key)
    return component_spec(info, ui_settings.current_value(engine, key), ui_settings.option_choices(engine, info),
                          dynamic=key in ui_settings.DYNAMIC_CHOICES)


def test_controls_follow_the_option_definitions():
    s = spec("samples_save")
    assert (s.kind, s.kwargs["value"], s.kwargs["label"]) == ("checkbox", True, "Always save all generated images")
    s = spec("CLIP_stop_at_last_layers")
    assert s.kind == "slider"
    assert (s.kwargs["minimum"], s.kwargs["maximum"], s.kwargs["step"], s.kwargs["precision"], s.kwargs["value"]) == \
        (1, 12, 1, 0, 1)
    s = spec("extra_networks_default_multiplier")
    assert (s.kind, s.kwargs["minimum"], s.kwargs["maximum"], s.kwargs["step"]) == ("slider", 0.0, 2.0, 0.01)
    assert "precision" not in s.kwargs
    s = spec("emphasis")
    assert (s.kind, s.kwargs["choices"], s.kwargs["value"]) == ("radio", ["None", "Ignore", "Original", "No norm"],
                                                                "Original")
    assert spec("randn_source").kwargs["choices"] == ["GPU", "CPU", "NV"]
    assert (spec("samples_format").kind, spec("samples_format").kwargs["choices"]) == \
        ("radio", ["png", "jpg", "jpeg", "webp"])
    s = spec("img_downscale_threshold")
    assert (s.kind, s.kwargs["precision"]) == ("number", None)
    assert (spec("sdxl_crop_top").kind, spec("sdxl_crop_top").kwargs["precision"]) == ("number", 0)
    assert spec("grid_background_color").kind == "color"
    assert (spec("samples_filename_pattern").kind, spec("samples_filename_pattern").kwargs["value"]) == ("textbox", "")
    s = spec("lora_hide_unknown_for_versions")
    assert (s.kind, s.kwargs["choices"], s.kwargs["value"]) == ("checkboxgroup", ["SD1", "SD2", "SDXL"], [])
    s = spec("sd_vae")
    assert (s.kind, s.kwargs["choices"], s.kwargs["allow_custom_value"]) == \
        ("dropdown", ["Automatic", "None", "kl-f8.safetensors"], True)
    s = spec("sd_model_checkpoint")
    assert (s.kind, s.kwargs["choices"], s.kwargs["value"]) == ("dropdown", [CKPT], CKPT)  # unset: what will load
    s = spec("hide_samplers")
    assert s.kind == "dropdown" and s.kwargs["multiselect"] and "Euler a" in s.kwargs["choices"]
    s = spec("quicksettings_list")
    assert s.kind == "dropdown" and s.kwargs["multiselect"]
    assert s.kwargs["value"] == ["sd_model_checkpoint", "sd_vae"] and "CLIP_stop_at_last_layers" in s.kwargs["choices"]
    assert "disabled_extensions" not in s.kwargs["choices"]  # hidden options are not offered
    s = spec("postprocessing_operation_order")
    assert s.kind == "dropdown" and s.kwargs["multiselect"]


def test_restart_and_comment_are_the_help_line():
    assert spec("gradio_theme").kwargs["info"] == ui_settings.RESTART_NOTE
    assert spec("quicksettings_list").kwargs["info"].endswith(ui_settings.RESTART_NOTE)
    assert spec("show_progress_every_n_steps").kwargs["info"] == "in sampling steps - set to 0 to disable"
    assert spec("samples_save").kwargs["info"] is None


def test_a_value_no_longer_offered_is_kept_in_the_choices():
    engine = StubEngine()
    engine.options.add_option(OptionInfo("ext_mode", "b", "Mode", section=("ext", "Ext"), choices=lambda: ["a", "b"]))
    engine.options.set("ext_mode", "b")
    info = engine.options.info("ext_mode")
    s = component_spec(info, "gone", ["a", "b"], dynamic=True)
    assert s.kwargs["choices"] == ["a", "b", "gone"] and s.kwargs["value"] == "gone"


def test_control_values_convert_to_the_option_types():
    opts = Options()
    assert from_component_value(opts.info("CLIP_stop_at_last_layers"), 2.0) == 2
    assert type(from_component_value(opts.info("CLIP_stop_at_last_layers"), 2.0)) is int
    assert from_component_value(opts.info("extra_networks_default_multiplier"), 1) == 1.0
    assert from_component_value(opts.info("hide_samplers"), ("Euler", "DDIM")) == ["Euler", "DDIM"]
    assert from_component_value(opts.info("ui_reorder_list"), "prompt, image,") == ["prompt", "image"]
    assert from_component_value(opts.info("sd_model_checkpoint"), "") is None
    assert from_component_value(opts.info("samples_filename_pattern"), None) == ""
    with pytest.raises(ValueError, match="whole number"):
        from_component_value(opts.info("CLIP_stop_at_last_layers"), 2.5)
    with pytest.raises(ValueError, match="number is required"):
        from_component_value(opts.info("jpeg_quality"), None)
    with pytest.raises(ValueError, match="true or false"):
        from_component_value(opts.info("samples_save"), "yes")


# --- applying -------------------------------------------------------------------------------------------------


def test_apply_changes_errors_and_atomic_save(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"samples_save": True, "my_extension_key": {"kept": 1}}), encoding="utf-8")
    engine = StubEngine(path)
    calls = []
    engine.options.on_change("emphasis", lambda: calls.append(engine.options.get("emphasis")))
    result = apply_settings(engine, {
        "CLIP_stop_at_last_layers": 2.0,  # a slider gives floats
        "emphasis": "No norm",
        "samples_filename_pattern": "[seed]-[prompt_words]",
        "samples_save": True,  # unchanged
        "jpeg_quality": 101,  # out of range
        "samples_format": "bmp",  # not offered
        "sd_vae": "missing.safetensors",  # unknown VAE
    })
    assert result.changed == ["CLIP_stop_at_last_layers", "emphasis", "samples_filename_pattern"]
    assert result.errors == {
        "jpeg_quality": "101 is above the maximum 100",
        "samples_format": "'bmp' is not one of ['png', 'jpg', 'jpeg', 'webp']",
        "sd_vae": "unknown VAE 'missing.safetensors'; choose one of Automatic, None, kl-f8.safetensors",
    }
    labels = engine.options.labels()
    assert result.text(labels) == (
        "3 settings changed: CLIP_stop_at_last_layers, emphasis, samples_filename_pattern. Not changed: "
        "Quality for saved jpeg and avif images (jpeg_quality): 101 is above the maximum 100; "
        "File format for images (samples_format): 'bmp' is not one of ['png', 'jpg', 'jpeg', 'webp']; "
        "SD VAE (sd_vae): unknown VAE 'missing.safetensors'; choose one of Automatic, None, kl-f8.safetensors.")
    assert 'class="sd-settings-result sd-settings-error"' in result.html(labels)
    assert calls == ["No norm"]  # applied at once: on_change callbacks ran
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["CLIP_stop_at_last_layers"] == 2 and saved["emphasis"] == "No norm"
    assert saved["samples_filename_pattern"] == "[seed]-[prompt_words]"
    assert saved["jpeg_quality"] == 80 and saved["samples_format"] == "png"
    assert saved["my_extension_key"] == {"kept": 1}  # keys nobody registered survive
    assert path.read_text(encoding="utf-8").startswith('{\n    "')  # A1111's indent 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]  # no temporary file left


def test_apply_messages_for_nothing_one_and_restart(tmp_path):
    engine = StubEngine(tmp_path / "config.json")
    assert apply_settings(engine, {"samples_save": True}).text() == "0 settings changed."
    assert not (tmp_path / "config.json").exists()  # nothing changed, nothing written
    r = apply_settings(engine, {"quicksettings_list": ["sd_model_checkpoint", "CLIP_stop_at_last_layers"]})
    assert r.text() == ("1 setting changed: quicksettings_list. Restart the web UI to see: quicksettings_list.")
    assert json.loads((tmp_path / "config.json").read_text())["quicksettings_list"] == \
        ["sd_model_checkpoint", "CLIP_stop_at_last_layers"]


def test_controls_the_user_did_not_touch_do_not_undo_changes_made_meanwhile(tmp_path):
    engine = StubEngine(tmp_path / "config.json")
    shown = {"CLIP_stop_at_last_layers": 1, "emphasis": "Original"}
    engine.options.set("CLIP_stop_at_last_layers", 3)  # e.g. through the API after the page was opened
    r = apply_settings(engine, {"CLIP_stop_at_last_layers": 1, "emphasis": "Ignore"}, shown)
    assert r.changed == ["emphasis"]
    assert engine.options.get("CLIP_stop_at_last_layers") == 3


def test_frozen_settings_are_refused_with_the_reason(tmp_path):
    engine = StubEngine(tmp_path / "config.json", freeze_specific_settings="jpeg_quality")
    r = apply_settings(engine, {"jpeg_quality": 90, "webp_lossless": True})
    assert r.changed == ["webp_lossless"]
    assert r.errors == {"jpeg_quality": "this setting is frozen (--freeze-specific-settings)"}
    assert ui_settings._spec_for(engine, "jpeg_quality").kwargs["interactive"] is False


def test_result_for_a_single_change_reads_naturally():
    assert ApplyResult(changed=["emphasis"]).text() == "1 setting changed: emphasis."


# --- the Gradio tab -----------------------------------------------------------------------------------------


def build(engine, with_quick=True):
    import gradio as gr

    with gr.Blocks() as demo:
        quick = None
        if with_quick:
            with gr.Row(elem_id="quicksettings"):
                quick = ui_settings.create_quicksettings(engine)
        with gr.Tabs():
            with gr.Tab("Settings", elem_id="tab_settings"):
                tab = ui_settings.create_settings_tab(engine, quicksettings=quick)
    return demo, tab, quick


def test_tab_has_a_control_for_every_visible_option_including_extensions(tmp_path):
    engine = StubEngine(tmp_path / "config.json")
    engine.options.add_option(OptionInfo("my_ext_strength", 0.5, "My extension strength", section=("my-ext", "My ext"),
                                         minimum=0.0, maximum=1.0, step=0.05))
    _, tab, quick = build(engine)
    visible = [i.key for _, _, infos in settings_sections(engine, quicksettings_keys(engine)) for i in infos]
    assert list(tab.components) == visible
    assert all(c.elem_id == f"setting_{k}" for k, c in tab.components.items())
    assert tab.components["my_ext_strength"].maximum == 1.0
    assert tab.submit.elem_id == "settings_submit" and tab.result.elem_id == "settings_result"
    assert list(quick.components) == ["sd_model_checkpoint", "sd_vae"]
    assert set(quick.components).isdisjoint(tab.components)
    assert [b.elem_id for b in quick.refresh_buttons.values()] == ["refresh_sd_model_checkpoint", "refresh_sd_vae"]
    assert quick.status.elem_id == "quicksettings_status"

    # "Apply settings" through the tab's event function
    keys = list(tab.components)
    shown = tab.sync()[0]
    values = [shown[k] for k in keys]
    values[keys.index("my_ext_strength")] = 0.75
    values[keys.index("jpeg_quality")] = 0
    out = tab.apply(shown, *values)
    assert "1 setting changed: my_ext_strength." in out[0] and "jpeg_quality" in out[0]
    assert out[1]["my_ext_strength"] == 0.75 and out[1]["jpeg_quality"] == 80  # new shown values
    assert out[2 + keys.index("jpeg_quality")] == {"__type__": "update", "value": 80}  # the refused control goes back
    assert json.loads((tmp_path / "config.json").read_text())["my_ext_strength"] == 0.75


def test_scripts_are_shipped_with_the_page():
    head = ui_settings.head_html(ui_settings.QUICKSETTINGS_JS)
    assert "sd-extra-networks:checkpoint" in head and "quicksettings_sync" in head and "<style>" in head
    assert "window.sdSettings" in ui_settings.head_html(ui_settings.SETTINGS_JS)


# --- quicksettings with a real (tiny) engine --------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    import webui
    from modules.settings import cmd_args
    from tests import tiny_models

    data = tmp_path_factory.mktemp("ui-settings")
    ckpt = data / "models" / "Stable-diffusion"
    ckpt.mkdir(parents=True)
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=3), ckpt / "a.safetensors", "sd1")
    shutil.copy(ckpt / "a.safetensors", ckpt / "b.safetensors")
    (ckpt / "broken.safetensors").write_bytes(b"not a model at all")
    eng = webui.build_engine(cmd_args.parse_args(["--data-dir", str(data)], environ={}))
    eng.ensure_model()
    return eng


def title_of(engine, stem):
    return next(c.title for c in engine.available_checkpoints() if c.name == f"{stem}.safetensors")


def test_quick_checkpoint_switch_shows_progress_saves_and_restores_on_failure(engine):
    _, _, quick = build(engine)
    assert engine.checkpoint_info.name == "a.safetensors"
    target = title_of(engine, "b")
    steps = list(quick.change("sd_model_checkpoint", target))
    assert steps[0][1] == f'<span class="sd-quick-status sd-quick-busy">Loading {target}…</span>'
    update, status = steps[-1]
    assert engine.checkpoint_info.name == "b.safetensors"
    loaded = engine.checkpoint_info.title  # hashed now: "b.safetensors [..........]"
    assert status == f'<span class="sd-quick-status">Loaded {loaded}</span>'
    assert update["value"] == loaded and loaded in update["choices"]
    config = Path(engine.options.path)
    assert json.loads(config.read_text())["sd_model_checkpoint"] == loaded

    broken = title_of(engine, "broken")
    update, status = list(quick.change("sd_model_checkpoint", broken))[-1]
    assert status.startswith(f'<span class="sd-quick-status sd-quick-error">Could not load {broken}: Cannot load ')
    assert "corrupt or truncated safetensors file" in status and "Traceback" not in status
    assert update["value"] == loaded  # the dropdown goes back to the model that is loaded
    assert engine.checkpoint_info.name == "b.safetensors" and engine.options.get("sd_model_checkpoint") == loaded
    assert json.loads(config.read_text())["sd_model_checkpoint"] == loaded


def test_quick_sync_and_refresh(engine, tmp_path):
    _, _, quick = build(engine)
    engine.options.set("sd_vae", "None")  # e.g. changed by the API or the extra networks browser
    updates = quick.sync()
    assert [u["value"] for u in updates] == [engine.checkpoint_info.title, "None"]
    folder = Path(engine.paths.sd_models_dir)
    shutil.copy(folder / "a.safetensors", folder / "c.safetensors")
    try:
        update = quick.refresh("sd_model_checkpoint")
        assert "c.safetensors" in update["choices"]
        assert update["value"] == engine.checkpoint_info.title
    finally:
        (folder / "c.safetensors").unlink()
        engine.refresh_checkpoints()
    update, status = list(quick.change("sd_vae", "no-such-vae.pt"))[-1]
    assert "unknown VAE &#x27;no-such-vae.pt&#x27;" in status and update["value"] == "None"
    engine.options.set("sd_vae", "Automatic")


def test_clip_skip_in_the_bar_when_the_user_adds_it(tmp_path):
    engine = StubEngine(tmp_path / "config.json")
    engine.options.set("quicksettings_list", ["sd_model_checkpoint", "CLIP_stop_at_last_layers"])
    _, tab, quick = build(engine)
    slider = quick.components["CLIP_stop_at_last_layers"]
    assert (type(slider).__name__, slider.elem_id, slider.minimum, slider.maximum) == \
        ("Slider", "setting_CLIP_stop_at_last_layers", 1, 12)
    assert "CLIP_stop_at_last_layers" not in tab.components and "sd_vae" in tab.components
    update, status = list(quick.change("CLIP_stop_at_last_layers", 2.0))[-1]
    assert update["value"] == 2 and status == ""
    assert json.loads((tmp_path / "config.json").read_text())["CLIP_stop_at_last_layers"] == 2
    update, status = list(quick.change("CLIP_stop_at_last_layers", 40))[-1]
    assert update["value"] == 2 and "40 is above the maximum 12" in status
