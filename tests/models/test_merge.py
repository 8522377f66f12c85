"""Checkpoint Merger: the arithmetic on state dicts, the atomic writing, and a real merge of the shipped demo model
with a modified copy through the Engine: the result loads, generates, and its metadata says how it was made."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from modules.models import builtin_model, merge
from modules.models.safe_load import load_state_dict, read_safetensors_metadata


def test_weighted_sum_and_add_difference_values():
    a = {"w": torch.tensor([1.0, 2.0]), "only_a": torch.tensor([5.0]), "step": torch.tensor([3])}
    b = {"w": torch.tensor([3.0, 6.0]), "step": torch.tensor([9])}
    c = {"w": torch.tensor([1.0, 1.0])}
    out = merge.merge_state_dicts(a, b, method="Weighted sum", multiplier=0.25)
    assert torch.allclose(out["w"], torch.tensor([1.5, 3.0]))
    assert out["only_a"] is a["only_a"] and torch.equal(out["step"], a["step"])  # integers are not mixed
    out = merge.merge_state_dicts(a, b, c, method="Add difference", multiplier=0.5)
    assert torch.allclose(out["w"], torch.tensor([2.0, 4.5]))
    assert merge.merge_state_dicts(a, method="No interpolation") == a
    half = {"w": torch.tensor([1.0], dtype=torch.float16)}
    assert merge.merge_state_dicts(half, {"w": torch.tensor([3.0])}, multiplier=0.5)["w"].dtype == torch.float16


def test_an_inpainting_a_merges_its_first_four_input_channels():
    key = merge.UNET_INPUT_KEY
    a = {key: torch.ones(2, 9, 1, 1)}
    b = {key: torch.full((2, 4, 1, 1), 3.0)}
    out = merge.merge_state_dicts(a, b, multiplier=0.5)[key]
    assert torch.equal(out[:, :4], torch.full((2, 4, 1, 1), 2.0)) and torch.equal(out[:, 4:], torch.ones(2, 5, 1, 1))
    with pytest.raises(merge.MergeError, match="A must be the inpainting model"):
        merge.merge_state_dicts(b, a, multiplier=0.5)
    with pytest.raises(merge.MergeError, match="x: shapes"):
        merge.merge_state_dicts({"x": torch.ones(2)}, {"x": torch.ones(3)})


def test_discard_half_bake_and_names():
    state = {"model.diffusion_model.a": torch.ones(1), "model_ema.b": torch.ones(1), "first_stage_model.x": torch.zeros(1)}
    assert set(merge.discard(state, r"^model_ema\.")) == {"model.diffusion_model.a", "first_stage_model.x"}
    assert merge.to_half(state)["model_ema.b"].dtype == torch.float16
    baked = merge.bake_vae(state, {"first_stage_model.y": torch.ones(2)})
    assert "first_stage_model.x" not in baked and torch.equal(baked["first_stage_model.y"], torch.ones(2))
    assert merge.default_name("Weighted sum", "a", "b", multiplier=0.3) == "0.7(a) + 0.3(b)"
    assert merge.default_name("Add difference", "a", "b", "c", 0.5) == "a + 0.5(b - c)"
    assert merge.default_name("No interpolation", "a") == "a"
    for bad, field in ((dict(interp_method="Sigmoid"), "interp_method"), (dict(secondary=""), "secondary"),
                       (dict(interp_method="Add difference"), "tertiary"), (dict(multiplier=2), "multiplier"),
                       (dict(discard_weights="("), "discard_weights"), (dict(custom_name="../x"), "custom_name")):
        recipe = merge.Recipe(**{"primary": "a", "secondary": "b", **bad})
        with pytest.raises(merge.MergeError) as info:
            recipe.check()
        assert info.value.field == field


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_write_checkpoint_is_atomic_and_reads_back(tmp_path, suffix, monkeypatch):
    state = {"a": torch.arange(4.0), "b": torch.ones(2, dtype=torch.float16)}
    path = merge.write_checkpoint(state, tmp_path / f"m{suffix}", {"format": "pt", "k": "v"})
    back = load_state_dict(path)
    assert torch.equal(back["a"], state["a"]) and back["b"].dtype == torch.float16
    assert [p.name for p in tmp_path.iterdir()] == [f"m{suffix}"]  # no temporary file left

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    from modules.models import ldm_export

    monkeypatch.setattr(ldm_export, "write_safetensors", boom)
    with pytest.raises(OSError):
        merge.write_checkpoint(state, tmp_path / f"n{suffix}")
    assert [p.name for p in tmp_path.iterdir()] == [f"m{suffix}"]  # a failed write leaves nothing behind


# --- through the Engine, on the shipped demo model ---------------------------------------------------


@pytest.fixture(scope="module")
def merge_engine(tmp_path_factory):
    import webui
    from modules.settings import cmd_args

    data = tmp_path_factory.mktemp("merge-engine")
    ckpt_dir = data / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True)
    shutil.copyfile(builtin_model.DEMO_PATH, ckpt_dir / "demo.safetensors")
    # the modified copy: every UNet weight moved, the rest the same
    state = load_state_dict(builtin_model.DEMO_PATH)
    gen = torch.Generator().manual_seed(0)
    changed = {k: (v + 0.05 * torch.randn(v.shape, generator=gen, dtype=torch.float32).to(v.dtype)
                   if k.startswith("model.diffusion_model.") and v.is_floating_point() else v) for k, v in state.items()}
    meta = read_safetensors_metadata(builtin_model.DEMO_PATH)
    merge.write_checkpoint(changed, ckpt_dir / "demo-changed.safetensors", meta)
    (ckpt_dir / "demo.yaml").write_text("model: {}\n")
    engine = webui.build_engine(cmd_args.parse_args(["--data-dir", str(data)], environ={}))
    return engine


def _generate(engine, title: str) -> np.ndarray:
    from modules.core.request import GenerationRequest

    engine.options.set("sd_model_checkpoint", title)
    engine.ensure_model()
    request = GenerationRequest(prompt="a red circle on a blue background", steps=6, width=64, height=64, seed=1,
                                do_not_save_samples=True, do_not_save_grid=True)
    return np.asarray(engine.generate(request).images[0].convert("RGB")).astype(int)


def test_a_weighted_sum_of_the_demo_model_loads_generates_and_says_how_it_was_made(merge_engine):
    engine = merge_engine
    titles = {Path(i.filename).name: i.title for i in engine.available_checkpoints()}
    a_title, b_title = titles["demo.safetensors"], titles["demo-changed.safetensors"]
    recipe = merge.Recipe(primary=a_title, secondary=b_title, interp_method="Weighted sum", multiplier=0.5,
                          discard_weights=r"^model_ema\.")
    done = engine.merge_checkpoints(recipe)
    assert done.path.name == "0.5(demo) + 0.5(demo-changed).safetensors"
    assert done.config is not None and done.config.read_text() == "model: {}\n"  # A's config, copied
    a, b, out = (load_state_dict(p) for p in (builtin_model.DEMO_PATH, done.path.with_name("demo-changed.safetensors"),
                                               done.path))
    key = next(k for k in a if k.startswith("model.diffusion_model.") and a[k].ndim == 4)
    assert torch.allclose(out[key].float(), (a[key].float() + b[key].float()) / 2, atol=1e-3)
    meta = read_safetensors_metadata(done.path)
    made = json.loads(meta["sd_merge_recipe"])
    assert made["interp_method"] == "Weighted sum" and made["multiplier"] == 0.5
    listed = {Path(i.filename).name: i for i in engine.available_checkpoints()}
    assert made["primary_model_hash"] == listed["demo.safetensors"].sha256
    assert made["secondary_model_hash"] == listed["demo-changed.safetensors"].sha256
    assert made["tertiary_model_hash"] is None
    models = json.loads(meta["sd_merge_models"])
    assert {m["name"] for m in models.values()} == {"demo.safetensors", "demo-changed.safetensors"}
    assert meta["modelspec.resolution"] == "64x64"  # still the 64 px model
    assert done.title in [i.title for i in engine.available_checkpoints()]

    pic_a, pic_b, pic_m = (_generate(engine, t) for t in (a_title, b_title, done.title))
    assert pic_m.shape == (64, 64, 3)
    assert np.abs(pic_m - pic_a).mean() > 0.5 and np.abs(pic_m - pic_b).mean() > 0.5  # a third model
    with pytest.raises(merge.MergeError, match="already exists"):
        engine.merge_checkpoints(recipe)


def test_add_difference_to_fp16_ckpt_with_a_baked_vae(merge_engine):
    engine = merge_engine
    vae_dir = Path(engine.paths.vae_dirs[0])
    vae_dir.mkdir(parents=True, exist_ok=True)
    state = load_state_dict(builtin_model.DEMO_PATH)
    vae = {k[len("first_stage_model."):]: v * 0 + 0.5 if k.endswith("conv_out.bias") else v
           for k, v in state.items() if k.startswith("first_stage_model.")}
    merge.write_checkpoint(vae, vae_dir / "flat.safetensors")
    engine.vaes.refresh()
    titles = {Path(i.filename).name: i.title for i in engine.available_checkpoints()}
    recipe = merge.Recipe(primary=titles["demo.safetensors"], secondary=titles["demo-changed.safetensors"],
                          tertiary=titles["demo.safetensors"], interp_method="Add difference", multiplier=1.0,
                          save_as_half=True, checkpoint_format="ckpt", custom_name="demo-diff",
                          bake_in_vae="flat.safetensors", config_source="Don't")
    done = engine.merge_checkpoints(recipe)
    assert done.path.name == "demo-diff.ckpt" and done.config is None
    out = load_state_dict(done.path)
    changed = load_state_dict(done.path.with_name("demo-changed.safetensors"))
    key = next(k for k in changed if k.startswith("model.diffusion_model.") and changed[k].ndim == 4)
    assert out[key].dtype == torch.float16
    assert torch.allclose(out[key].float(), changed[key].float(), atol=2e-2)  # A + (B - A) * 1 = B
    assert torch.all(out["first_stage_model.decoder.conv_out.bias"] == 0.5)
    picture = _generate(engine, done.title)
    assert picture.shape == (64, 64, 3)


def test_metadata_options_as_a1111_writes_them(merge_engine):
    engine = merge_engine
    titles = {Path(i.filename).name: i.title for i in engine.available_checkpoints()}
    common = dict(primary=titles["demo.safetensors"], secondary=titles["demo-changed.safetensors"], multiplier=0.2,
                  config_source="Don't")
    done = engine.merge_checkpoints(merge.Recipe(**common, custom_name="meta-user", copy_metadata_fields=False,
                                                 add_merge_recipe=False, metadata_json='{"note": "mine", "n": 2}'))
    meta = read_safetensors_metadata(done.path)
    assert meta["note"] == "mine" and meta["n"] == "2" and meta["format"] == "pt"
    assert "sd_merge_recipe" not in meta and "sd_merge_models" not in meta
    assert meta["modelspec.resolution"] == "64x64"  # the primary's native size always stays
    copied = read_safetensors_metadata(engine.merge_checkpoints(merge.Recipe(**common, custom_name="meta-copy")).path)
    source = read_safetensors_metadata(builtin_model.DEMO_PATH)
    assert {k: copied.get(k) for k in source} == source
    assert json.loads(copied["sd_merge_recipe"])["multiplier"] == 0.2
    nothing = read_safetensors_metadata(engine.merge_checkpoints(
        merge.Recipe(**common, custom_name="meta-none", save_metadata=False, metadata_json="not json")).path)
    assert set(nothing) == {k for k in source if k.startswith("modelspec.") and k != "modelspec.thumbnail"}
    with pytest.raises(merge.MergeError) as err:
        engine.merge_checkpoints(merge.Recipe(**common, custom_name="meta-bad", metadata_json="[1]"))
    assert err.value.field == "metadata_json"


def test_a_merge_waits_for_the_running_job(merge_engine):
    import threading

    engine = merge_engine
    titles = {Path(i.filename).name: i.title for i in engine.available_checkpoints()}
    recipe = merge.Recipe(primary=titles["demo.safetensors"], interp_method="No interpolation", custom_name="queued",
                          config_source="Don't")
    held, release, result = threading.Event(), threading.Event(), {}

    def job():
        with engine.exclusive():  # what a running generation holds
            held.set()
            release.wait(60)

    runner = threading.Thread(target=job, daemon=True)
    runner.start()
    assert held.wait(30)
    merging = threading.Thread(target=lambda: result.setdefault("done", engine.merge_checkpoints(recipe)), daemon=True)
    merging.start()
    merging.join(1.5)
    assert merging.is_alive() and "done" not in result  # queued behind the job
    assert not (Path(engine.paths.ckpt_dirs[0]) / "queued.safetensors").exists()
    release.set()
    merging.join(120)
    runner.join(10)
    assert result["done"].path.name == "queued.safetensors"
