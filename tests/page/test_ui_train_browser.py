"""The Train tab in a real browser, as a new user tries it: create an embedding and a hypernetwork, train the
hypernetwork watching loss and previews, interrupt, then use the result in a txt2img prompt. Tiny SD1 checkpoint
(64 px); screenshots go to tests/artifacts/."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from tests import tiny_models
from tests.browser_harness import open_page, require_playwright, serve, shot

require_playwright()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import webui
    from modules.settings import cmd_args

    data = tmp_path_factory.mktemp("train-browser")
    ckpt_dir = data / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True)
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=6), ckpt_dir / "tiny-64.safetensors", "sd1",
                                  metadata={"modelspec.resolution": "64x64"})
    pics = data / "pics"
    pics.mkdir()
    for i in range(3):
        Image.new("RGB", (64, 64), (30, 80 * i, 200)).save(pics / f"{i}-blue square.png")
    args = cmd_args.parse_args(["--data-dir", str(data)], environ={})
    engine = webui.build_engine(args)
    engine.ensure_model()
    app = webui.create_app(engine, args)
    with serve(app, "train", start_timeout=120) as url:
        yield SimpleNamespace(url=url, data=data, engine=engine, pics=pics)


def _fill(pg, elem_id: str, value) -> None:
    box = pg.locator(f"#{elem_id} textarea, #{elem_id} input").first
    box.fill(str(value))
    box.blur()  # (Tab would open the dropdown that follows some fields)


def _choose(pg, elem_id: str, value: str) -> None:
    box = pg.locator(f"#{elem_id} input").first
    box.click()
    box.fill(value)
    pg.locator("ul[role=listbox] li", has_text=value).first.click()


def test_create_train_interrupt_and_use(server, browser):
    engine = server.engine
    with open_page(browser, server.url, "#txt2img_prompt textarea", viewport={"width": 1400, "height": 1300}) as pg:
        pg.get_by_role("tab", name="Train", exact=True).first.click()
        pg.locator("#train_new_embedding_name input, #train_new_embedding_name textarea").first.wait_for()
        _fill(pg, "train_new_embedding_name", "ui-emb")
        _fill(pg, "train_initialization_text", "blue")
        pg.locator("#train_create_embedding").click()
        pg.wait_for_function("() => document.querySelector('#train_create_embedding_out')?.textContent.includes('Created')")
        assert (server.data / "models" / "embeddings" / "ui-emb.pt").is_file()

        pg.get_by_role("tab", name="Create hypernetwork", exact=True).click()
        _fill(pg, "train_new_hypernetwork_name", "ui-hn")
        _fill(pg, "train_new_hypernetwork_layer_structure", "1, 1.5, 1")
        shot(pg, "train_create_hypernetwork.png", full_page=True)
        pg.locator("#train_create_hypernetwork").click()
        pg.wait_for_function("() => document.querySelector('#train_create_hypernetwork_out')?.textContent.includes('Created')")
        created = torch.load(server.data / "models" / "hypernetworks" / "ui-hn.pt", weights_only=True)
        assert created["layer_structure"] == [1.0, 1.5, 1.0]
        assert {k for k in created if isinstance(k, int)} == {
            int(v) for v in [engine.model.unet.config.cross_attention_dim, *engine.model.unet.config.block_out_channels]}

        pg.locator("#train_tabs").get_by_role("tab", name="Train", exact=True).click()
        pg.locator("#train_refresh_lists").click()
        _choose(pg, "train_hypernetwork", "ui-hn")
        _fill(pg, "train_hypernetwork_learn_rate", "0.001")
        _fill(pg, "train_dataset_directory", str(server.pics))
        _choose(pg, "train_template_file", "hypernetwork.txt")
        _fill(pg, "train_create_image_every", 2)
        _fill(pg, "train_save_embedding_every", 0)
        pg.locator("#train_train_hypernetwork").click()
        pg.wait_for_function("() => document.querySelector('#ti_progress')?.textContent.includes('Loss:')",
                             timeout=120_000)
        pg.wait_for_function("() => document.querySelector('#ti_preview img')", timeout=120_000)
        progress = pg.locator("#ti_progress").inner_text()
        assert "Step:" in progress and "Learning rate: 0.001" in progress and "ETA" in progress
        shot(pg, "train_running.png", full_page=True)
        pg.locator("#train_interrupt_training").click()
        pg.wait_for_function("() => document.querySelector('#ti_progress')?.textContent.includes('Training interrupted')",
                             timeout=120_000)
        assert "Hypernetwork saved to" in pg.locator("#ti_progress").inner_text()
        shot(pg, "train_interrupted.png", full_page=True)
        step = torch.load(server.data / "models" / "hypernetworks" / "ui-hn.pt", weights_only=True)["step"]
        assert step >= 2

        # The result works at once in a prompt.
        pg.get_by_role("tab", name="txt2img", exact=True).first.click()
        pg.locator("#txt2img_prompt textarea").fill("a square <hypernet:ui-hn:1>")
        for elem, value in (("txt2img_steps", 2), ("txt2img_width", 64), ("txt2img_height", 64)):
            box = pg.locator(f"#{elem} input[type=number]")
            box.fill(str(value))
            box.press("Tab")
        pg.locator("#txt2img_prompt textarea").press("Control+Enter")
        pg.wait_for_function("() => document.querySelectorAll('#txt2img_gallery img').length >= 1", timeout=60_000)
        assert "Hypernetwork not found" not in pg.locator("#html_log_txt2img").inner_text()
