"""Scripts and extensions end to end on a tiny SD1 checkpoint (spec §12): the built-in X/Y/Z plot, prompt
matrix and prompts-from-file, the example extension, broken extensions, callbacks, and the same through the
HTTP API."""
from __future__ import annotations

import base64
import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from modules.settings import cmd_args
from modules.core import grid_drawing
from modules.core import image_files as images
from modules.core import infotext
from modules.scripting import loading as script_loading
from modules.page import extensions as ui_extensions
from modules.core.request import GenerationRequest
from modules.scripting.host import ScriptHost
from tests import network_files, tiny_models

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "extensions-examples" / "sd-webui-example"

BROKEN_IMPORT = "raise RuntimeError('broken at import')\n"
BROKEN_HOOK = '''
from modules import script_callbacks, scripts

class Exploding(scripts.Script):
    def title(self):
        return "Exploding"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def process(self, p):
        raise ValueError("process hook exploded")

    def postprocess_image(self, p, pp):
        raise ValueError("postprocess hook exploded")

def bad_denoiser(params):
    raise KeyError("denoiser callback exploded")

script_callbacks.on_cfg_denoiser(bad_denoiser)
'''
RECORDER = '''
from modules import script_callbacks

EVENTS = []

script_callbacks.on_cfg_denoiser(lambda params: EVENTS.append(("denoiser", params.sampling_step, params.total_sampling_steps)))
script_callbacks.on_cfg_denoised(lambda params: EVENTS.append(("denoised", params.sampling_step)))
script_callbacks.on_cfg_after_cfg(lambda params: EVENTS.append(("after_cfg", tuple(params.x.shape))))
script_callbacks.on_model_loaded(lambda model: EVENTS.append(("model_loaded", type(model).__name__)))
script_callbacks.on_app_started(lambda demo, app: EVENTS.append(("app_started", demo is None)))

def before_saved(params):
    params.pnginfo["parameters"] = params.pnginfo.get("parameters", "") + ", Recorded: yes"
    EVENTS.append(("before_saved", params.filename))

script_callbacks.on_before_image_saved(before_saved)
script_callbacks.on_image_saved(lambda params: EVENTS.append(("saved", params.filename)))
'''

BASE = dict(prompt="a cat", negative_prompt="", steps=2, width=64, height=64, cfg_scale=5.0, sampler_name="Euler",
            seed=77, do_not_save_samples=True, do_not_save_grid=True)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    data = tmp_path_factory.mktemp("scripts-engine")
    models = data / "models"
    components = tiny_models.tiny_sd1(seed=0)
    tiny_models.write_single_file(components, models / "Stable-diffusion" / "tiny.safetensors", "sd1")
    network_files.save_safetensors(network_files.kohya_lora(components, seed=1), models / "Lora" / "tiny_lora.safetensors")
    ext = data / "extensions"
    shutil.copytree(EXAMPLE, ext / "sd-webui-example")
    for name, code in (("broken-import", BROKEN_IMPORT), ("broken-hook", BROKEN_HOOK), ("recorder", RECORDER)):
        (ext / name / "scripts").mkdir(parents=True)
        (ext / name / "scripts" / f"{name.replace('-', '_')}.py").write_text(code)
    return data


@pytest.fixture(scope="module")
def engine(data_dir):
    import webui

    eng = webui.build_engine(cmd_args.parse_args(["--data-dir", str(data_dir)], environ={}))
    eng.ensure_model()
    return eng


@pytest.fixture(scope="module")
def events(engine):
    return sys.modules[script_loading.module_name_for("recorder", Path("recorder.py"))].EVENTS


def _host(engine):
    return ScriptHost.for_engine(engine)


def _gen(engine, **kw):
    return _host(engine).generate(GenerationRequest(**{**BASE, **kw}))


