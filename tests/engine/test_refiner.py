"""The refiner: the Engine switches checkpoints inside the sampling loop, as A1111's apply_refiner does.

Two tiny SD1 checkpoints with different weights stand for base and refiner; every check is on pixels or infotexts.
"""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from modules.core import infotext
from modules.core.request import GenerationRequest, RequestError
from modules.scripting import runtime
from modules.settings import cmd_args
from tests import tiny_models


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import webui

    data = tmp_path_factory.mktemp("refiner")
    ckpt_dir = data / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True)
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=3), ckpt_dir / "base.safetensors", "sd1")
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=7), ckpt_dir / "refine.safetensors", "sd1")
    args = cmd_args.parse_args(["--data-dir", str(data), "--nowebui"], environ={})
    engine = webui.build_engine(args)
    engine.select_checkpoint("base.safetensors")
    yield engine, TestClient(webui.create_app(engine, args))
    runtime.unbind(engine)  # later tests expect no Engine behind A1111's globals


def _run(engine, **kw):
    kw.setdefault("prompt", "a cat")
    req = GenerationRequest(steps=5, width=64, height=64, seed=11, sampler_name="Euler",
                            do_not_save_samples=True, do_not_save_grid=True, **kw)
    processed = engine.generate(req)
    return np.asarray(processed.images[0], dtype=np.int16), processed.infotexts[0]


def _params(text: str) -> dict:
    return infotext.parse_generation_parameters(text)


def test_switch_changes_the_picture_and_the_infotext_names_both(setup):
    engine, _ = setup
    plain, _ = _run(engine)
    refined, text = _run(engine, refiner_checkpoint="refine.safetensors", refiner_switch_at=0.5)
    assert np.abs(plain - refined).mean() > 1.0
    params = _params(text)
    refiner = engine.checkpoints.get_closest("refine.safetensors")
    assert params["Refiner"] == f"refine [{refiner.shorthash}]"
    assert params["Refiner switch at"] == "0.5"
    assert params["Model"] == "base"  # the model the job started on
    assert engine.checkpoint_info.title.startswith("base.safetensors")  # back on the main model afterwards
    assert engine.options.get("sd_model_checkpoint").startswith("base.safetensors")


def test_switch_at_one_or_the_same_model_changes_nothing(setup):
    engine, _ = setup
    plain, plain_text = _run(engine)
    never, text = _run(engine, refiner_checkpoint="refine.safetensors", refiner_switch_at=1.0)
    assert np.array_equal(plain, never)
    assert "Refiner" not in _params(text)  # A1111 names the refiner only once it switched
    same, text = _run(engine, refiner_checkpoint="base.safetensors", refiner_switch_at=0.3)
    assert np.array_equal(plain, same) and "Refiner" not in _params(text)


def test_switch_at_zero_is_a_plain_run_on_the_refiner(setup):
    engine, _ = setup
    only_refiner, _ = _run(engine, refiner_checkpoint="refine.safetensors", refiner_switch_at=0.0)
    engine.select_checkpoint("refine.safetensors")
    try:
        on_refiner, _ = _run(engine)
    finally:
        engine.select_checkpoint("base.safetensors")
    assert np.array_equal(only_refiner, on_refiner)


def test_each_batch_starts_on_the_main_model(setup):
    engine, _ = setup
    one, _ = _run(engine, refiner_checkpoint="refine.safetensors", refiner_switch_at=0.5)
    req = GenerationRequest(prompt="a cat", steps=5, width=64, height=64, seed=11, sampler_name="Euler", n_iter=2,
                            refiner_checkpoint="refine.safetensors", refiner_switch_at=0.5,
                            do_not_save_samples=True, do_not_save_grid=True, subseed_strength=0)
    processed = engine.generate(req)
    second_alone, _ = _run(engine, refiner_checkpoint="refine.safetensors", refiner_switch_at=0.5)
    # image 2 (seed 12) is what seed 12 alone gives: its batch began on the main model again
    seed12 = GenerationRequest(prompt="a cat", steps=5, width=64, height=64, seed=12, sampler_name="Euler",
                               refiner_checkpoint="refine.safetensors", refiner_switch_at=0.5,
                               do_not_save_samples=True, do_not_save_grid=True)
    alone = np.asarray(engine.generate(seed12).images[0], dtype=np.int16)
    assert np.array_equal(np.asarray(processed.images[0], dtype=np.int16), one)
    assert np.array_equal(np.asarray(processed.images[1], dtype=np.int16), alone)
    assert np.array_equal(second_alone, one)


