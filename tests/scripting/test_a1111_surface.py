"""A1111's public Python surface as the top-level facades give it, bound to a running Engine: ``shared.opts``
semantics, ``OptionInfo`` forms, ``Processed`` and ``save_image`` signatures, ``fix_seed``, ``cmd_opts``,
``state``, ``sd_models``, ``devices``, ``paths``, and the scoped Gradio 3 shim."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from modules.scripting import runtime


@pytest.fixture()
def engine(tiny_engine):
    with runtime.using(tiny_engine):
        yield tiny_engine


def test_opts_attribute_get_set_data_dict_and_add_option(engine):
    from modules import shared

    opts = shared.opts
    assert opts.samples_format == engine.options.get("samples_format")
    opts.add_option("my_ext_strength", shared.OptionInfo(1, "Strength", component_args={"minimum": 0, "maximum": 2,
                                                                                       "step": 0.1},
                                                         section=("my_ext", "My extension")).info("how strong"))
    info = engine.options.info("my_ext_strength")
    assert info.default == 1.0 and isinstance(info.default, float)  # a fractional slider holds floats
    assert info.section == ("my_ext", "My extension") and "how strong" in info.comment
    opts.my_ext_strength = 1.5
    assert engine.options.get("my_ext_strength") == 1.5 and opts.data["my_ext_strength"] == 1.5
    opts.data["my_ext_private"] = {"a": 1}  # an unregistered key, as extensions keep state
    assert opts.my_ext_private == {"a": 1}
    assert opts.data.pop("my_ext_private") == {"a": 1} and "my_ext_private" not in opts
    seen = []
    opts.onchange("my_ext_strength", lambda: seen.append(opts.my_ext_strength), call=False)
    opts.set("my_ext_strength", 0.5)
    assert seen == [0.5]
    assert "my_ext_strength" in opts.data_labels


def test_options_templates_and_section_register_settings(engine):
    from modules import shared

    shared.options_templates.update(shared.options_section(("tmpl", "Templated"), {
        "tmpl_mode": shared.OptionInfo("a", "Mode", component_args={"choices": ["a", "b"]}),
    }))
    assert engine.options.info("tmpl_mode").current_choices() == ["a", "b"]
    assert engine.options.info("tmpl_mode").section == ("tmpl", "Templated")


def test_cmd_opts_state_device_paths_and_models(engine):
    from modules import devices, paths, sd_models, shared

    assert shared.cmd_opts.data_dir == engine.args.data_dir
    assert shared.cmd_opts.some_flag_only_a_preload_adds is None
    assert shared.state.job_count == engine.state.job_count
    shared.state.textinfo = "hello"
    assert engine.state.textinfo == "hello"
    assert devices.device == engine.devices.device and str(devices.cpu) == "cpu"
    assert paths.models_path == str(engine.paths.models_dir) and paths.script_path == str(engine.paths.repo_root)
    titles = list(sd_models.checkpoints_list)
    assert titles and sd_models.get_closet_checkpoint_match(titles[0]).title == titles[0]
    assert shared.sd_model.sd_checkpoint_info is engine.checkpoint_info
    assert shared.sd_model.is_sd1 and not shared.sd_model.is_sdxl


def test_processed_takes_a1111s_positional_signature_and_fix_seed(engine):
    from modules import processing
    from modules.core.request import GenerationRequest
    from modules.scripting.processing_object import StableDiffusionProcessing

    p = StableDiffusionProcessing(engine, GenerationRequest(prompt="a cat", seed=-1, subseed=-1))
    processing.fix_seed(p)
    assert p.seed >= 0 and p.subseed >= 0
    image = Image.new("RGB", (8, 8))
    out = processing.Processed(p, [image, image], p.seed, "a cat\nSteps: 1")
    assert out.images == [image, image] and out.seed == p.seed
    assert out.infotexts == ["a cat\nSteps: 1"] * 2 and out.all_prompts == ["a cat", "a cat"]
    from modules.core.request import Processed as CoreProcessed

    assert isinstance(out, CoreProcessed)


def test_images_save_image_with_a1111s_signature(engine, tmp_path):
    from modules import images

    path, txt = images.save_image(Image.new("RGB", (8, 8), "red"), str(tmp_path), "", 123, "a red square", "png",
                                  info="a red square\nSteps: 1", forced_filename="exact-name")
    assert Path(path).name == "exact-name.png" and tmp_path in Path(path).parents
    assert Image.open(path).info["parameters"] == "a red square\nSteps: 1"
    grid = images.image_grid([Image.new("RGB", (8, 8))] * 4, rows=2)
    assert grid.size == (16, 16)
    assert images.resize_image(1, Image.new("RGB", (16, 8)), 8, 8).size == (8, 8)
    assert images.flatten(Image.new("RGBA", (4, 4), (0, 0, 0, 0)), "#ffffff").getpixel((0, 0)) == (255, 255, 255)


def test_basedir_is_the_loading_scripts_folder(engine, tmp_path):
    from modules import scripts

    with runtime.loading(str(tmp_path)):
        assert scripts.basedir() == str(tmp_path)
    assert scripts.basedir() == str(engine.paths.repo_root)
    assert scripts.scripts_txt2img is runtime.host(engine).scripts.txt2img


def test_gradio3_calls_work_only_while_an_extension_builds_its_ui():
    import gradio as gr

    from modules.scripting.gradio3_compat import extension_ui

    with extension_ui(), gr.Blocks():
        with gr.Box():
            text = gr.Textbox(default="x").style(container=False)
            image = gr.Image(source="upload", tool="sketch")
            button = gr.Button()
            button.click(fn=lambda: gr.Textbox.update(value="y"), inputs=[], outputs=[text], _js="() => 1")
    assert text.value == "x" and image.sources == ["upload"]
    assert not hasattr(gr, "Box")
    with pytest.raises(TypeError):
        gr.Textbox(default="x")
    assert gr.Textbox.update(value=1) == {"value": 1, "__type__": "update"}


def test_an_extras_script_loads_and_runs_through_the_runner(tmp_path):
    import webui
    from modules.settings import cmd_args

    ext = tmp_path / "extensions" / "pp-ext" / "scripts"
    ext.mkdir(parents=True)
    (ext / "invert.py").write_text(
        "from PIL import ImageOps\n"
        "from modules import scripts_postprocessing\n"
        "class Invert(scripts_postprocessing.ScriptPostprocessing):\n"
        "    name = 'Invert'\n"
        "    order = 5\n"
        "    def process(self, pp, enable=False):\n"
        "        if enable:\n"
        "            pp.image = ImageOps.invert(pp.image)\n"
        "            pp.info['Inverted'] = True\n", encoding="utf-8")
    engine = webui.build_engine(cmd_args.parse_args(["--data-dir", str(tmp_path)], environ={}))
    from modules import scripts

    with runtime.using(engine):
        assert [d.script_class.name for d in scripts.postprocessing_scripts_data] == ["Invert"]
        pp = scripts.scripts_postproc.run(Image.new("RGB", (2, 2), (10, 20, 30)), {"Invert": {"enable": True}})
    assert pp.image.getpixel((0, 0)) == (245, 235, 225) and pp.info == {"Inverted": True}
    assert runtime.host(engine).extensions.find("pp-ext").errors == []
    runtime.unbind(engine)


def test_more_of_a1111s_names_popular_extensions_import(engine):
    """Names read from popular extensions (ADetailer, agent scheduler, dynamic thresholding, Config-Presets...)."""
    from modules import devices, processing, script_callbacks, sd_schedulers, shared, shared_items, shared_options
    from modules import shared_state

    assert shared_items.sd_vae_items()[:2] == ["Automatic", "None"]
    titles = [c.title for c in engine.available_checkpoints()]
    assert shared_items.list_checkpoint_tiles() == titles == shared.list_checkpoint_tiles()
    assert sd_schedulers.schedulers_map["Karras"].name == "karras" and sd_schedulers.schedulers[0].label == "Automatic"
    assert shared_options.options_templates is shared.options_templates
    assert issubclass(devices.NansException, Exception) and isinstance(shared.state, shared_state.State)
    assert callable(processing.apply_overlay)
    assert callable(script_callbacks.remove_current_script_callbacks)


def test_remove_current_script_callbacks_drops_only_that_files_callbacks(engine):
    from modules import script_callbacks
    from modules.scripting.callbacks import CallbackRegistry

    registry = CallbackRegistry()
    with registry.active("ext", "ext/scripts/a.py"):
        script_callbacks.on_app_started(lambda *a: None)
    with registry.active("ext", "ext/scripts/b.py"):
        script_callbacks.on_app_started(lambda *a: None)
        script_callbacks.remove_current_script_callbacks()
    assert [e.name for e in registry.entries()] == ["ext/scripts/a.py"]