def _px(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def _xyz_args(x_type="Nothing", x_values="", y_type="Nothing", y_values="", z_type="Nothing", z_values="", *,
              legend=True, lone=False, sub_grids=False, keep_seeds=False, margin=0):
    return [x_type, x_values, [], y_type, y_values, [], z_type, z_values, [], legend, lone, sub_grids, keep_seeds,
            False, False, False, margin, False]


# --- loading ------------------------------------------------------------------------------------------

def test_extensions_load_and_the_broken_one_says_why(engine):
    names = [e.name for e in _host(engine).extensions.list()]
    assert names == ["Lora", "broken-hook", "broken-import", "recorder", "sd-webui-example"]  # built-in first
    broken = _host(engine).extensions.find("broken-import")
    assert broken.errors == ["broken_import.py: RuntimeError: broken at import"]
    assert any("broken at import" in e.error for e in _host(engine).scripts.load_errors)
    txt2img = _host(engine).scripts.txt2img
    assert [s.title() for s in txt2img.selectable_scripts] == ["Prompt matrix", "Prompts from file or textbox", "X/Y/Z plot"]
    assert [s.title() for s in txt2img.alwayson_scripts] == ["Exploding", "Example note"]
    assert _host(engine).scripts.img2img.alwayson_scripts[1].is_img2img
    assert "example_note_prefix" in engine.options  # on_ui_settings ran
    html = ui_extensions.extensions_table_html(_host(engine))
    assert "broken at import" in html and "failed to load" in html and "sd-webui-example" in html


def test_example_extension_tab_and_head(engine):
    tabs = ui_extensions.extension_tabs(_host(engine))
    assert [(title, elem_id) for _, title, elem_id in tabs] == [("Example", "example_tab")]
    head = ui_extensions.extensions_head_html(_host(engine))
    assert "/sd_extensions/sd-webui-example/javascript/example.js" in head
    assert "/sd_extensions/sd-webui-example/style.css" in head


def test_model_loaded_callback_ran_once_for_the_load(engine, events):
    _gen(engine)
    assert len([e for e in events if e[0] == "model_loaded"]) == 1


# --- hooks and callbacks ------------------------------------------------------------------------------

def test_always_on_script_writes_infotext_and_a_raising_hook_does_not_stop_generation(engine):
    plain = _gen(engine)
    noted = _gen(engine, alwayson_scripts={"Example note": {"args": [True, "for the wiki"]}})
    fields = infotext.parse_generation_parameters(noted.infotexts[0])
    assert fields["Example note"] == "for the wiki"
    assert "Example note" not in plain.infotexts[0]
    assert np.array_equal(_px(plain.images[0]), _px(noted.images[0]))  # the hooks that raised changed nothing
    errors = _host(engine).extensions.find("broken-hook").errors
    assert any("process() raised ValueError: process hook exploded" in e for e in errors)
    # The script is switched off after its first failure in a call: postprocess_image was never reached.
    assert not any("postprocess hook exploded" in e for e in errors)
    failures = [f for f in _host(engine).callbacks.failures if f.owner == "broken-hook"]
    assert failures and all(f.kind == "cfg_denoiser" for f in failures)
    before = len(failures)
    _gen(engine, steps=3)
    after = [f for f in _host(engine).callbacks.failures if f.owner == "broken-hook"]
    assert len(after) == before + 1  # once per generation, not once per step


def test_sampling_callbacks_see_every_step(engine, events):
    events.clear()
    _gen(engine, steps=3)
    # A1111's sampling_step is state.sampling_step, which the sampler's step callback sets *after* each step's
    # denoiser call: the calls of steps 0, 1, 2 see 0, 0, 1.
    assert [e for e in events if e[0] == "denoiser"] == [("denoiser", i, 3) for i in (0, 0, 1)]
    assert [e for e in events if e[0] == "denoised"] == [("denoised", i) for i in (0, 0, 1)]
    assert [e for e in events if e[0] == "after_cfg"] == [("after_cfg", (1, 4, 8, 8))] * 3


def test_image_save_callbacks(engine, events):
    events.clear()
    out = _gen(engine, do_not_save_samples=False)
    saved = [e for e in events if e[0] == "saved"]
    assert len(saved) == 1 and Path(saved[0][1]).is_file() and saved[0][1] == out.saved_paths[0]
    text, _ = images.read_info_from_image(Image.open(saved[0][1]))
    assert text.endswith(", Recorded: yes")
    assert [e[0] for e in events if e[0] in ("before_saved", "saved")] == ["before_saved", "saved"]


# --- X/Y/Z plot ---------------------------------------------------------------------------------------

def test_xyz_steps_by_cfg_grid_size_labels_and_cells_equal_single_generations(engine):
    out = _gen(engine, script_name="X/Y/Z plot", script_args=_xyz_args("Steps", "2-3", "CFG Scale", "3, 7", lone=True))
    assert out.index_of_first_image == 1 and len(out.images) == 5
    grid = out.images[0]
    hor = [[grid_drawing.GridAnnotation(t)] for t in ("Steps: 2", "Steps: 3")]
    ver = [[grid_drawing.GridAnnotation(t)] for t in ("CFG Scale: 3.0", "CFG Scale: 7.0")]
    left, top = grid_drawing.annotation_padding(64, 64, hor, ver)
    assert left == 48 and top > 0
    assert grid.size == (left + 2 * 64, top + 2 * 64)
    px = _px(grid)
    assert (px[:top, left:] < 100).any() and (px[top:, :left] < 100).any()  # the labels
    for iy, cfg in enumerate((3.0, 7.0)):
        for ix, steps in enumerate((2, 3)):
            alone = _px(_gen(engine, steps=steps, cfg_scale=cfg).images[0])
            cell = px[top + iy * 64:top + (iy + 1) * 64, left + ix * 64:left + (ix + 1) * 64]
            assert np.array_equal(cell, alone), (steps, cfg)
            assert np.array_equal(_px(out.images[1 + iy * 2 + ix]), alone)
    cells = [infotext.parse_generation_parameters(t) for t in out.infotexts[1:]]
    assert [(c["Steps"], c["CFG scale"]) for c in cells] == [("2", "3.0"), ("3", "3.0"), ("2", "7.0"), ("3", "7.0")]
    grid_fields = infotext.parse_generation_parameters(out.infotexts[0])
    assert grid_fields["Script"] == "X/Y/Z plot" and grid_fields["X Type"] == "Steps" and grid_fields["X Values"] == "2-3"
    assert grid_fields["Y Type"] == "CFG Scale"
    assert out.info["index_of_first_image"] == 1 and len(out.info["infotexts"]) == 5


def test_xyz_z_axis_sub_grids_margin_and_no_legend(engine):
    out = _gen(engine, script_name="x/y/z plot",
               script_args=_xyz_args("Seed", "1, 2", z_type="Steps", z_values="2,3", legend=False, sub_grids=True, margin=4))
    z_grid, sub1, sub2 = out.images
    assert out.index_of_first_image == 3
    assert sub1.size == sub2.size == (2 * 64 + 4, 64)
    assert z_grid.size == (2 * sub1.width + 4, 64)
    assert np.array_equal(_px(z_grid)[:, :sub1.width], _px(sub1))
    assert np.array_equal(_px(sub1)[:, 68:], _px(_gen(engine, seed=2).images[0]))


def test_xyz_random_seed_is_fixed_once_for_all_cells(engine):
    out = _gen(engine, seed=-1, script_name="X/Y/Z plot", script_args=_xyz_args("CFG Scale", "4, 6", lone=True))
    assert len(set(out.seeds)) == 1
    kept = _gen(engine, seed=-1, script_name="X/Y/Z plot", script_args=_xyz_args("CFG Scale", "4, 6", lone=True, keep_seeds=True))
    assert len(set(kept.seeds)) == 2


def test_xyz_prompt_sr_over_lora_weights(engine):
    base_prompt = "a cat <lora:tiny_lora:0.0>"
    out = _gen(engine, prompt=base_prompt, script_name="X/Y/Z plot",
               script_args=_xyz_args("Prompt S/R", "0.0, 0.5, 1.0", lone=True))
    prompts = out.prompts
    assert prompts == ["a cat <lora:tiny_lora:0.0>", "a cat <lora:tiny_lora:0.5>", "a cat <lora:tiny_lora:1.0>"]
    no_lora = _px(_gen(engine, prompt="a cat").images[0])
    cells = [_px(img) for img in out.images[1:]]
    assert np.array_equal(cells[0], no_lora)
    assert np.abs(cells[2] - no_lora).mean() > 1.0 and np.abs(cells[1] - no_lora).mean() > 0.1
    for prompt, cell in zip(prompts, cells):
        assert np.array_equal(cell, _px(_gen(engine, prompt=prompt).images[0]))
    assert "Lora hashes" in infotext.parse_generation_parameters(out.infotexts[3])
    grid = out.images[0]
    assert grid.size[0] == 3 * 64  # no Y labels: no left column


def test_xyz_bad_values_are_request_errors(engine):
    from modules.core.request import RequestError

    with pytest.raises(RequestError, match="unknown sampler"):
        _gen(engine, script_name="X/Y/Z plot", script_args=_xyz_args("Sampler", "Euler, Nope"))
    with pytest.raises(RequestError, match="did not find"):
        _gen(engine, script_name="X/Y/Z plot", script_args=_xyz_args("Prompt S/R", "zebra, horse"))


# --- prompt matrix and prompts from file ----------------------------------------------------------------

def test_prompt_matrix_makes_every_combination_and_a_labelled_grid(engine):
    out = _gen(engine, prompt="a cat|red|blue", script_name="Prompt matrix",
               script_args=[False, False, "positive", "comma", 0])
    assert out.prompts == ["a cat", "a cat, red", "a cat, blue", "a cat, red, blue"]
    assert out.seeds == [77] * 4 and len(out.images) == 5 and out.index_of_first_image == 1
    grid = out.images[0]
    assert grid.size[0] == 48 + 2 * 64 and grid.size[1] > 2 * 64
    assert np.array_equal(_px(out.images[4]), _px(_gen(engine, prompt="a cat, red, blue").images[0]))
    seeds = _gen(engine, prompt="x|y", script_name="prompt matrix", script_args=[True, True, "positive", "space", 0])
    assert seeds.prompts == ["x", "y x"] and seeds.seeds == [77, 78]


def test_prompts_from_file_per_line_options(engine):
    text = '--prompt "a dog" --steps 3 --seed 11 --cfg_scale 4\n\n--prompt "a bird" --width 96 --negative_prompt ugly\nplain words\n'
    out = _gen(engine, prompt="", script_name="Prompts from file or textbox", script_args=[False, False, "start", text])
    assert out.prompts == ["a dog", "a bird", "plain words"]
    assert out.negative_prompts == ["", "ugly", ""]
    assert out.images[1].size == (96, 64)
    fields = infotext.parse_generation_parameters(out.infotexts[0])
    assert (fields["Steps"], fields["Seed"], fields["CFG scale"]) == ("3", "11", "4.0")
    assert np.array_equal(_px(out.images[0]), _px(_gen(engine, prompt="a dog", steps=3, seed=11, cfg_scale=4).images[0]))
    assert np.array_equal(_px(out.images[2]), _px(_gen(engine, prompt="plain words").images[0]))
    iterated = _gen(engine, prompt="tab prompt", script_name="Prompts from file or textbox",
                    script_args=[True, False, "end", "one\ntwo"])
    assert iterated.seeds == [77, 78] and iterated.prompts == ["tab prompt one", "tab prompt two"]


# --- HTTP API -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(engine, data_dir, events):
    import webui

    args = cmd_args.parse_args(["--data-dir", str(data_dir), "--nowebui"], environ={})
    app = webui.create_app(engine, args)
    assert ("app_started", True) in events
    return TestClient(app)


def test_api_lists_scripts_script_info_and_extensions(client):
    scripts_list = client.get("/sdapi/v1/scripts").json()
    assert scripts_list["txt2img"] == ["prompt matrix", "prompts from file or textbox", "x/y/z plot"]
    assert scripts_list["img2img"] == ["img2img alternative test", "loopback", "poor man's outpainting", "outpainting mk2", "prompt matrix",
                                       "prompts from file or textbox", "sd upscale",
                                       "x/y/z plot"]  # A1111's img2img-only built-ins too
    info = client.get("/sdapi/v1/script-info").json()
    by_name = {(i["name"], i["is_img2img"]): i for i in info}
    xyz = by_name[("x/y/z plot", False)]
    assert xyz["is_alwayson"] is False and len(xyz["args"]) == 18
    assert xyz["args"][0]["label"] == "X type" and xyz["args"][0]["value"] == "Seed"
    assert xyz["args"][16] == {"label": "Grid margins (px)", "value": 0, "minimum": 0, "maximum": 500, "step": 2,
                               "choices": None}
    note = by_name[("example note", True)]
    assert note["is_alwayson"] is True and [a["label"] for a in note["args"]] == ["Write a note into the infotext", "Note"]
    exts = {e["name"]: e for e in client.get("/sdapi/v1/extensions").json()}
    assert set(exts) == {"Lora", "broken-hook", "broken-import", "recorder", "sd-webui-example"}
    assert all(e["enabled"] for e in exts.values())


def test_api_txt2img_runs_a_script_with_always_on_args(client, engine):
    payload = {**{k: v for k, v in BASE.items() if not k.startswith("do_not")}, "script_name": "x/y/z plot",
               "script_args": _xyz_args("Steps", "2,3"),
               "alwayson_scripts": {"example note": {"args": [True, "api note"]}}}
    r = client.post("/sdapi/v1/txt2img", json=payload)
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["images"]) == 1
    grid = Image.open(io.BytesIO(base64.b64decode(body["images"][0])))
    _, top = grid_drawing.annotation_padding(64, 64, [[grid_drawing.GridAnnotation("Steps: 2")]], [])
    assert grid.size == (128, 64 + top)
    info = json.loads(body["info"])
    assert info["index_of_first_image"] == 1
    fields = infotext.parse_generation_parameters(info["infotexts"][0])
    assert fields["Example note"] == "api note" and fields["Script"] == "X/Y/Z plot"
    assert np.array_equal(_px(grid)[top:, 64:], _px(_gen(engine, steps=3).images[0]))


def test_api_prompts_from_file_and_errors(client):
    payload = {**{k: v for k, v in BASE.items() if not k.startswith("do_not")}, "script_name": "Prompts from file or textbox",
               "script_args": [False, False, "start", "--prompt one --steps 3\ntwo"]}
    r = client.post("/sdapi/v1/txt2img", json=payload)
    assert r.status_code == 200, r.text
    assert json.loads(r.json()["info"])["all_prompts"] == ["one a cat", "two a cat"]
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "script_name": "nope"})
    assert r.status_code == 422 and r.json()["detail"] == "Script 'nope' not found"
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "alwayson_scripts": {"nope": {"args": []}}})
    assert r.status_code == 422 and "always on script nope not found" in r.json()["detail"]
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "alwayson_scripts": {"x/y/z plot": {"args": []}}})
    assert r.status_code == 422 and "selectable script" in r.json()["detail"]
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, "script_name": "X/Y/Z plot",
                                               "script_args": _xyz_args("Steps", "two, three")})
    assert r.status_code == 422 and "X values (Steps)" in r.json()["detail"]
