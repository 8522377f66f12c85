"""The Refiner accordion, Soft inpainting and Inpaint sketch's mask transparency, in Debian's chromium (issue 18).

The app as webui.py serves it over the shipped 64 px demo model and a copy with other UNet weights (the refiner).
Each test drives the page as a user does and compares the gallery's pictures with what the Engine gives for the same
request, by pixels. Screenshots: tests/artifacts/.
"""
from __future__ import annotations

import io
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from modules.core import infotext
from modules.core.request import GenerationRequest
from modules.models import builtin_model, merge
from modules.models.safe_load import load_state_dict, read_safetensors_metadata
from tests.browser_harness import open_page, require_playwright, serve, shot

require_playwright()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import webui
    from modules.settings import cmd_args

    data = tmp_path_factory.mktemp("refiner-browser")
    ckpt_dir = data / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True)
    shutil.copyfile(builtin_model.DEMO_PATH, ckpt_dir / "demo.safetensors")
    state = load_state_dict(builtin_model.DEMO_PATH)
    other = {k: v * 1.05 if k.startswith("model.diffusion_model.") and v.is_floating_point() else v
             for k, v in state.items()}
    merge.write_checkpoint(other, ckpt_dir / "demo-other.safetensors", read_safetensors_metadata(builtin_model.DEMO_PATH))
    args = cmd_args.parse_args(["--data-dir", str(data), "--api"], environ={})
    engine = webui.build_engine(args)
    engine.options.set("sd_model_checkpoint", "demo.safetensors")
    engine.ensure_model()
    app = webui.create_app(engine, args)
    with serve(app, "refiner", start_timeout=120) as url:
        yield SimpleNamespace(url=url, data=data, engine=engine)


@pytest.fixture()
def page(server, browser):
    with open_page(browser, server.url, "#txt2img_prompt textarea", viewport={"width": 1400, "height": 1100}) as pg:
        yield pg


def set_number(pg, elem_id: str, value) -> None:
    box = pg.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Tab")


def gallery_images(pg, tab: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(pg.request.get(img.get_attribute("src")).body()))
            for img in pg.locator(f"#{tab}_gallery img").all()]


def wait_done(pg, tab: str, timeout: float = 120_000) -> None:
    log = pg.locator(f"#html_log_{tab}")
    log.filter(has_text="Time taken").or_(log.filter(has_text="Error")).wait_for(timeout=timeout)
    assert "Error" not in log.inner_text(), log.inner_text()
    pg.wait_for_function(f"() => !document.querySelector('#{tab}_results .sd-progress-box')", timeout=timeout)


def choose(pg, elem_id: str, option: str) -> None:
    box = pg.locator(f"#{elem_id} input").first
    box.click()
    pg.get_by_role("option", name=option, exact=True).locator("visible=true").first.click()


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def engine_picture(engine, **fields) -> np.ndarray:
    req = GenerationRequest(do_not_save_samples=True, do_not_save_grid=True, **fields)
    return pixels(engine.generate(req).images[0])


def _title(server, prefix: str) -> str:
    return next(i.title for i in server.engine.available_checkpoints() if i.title.startswith(prefix))


PROMPT = "a red circle on a blue background"


def test_refiner_accordion_switches_model_mid_run_and_pastes_back(page, server):
    page.locator("#txt2img_prompt textarea").fill(PROMPT)
    for elem, v in (("txt2img_steps", 8), ("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_seed", 21)):
        set_number(page, elem, v)
    assert not page.locator("#txt2img_checkpoint").is_visible()
    page.locator("#txt2img_enable input").check()
    other = _title(server, "demo-other")
    choose(page, "txt2img_checkpoint", other)
    set_number(page, "txt2img_switch_at", 0.5)
    shot(page, "refiner_accordion.png")
    page.locator("#txt2img_generate").click()
    wait_done(page, "txt2img")
    info = page.locator("#html_info_txt2img").inner_text()
    params = infotext.parse_generation_parameters(info.strip())
    assert params["Refiner"].startswith("demo-other [") and params["Refiner switch at"] == "0.5"
    assert params["Model"] == "demo"
    shown = pixels(gallery_images(page, "txt2img")[0])
    common = dict(prompt=PROMPT, steps=8, width=64, height=64, seed=21, sampler_name="DPM++ 2M")
    assert np.array_equal(shown, engine_picture(server.engine, refiner_checkpoint=other, refiner_switch_at=0.5,
                                                **common))
    assert np.abs(shown - engine_picture(server.engine, **common)).mean() > 0.5  # the refiner changed the picture

    # untick: the same page generates the plain picture; paste the refiner's infotext: ticked and filled again
    page.locator("#txt2img_enable input").uncheck()
    page.locator("#txt2img_prompt textarea").fill(info.strip())
    page.locator("#txt2img_paste").click()
    page.wait_for_function(f"() => document.querySelector('#txt2img_prompt textarea').value === {PROMPT!r}")
    page.locator("#txt2img_checkpoint").wait_for(state="visible")
    assert page.locator("#txt2img_enable input").is_checked()
    assert page.locator("#txt2img_checkpoint input").first.input_value() == other
    assert page.locator("#txt2img_switch_at input[type=number]").input_value() == "0.5"