def test_hires_fix_uses_the_refiner_in_the_pass_the_setting_names(setup):
    engine, _ = setup
    hires = dict(enable_hr=True, hr_scale=1.5, denoising_strength=0.6, hr_second_pass_steps=3)
    plain, _ = _run(engine, **hires)
    second, text = _run(engine, refiner_checkpoint="refine.safetensors", refiner_switch_at=0.5, **hires)
    assert plain.shape == second.shape == (96, 96, 3)
    assert np.abs(plain - second).mean() > 1.0
    assert "Hires refiner" not in _params(text) and "Refiner" in _params(text)  # "second pass" is the default
    engine.apply_settings({"hires_fix_refiner_pass": "first pass"}, save=False)
    try:
        first, text = _run(engine, refiner_checkpoint="refine.safetensors", refiner_switch_at=0.5, **hires)
    finally:
        engine.apply_settings({"hires_fix_refiner_pass": "second pass"}, save=False)
    assert _params(text)["Hires refiner"] == "first pass"
    assert not np.array_equal(first, second) and not np.array_equal(first, plain)


def test_unknown_refiner_is_the_requests_error(setup):
    engine, _ = setup
    with pytest.raises(RequestError) as err:
        _run(engine, refiner_checkpoint="no-such-model", refiner_switch_at=0.5)
    assert err.value.field == "refiner_checkpoint"
    with pytest.raises(RequestError) as err:
        _run(engine, refiner_checkpoint="refine.safetensors", refiner_switch_at=1.5)
    assert err.value.field == "refiner_switch_at"


def test_api_fields_and_pasted_infotext(setup):
    engine, client = setup
    payload = {"prompt": "a cat", "steps": 5, "width": 64, "height": 64, "seed": 11, "sampler_name": "Euler",
               "refiner_checkpoint": "refine", "refiner_switch_at": 0.5}
    r = client.post("/sdapi/v1/txt2img", json=payload)
    assert r.status_code == 200, r.text
    image = Image.open(io.BytesIO(base64.b64decode(r.json()["images"][0])))
    direct, text = _run(engine, refiner_checkpoint="refine.safetensors", refiner_switch_at=0.5)
    assert np.array_equal(np.asarray(image.convert("RGB"), dtype=np.int16), direct)
    assert json.loads(r.json()["info"])["infotexts"][0] == text
    # the infotext alone brings the refiner back (A1111's API `infotext` field)
    r = client.post("/sdapi/v1/txt2img", json={"infotext": text, "width": 64, "height": 64})
    assert r.status_code == 200, r.text
    again = Image.open(io.BytesIO(base64.b64decode(r.json()["images"][0])))
    assert np.array_equal(np.asarray(again.convert("RGB"), dtype=np.int16), direct)
    bad = client.post("/sdapi/v1/txt2img", json={**payload, "refiner_checkpoint": "missing"})
    assert bad.status_code == 422 and "refiner_checkpoint" in bad.text


def test_paste_fills_the_refiner_fields(setup):
    from modules.page.infotext_paste import paste_fields

    engine, _ = setup
    _, text = _run(engine, refiner_checkpoint="refine.safetensors", refiner_switch_at=0.5)
    result = paste_fields(engine, text, False)
    refiner = engine.checkpoints.get_closest("refine.safetensors")
    assert result.fields["refiner_checkpoint"] == refiner.title
    assert result.fields["refiner_switch_at"] == 0.5
    missing = paste_fields(engine, text.replace("Refiner: refine", "Refiner: elsewhere"), False)
    assert "refiner_checkpoint" not in missing.fields
    assert any(p.startswith("Refiner:") for p in missing.problems)


