"""Script API pieces that need no model: callbacks, argument layout, the p object, value parsing and grid drawing
of the built-in scripts (spec §12.2-12.4)."""
from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from modules.core import grid_drawing
from modules.scripting import callbacks as script_callbacks
from modules.scripting import loading as script_loading
from modules.scripting import scripts
from modules.core.request import GenerationRequest, RequestError
from modules.scripting.processing_object import StableDiffusionProcessing, StableDiffusionProcessingTxt2Img

REPO = Path(__file__).resolve().parents[2]


def _load(name: str):
    return script_loading.load_module(REPO / "scripts" / f"{name}.py", f"test_builtin_{name}")


xyz = _load("xyz_grid")
pm = _load("prompt_matrix")
pff = _load("prompts_from_file")


# --- callbacks ------------------------------------------------------------------------------------

def test_on_functions_need_an_active_registry():
    with pytest.raises(script_callbacks.CallbackRegistrationError, match="outside extension loading"):
        script_callbacks.on_app_started(lambda demo, app: None)


def test_registry_runs_in_order_and_a_failing_callback_is_logged_and_skipped(caplog):
    registry = script_callbacks.CallbackRegistry()
    calls = []
    with registry.active(owner="ext-a", name="ext-a/scripts/x.py"):
        script_callbacks.on_image_saved(lambda params: calls.append(("first", params)))
        script_callbacks.on_image_saved(lambda params: 1 / 0, name="divider")
        script_callbacks.on_image_saved(lambda params: calls.append(("third", params)) or "ok")
    entries = registry.entries("image_saved")
    assert [e.owner for e in entries] == ["ext-a"] * 3
    assert [e.name for e in entries] == ["ext-a/scripts/x.py", "divider", "ext-a/scripts/x.py"]
    skip: set[int] = set()
    assert registry.run("image_saved", "P", skip=skip) == [None, "ok"]
    assert calls == [("first", "P"), ("third", "P")]
    assert "ZeroDivisionError" in caplog.text and "divider" in caplog.text
    assert registry.failures[-1].owner == "ext-a" and registry.failures[-1].kind == "image_saved"
    # With the same skip set the failed one is not called again.
    registry.run("image_saved", "Q", skip=skip)
    assert len(registry.failures) == 1
    assert registry.failures_of("ext-a")[0].error.startswith("ZeroDivisionError")


def test_callback_may_register_another_and_unknown_kinds_are_refused():
    registry = script_callbacks.CallbackRegistry()

    def started(demo, app):
        script_callbacks.on_model_loaded(lambda model: "loaded " + model)

    registry.add("app_started", started)
    registry.run("app_started", None, None)
    assert registry.run("model_loaded", "m") == ["loaded m"]
    with pytest.raises(ValueError, match="unknown callback kind"):
        registry.add("on_everything", lambda: None)


def test_ui_settings_callbacks_with_and_without_the_options_argument():
    registry = script_callbacks.CallbackRegistry()
    seen = []
    registry.add("ui_settings", lambda: seen.append("a1111 style"))
    registry.add("ui_settings", lambda opts: seen.append(opts))
    registry.run("ui_settings", "OPTIONS")
    assert seen == ["a1111 style", "OPTIONS"]


# --- runner ---------------------------------------------------------------------------------------

class _Selectable(scripts.Script):
    def title(self):
        return "My Grid"

    def ui(self, is_img2img):
        return [SimpleNamespace(label="a", value=1, minimum=0, maximum=5, step=1),
                SimpleNamespace(label="b", value="x", choices=[("X", "x"), ("Y", "y")])]

    def run(self, p, a, b):
        return ("ran", a, b)


class _Always(scripts.Script):
    def title(self):
        return "Helper"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return [SimpleNamespace(label="on", value=False)]

    def process(self, p, on):
        p.log.append(("process", on))

    def postprocess_image(self, p, pp, on):
        raise RuntimeError("hook exploded")


class _Hidden(scripts.Script):
    def title(self):
        return "Hidden"

    def show(self, is_img2img):
        return False


class _BadShow(scripts.Script):
    def title(self):
        return "Bad"

    def show(self, is_img2img):
        raise KeyError("oops")


def _runner():
    manager = SimpleNamespace(engine=SimpleNamespace(extensions=SimpleNamespace(find=lambda name: None)), errors=[])
    manager._error = lambda path, ext, error, trace="": manager.errors.append(error)
    manager._error_of = lambda script, error, trace="": manager.errors.append(error)
    manager.record_hook_error = lambda script, hook, exc: manager.errors.append(f"{hook}: {exc}")
    data = [scripts.ScriptClassData(cls, Path(f"/x/{cls.__name__}.py"), Path("/x"), None)
            for cls in (_Selectable, _Hidden, _Always, _BadShow)]
    runner = scripts.ScriptRunner(manager, False, data)
    runner.layout(lambda script: script.ui(False))
    return runner, manager


def test_runner_layout_titles_and_api_args():
    runner, manager = _runner()
    assert [s.title() for s in runner.scripts] == ["Helper", "My Grid"]  # always-on first, hidden left out
    assert runner.alwayson_scripts[0].name == "helper" and runner.selectable_scripts[0].name == "my grid"
    assert any("KeyError" in e for e in manager.errors)
    helper, grid = runner.scripts
    assert (helper.args_from, helper.args_to, grid.args_from, grid.args_to) == (1, 2, 2, 4)
    assert runner.defaults == [0, False, 1, "x"]
    assert runner.arg_infos[id(grid)][1]["choices"] == ["x", "y"]
    assert runner.build_args(None, [], {}) == [0, False, 1, "x"]
    assert runner.build_args("MY GRID", [3], {"helper": {"args": [True]}}) == [1, True, 3, "x"]
    assert runner.build_args(None, [], {"Helper": [True]}) == [0, True, 1, "x"]
    with pytest.raises(RequestError, match="Script 'nope' not found"):
        runner.build_args("nope", [], {})
    with pytest.raises(RequestError, match="always on script nope not found"):
        runner.build_args(None, [], {"nope": {"args": []}})
    with pytest.raises(RequestError, match="selectable script"):
        runner.build_args(None, [], {"My Grid": {"args": []}})
    with pytest.raises(RequestError, match="takes 2 argument"):
        runner.build_args("my grid", [1, 2, 3], {})
    assert runner.run(None, *[1, True, 3, "y"]) == ("ran", 3, "y")
    assert runner.run(None, 0, True, 3, "y") is None


def test_a_raising_hook_is_switched_off_for_the_call_and_the_others_still_run():
    runner, manager = _runner()
    p = SimpleNamespace(script_args=[0, True, 1, "x"], failed_scripts=set(), log=[])
    runner.process(p)
    image = Image.new("RGB", (8, 8))
    assert runner.postprocess_image_one(p, image) is image
    assert runner.postprocess_image_one(p, image) is image
    assert p.log == [("process", True)]
    assert [e for e in manager.errors if e.startswith("postprocess_image")] == ["postprocess_image: hook exploded"]
    runner.process(p)  # the whole script is off for the rest of this call
    assert p.log == [("process", True)]


def test_elem_id_follows_a1111():
    runner, _ = _runner()
    grid = runner.selectable_scripts[0]
    assert grid.elem_id("x_type") == "script_txt2img_my_grid_x_type"


# --- the p object ---------------------------------------------------------------------------------