def test_xyz_plot_has_a1111s_refiner_axes(setup):
    from modules.scripting.host import ScriptHost

    engine, _ = setup
    host = ScriptHost.for_engine(engine)
    req = GenerationRequest(prompt="a cat", steps=5, width=64, height=64, seed=11, sampler_name="Euler",
                            refiner_checkpoint="refine.safetensors", do_not_save_samples=True, do_not_save_grid=True,
                            script_name="X/Y/Z plot")
    runner = host.scripts.runner(False)
    runner.ensure_layout()
    xyz = runner.find("x/y/z plot")
    labels = [str(c) for c in xyz.controls[0].choices] if hasattr(xyz.controls[0], "choices") else []
    assert any("Refiner switch at" in label for label in labels) and any("Refiner checkpoint" in label for label in labels)
    args = [arg_default for arg_default in runner.defaults[xyz.args_from:xyz.args_to]]
    args[0], args[1], args[10] = "Refiner switch at", "1, 0.5", True  # include the cells after the grid
    req.script_args = args
    processed = host.generate(req)
    cells = [np.asarray(image, dtype=np.int16) for image in processed.images[1:]]
    plain, _ = _run(engine)
    refined, _ = _run(engine, refiner_checkpoint="refine.safetensors", refiner_switch_at=0.5)
    assert np.array_equal(cells[0], plain) and np.array_equal(cells[1], refined)


def test_img2img_switches_too(setup):
    engine, _ = setup
    init = Image.new("RGB", (64, 64), (200, 40, 40))
    common = dict(init_images=[init], denoising_strength=0.6)
    plain, _ = _run(engine, **common)
    refined, text = _run(engine, refiner_checkpoint="refine.safetensors", refiner_switch_at=0.5, **common)
    assert np.abs(plain - refined).mean() > 1.0 and "Refiner switch at: 0.5" in text
    only, _ = _run(engine, refiner_checkpoint="refine.safetensors", refiner_switch_at=0.0, **common)
    engine.select_checkpoint("refine.safetensors")
    try:
        on_refiner, _ = _run(engine, **common)
    finally:
        engine.select_checkpoint("base.safetensors")
    # not equal: the init image is encoded by the main model's VAE (as in A1111), and these two VAEs differ; the
    # sampling is the refiner's alone
    assert np.abs(only - on_refiner).mean() < np.abs(only - plain).mean() / 4


def test_a_lora_applies_to_both_models_and_the_main_model_comes_back_clean(setup):
    from tests import network_files

    engine, _ = setup
    plain_before, _ = _run(engine)
    lora_dir = Path(engine.paths.lora_dirs[0])
    network_files.save_safetensors(network_files.kohya_lora(tiny_models.tiny_sd1(seed=5), seed=1),
                                   lora_dir / "ink.safetensors")
    engine.networks.refresh(["lora"])
    kw = dict(refiner_checkpoint="refine.safetensors", refiner_switch_at=0.5)
    with_lora, text = _run(engine, prompt="a cat <lora:ink:1>", **kw)
    without, _ = _run(engine, **kw)
    assert np.abs(with_lora - without).mean() > 0.5 and "Lora hashes" in text
    # two batches: the second starts on the main model put back (its LoRA applied again, not twice)
    req = GenerationRequest(prompt="a cat <lora:ink:1>", steps=5, width=64, height=64, seed=11, sampler_name="Euler",
                            n_iter=2, do_not_save_samples=True, do_not_save_grid=True, **kw)
    second = np.asarray(engine.generate(req).images[1], dtype=np.int16)
    seed12 = GenerationRequest(prompt="a cat <lora:ink:1>", steps=5, width=64, height=64, seed=12, sampler_name="Euler",
                               do_not_save_samples=True, do_not_save_grid=True, **kw)
    assert np.array_equal(second, np.asarray(engine.generate(seed12).images[0], dtype=np.int16))
    assert np.array_equal(_run(engine)[0], plain_before)  # the main model without a LoRA: as before