def test_p_fields_go_to_the_request_and_copies_are_independent():
    req = GenerationRequest(prompt="a", steps=5, styles=["s"], override_settings={"k": 1})
    p = StableDiffusionProcessing("ENGINE", req, script_args=[0])
    p.steps = 9
    p.cfg_scale = 3.5
    p.my_note = "kept"
    assert req.steps == 9 and req.cfg_scale == 3.5 and p.my_note == "kept"
    pc = copy.copy(p)
    pc.steps = 2
    pc.styles.append("t")
    pc.override_settings["k"] = 2
    pc.extra_generation_params["X"] = 1
    assert (p.steps, p.styles, p.override_settings, p.extra_generation_params) == (9, ["s"], {"k": 1}, {})
    assert pc.engine == "ENGINE" and pc.my_note == "kept" and pc.failed_scripts is p.failed_scripts
    assert p.all_prompts is None
    with pytest.raises(AttributeError, match="only while process_images runs"):
        p.all_seeds = [1]
    p.plan = SimpleNamespace(all_prompts=["x"], all_seeds=[1], all_subseeds=[2], all_negative_prompts=[""])
    p.all_seeds = [7]
    assert p.plan.all_seeds == [7] and p.all_prompts == ["x"]
    a1111 = StableDiffusionProcessingTxt2Img(sd_model=None, prompt="cat", steps=4, outpath_samples="/o")
    assert a1111.request.prompt == "cat" and a1111.request.steps == 4 and a1111.outpath_samples == "/o"


# --- X/Y/Z plot -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, kind, expected", [
    ("1-5", "int", [1, 2, 3, 4, 5]),
    ("1-5 (+2)", "int", [1, 3, 5]),
    ("10-1 (-3)", "int", [10, 7, 4, 1]),
    ("1-10 [5]", "int", [1, 3, 5, 7, 10]),
    ("-1, 5, 7-8", "int", [-1, 5, 7, 8]),
    ("0.5-1.5 (+0.25)", "float", [0.5, 0.75, 1.0, 1.25, 1.5]),
    ("0-1 [5]", "float", [0.0, 0.25, 0.5, 0.75, 1.0]),
    ("7, 3.5", "float", [7.0, 3.5]),
    ('cat, "dog, big", bird', "str", ["cat", "dog, big", "bird"]),
    ("a, b", "permutations", [["a", "b"], ["b", "a"]]),
])
def test_axis_value_syntax(text, kind, expected):
    assert xyz.parse_values(text, kind) == expected


@pytest.mark.parametrize("text, kind", [("1-5 (+0)", "int"), ("x", "int"), ("1.5.5", "float")])
def test_bad_axis_values_raise(text, kind):
    with pytest.raises(ValueError):
        xyz.parse_values(text, kind)


def test_axes_lists_and_lookup():
    labels = [o.label for o in xyz.axis_options(False)]
    for needed in ("Nothing", "Seed", "Var. seed", "Var. strength", "Steps", "Hires steps", "CFG Scale", "Prompt S/R",
                   "Prompt order", "Sampler", "Schedule type", "Checkpoint name", "VAE", "Clip skip", "Denoising",
                   "Size", "Styles", "Eta"):
        assert needed in labels
    assert "Hires steps" not in [o.label for o in xyz.axis_options(True)]
    assert xyz.find_axis("cfg scale", False).label == "CFG Scale"
    assert xyz.find_axis(4, False).label == labels[4]
    with pytest.raises(RequestError, match="unknown axis type"):
        xyz.find_axis("Bogus", False)


def test_prompt_sr_order_size_and_labels():
    p = StableDiffusionProcessing(None, GenerationRequest(prompt="a cat, red, big", negative_prompt="cat hair"))
    xyz.find_axis("Prompt S/R", False).apply(p, "dog", ["cat", "dog"])
    assert (p.prompt, p.negative_prompt) == ("a dog, red, big", "dog hair")
    with pytest.raises(RequestError, match="did not find"):
        xyz.find_axis("Prompt S/R", False).apply(p, "x", ["zebra", "x"])
    assert xyz.reorder_prompt("a cat, red, big", ["big", "cat"]) == "a big, red, cat"
    xyz.find_axis("Size", False).apply(p, "96x128", [])
    assert (p.width, p.height) == (96, 128)
    assert xyz.format_value(xyz.find_axis("Steps", False), 20) == "Steps: 20"
    assert xyz.format_value(xyz.find_axis("CFG Scale", False), 7.000000001) == "CFG Scale: 7.0"
    assert xyz.format_value(xyz.find_axis("Prompt S/R", False), "dog") == "dog"
    assert xyz.format_value(xyz.find_axis("Prompt order", False), ["b", "a"]) == "b, a"
    order = xyz.loop_order({"x": xyz.Axis(xyz.find_axis("Checkpoint name", False), [1]),
                            "y": xyz.Axis(xyz.find_axis("Steps", False), [1]), "z": xyz.Axis(xyz.find_axis("Nothing", False), [None])})
    assert order == ["x", "z", "y"]


def _solid(color, size=(64, 64)):
    return Image.new("RGB", size, color)


def test_xyz_grid_drawing_sizes_and_cell_positions():
    colors = [[(255, 0, 0), (0, 255, 0), (0, 0, 255)], [(9, 9, 9), (50, 60, 70), (200, 100, 0)]]
    cells = [[[_solid(c) for c in row] for row in colors]]
    x_labels, y_labels = ["Steps: 1", "Steps: 2", "Steps: 3"], ["CFG Scale: 3.0", "CFG Scale: 7.0"]
    for margin in (0, 6):
        z_grid, subs = xyz.draw_xyz_grid(cells, x_labels, y_labels, [""], draw_legend=True, margin=margin)
        assert z_grid is None and len(subs) == 1
        hor = [[grid_drawing.GridAnnotation(t)] for t in x_labels]
        ver = [[grid_drawing.GridAnnotation(t)] for t in y_labels]
        left, top = grid_drawing.annotation_padding(64, 64, hor, ver)
        assert left == 48 and top > 0
        grid = subs[0]
        assert grid.size == (left + 3 * 64 + 2 * margin, top + 2 * 64 + margin)
        px = np.asarray(grid)
        for iy, row in enumerate(colors):
            for ix, color in enumerate(row):
                x0, y0 = left + ix * (64 + margin), top + iy * (64 + margin)
                assert (px[y0:y0 + 64, x0:x0 + 64] == color).all()
        assert (px[:top, left:] < 128).any() and (px[top:, :left] < 128).any()  # labels drawn in black
    _, plain = xyz.draw_xyz_grid(cells, x_labels, y_labels, [""], draw_legend=False)
    assert plain[0].size == (192, 128)


def test_xyz_z_grid_puts_sub_grids_side_by_side():
    cells = [[[_solid((i * 40, 0, 0))]] for i in range(3)]
    z_grid, subs = xyz.draw_xyz_grid(cells, [""], [""], ["Seed: 1", "Seed: 2", "Seed: 3"], draw_legend=True)
    assert [s.size for s in subs] == [(64, 64)] * 3
    _, top = grid_drawing.annotation_padding(64, 64, [[grid_drawing.GridAnnotation("Seed: 1")]], [])
    assert z_grid.size == (3 * 64, 64 + top)


def test_inactive_annotation_is_grey_and_struck_through():
    grid = grid_drawing.image_grid_with_margin([_solid((255, 255, 255))] * 2, rows=1)
    out = grid_drawing.draw_grid_annotations(grid, 64, 64, [[grid_drawing.GridAnnotation("word", False)],
                                                            [grid_drawing.GridAnnotation("word", True)]], [[]])
    px = np.asarray(out)
    _, top = grid_drawing.annotation_padding(64, 64, [[grid_drawing.GridAnnotation("word")]], [])
    inactive, active = px[:top, :64], px[:top, 64:]
    assert active.min() < 60  # black text
    assert inactive.min() >= 100 and (inactive < 200).any()  # grey only


# --- prompt matrix --------------------------------------------------------------------------------

def test_prompt_matrix_combinations():
    assert pm.matrix_prompts("a|b|c") == ["a", "a, b", "a, c", "a, b, c"]
    assert pm.matrix_prompts("a | b | c", put_at_start=True, delimiter="space") == ["a", "b a", "c a", "b c a"]
    assert len(pm.matrix_prompts("a|b|c|d")) == 8
    hor, ver = pm.matrix_labels("a|b|c|d")
    assert len(hor) == 4 and len(ver) == 2  # two parts across (4 columns), one down (2 rows)
    assert [[(g.text, g.is_active) for g in col] for col in hor][1] == [("b", True), ("c", False)]


# --- prompts from file ----------------------------------------------------------------------------

def test_prompts_from_file_line_syntax():
    assert pff.parse_line('--prompt "a cat" on a mat --steps 7 --seed 5 --cfg_scale 3.5 --tiling true '
                          '--styles "s1, s2" --negative_prompt ugly blurry') == {
        "prompt": "a cat on a mat", "steps": 7, "seed": 5, "cfg_scale": 3.5, "tiling": True, "styles": ["s1", "s2"],
        "negative_prompt": "ugly blurry"}
    for bad, why in (("--steps many", "cannot read"), ("--bogus 1", "unknown option"), ("--steps", "missing value"),
                     ("word --steps 2", "expected an option")):
        with pytest.raises(ValueError, match=why):
            pff.parse_line(bad)
    jobs, warnings = pff.parse_jobs("plain prompt\n\n  --prompt x --width 96\n--frobnicate 2\n")
    assert jobs == [{"prompt": "plain prompt"}, {"prompt": "x", "width": 96}, {"prompt": "--frobnicate 2"}]
    assert len(warnings) == 1 and "unknown option --frobnicate" in warnings[0]


def test_prompts_from_file_applies_a_line_to_a_copy():
    p = StableDiffusionProcessing(None, GenerationRequest(prompt="base", negative_prompt="neg", steps=20))
    pc = pff.apply_job(p, {"prompt": "line", "steps": 3, "sd_model": "other.safetensors", "negative_prompt": "n2"}, "start")
    assert (pc.prompt, pc.negative_prompt, pc.steps) == ("line base", "n2 neg", 3)
    assert pc.override_settings == {"sd_model_checkpoint": "other.safetensors"}
    assert (p.prompt, p.steps, p.override_settings) == ("base", 20, {})
    assert pff.apply_job(p, {"prompt": "line"}, "end").prompt == "base line"


# --- load order -----------------------------------------------------------------------------------

def test_script_order_follows_metadata_before_and_after(tmp_path):
    from modules.scripting.extensions import Extension, ExtensionMetadata

    def ext(name, **meta):
        return Extension(name, tmp_path / name, False, canonical_name=name, metadata=ExtensionMetadata(**meta))

    a = ext("a", script_after={"scripts/a1.py": ["c"]})
    b = ext("b", script_before={"scripts/b1.py": ["scripts/root.py"]})
    c = ext("c")
    files = [scripts.ScriptFile("scripts/root.py", tmp_path / "root.py", tmp_path),
             scripts.ScriptFile("a/scripts/a1.py", tmp_path / "a" / "scripts" / "a1.py", a.path, a),
             scripts.ScriptFile("b/scripts/b1.py", tmp_path / "b" / "scripts" / "b1.py", b.path, b),
             scripts.ScriptFile("c/scripts/c1.py", tmp_path / "c" / "scripts" / "c1.py", c.path, c)]
    assert [f.key for f in scripts.order_script_files(files)] == [
        "b/scripts/b1.py", "scripts/root.py", "c/scripts/c1.py", "a/scripts/a1.py"]
    cyclic = ext("a", script_after={"scripts/a1.py": ["c"]})
    c2 = ext("c", script_after={"scripts/c1.py": ["a"]})
    files = [scripts.ScriptFile("a/scripts/a1.py", tmp_path / "a" / "scripts" / "a1.py", cyclic.path, cyclic),
             scripts.ScriptFile("c/scripts/c1.py", tmp_path / "c" / "scripts" / "c1.py", c2.path, c2)]
    assert [f.key for f in scripts.order_script_files(files)] == ["a/scripts/a1.py", "c/scripts/c1.py"]
