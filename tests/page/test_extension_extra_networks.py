"""An extension's own extra networks page (A1111's ``ui_extra_networks.ExtraNetworksPage`` + ``register_page``, as
civitai-helper-style extensions write it) becomes a tab of the card browser: its ``list_items()`` are the cards,
a card's prompt is the item's ``quote_js`` prompt, and its previews are served from its allowed folders only."""
from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from modules.page import extra_networks as uen
from modules.scripting import runtime
from tools import demo_extra_networks as demo


def make_page_class():
    from modules import ui_extra_networks

    class CivitaiModelsPage(ui_extra_networks.ExtraNetworksPage):
        def __init__(self, folder: str):
            super().__init__("Civitai Models")
            self.folder = folder
            self.refreshed = 0

        def refresh(self):
            self.refreshed += 1

        def create_item(self, name, index=None, enable_filter=True):
            path = os.path.join(self.folder, name + ".safetensors")
            base = os.path.splitext(path)[0]
            return {
                "name": name, "filename": path, "preview": self.find_preview(base),
                "description": self.find_description(base), "search_terms": [self.search_terms_from_path(path)],
                "prompt": ui_extra_networks.quote_js(f"<lora:{name}:0.8>"), "local_preview": base + ".png",
                "sort_keys": {"default": index, **self.get_sort_keys(path)},
            }

        def list_items(self):
            for i, file in enumerate(sorted(os.listdir(self.folder))):
                if file.endswith(".safetensors"):
                    yield self.create_item(file[: -len(".safetensors")], i)

        def allowed_directories_for_previews(self):
            return [self.folder]

    return CivitaiModelsPage


@pytest.fixture()
def setup(tmp_path: Path):
    folder = tmp_path / "civitai"
    folder.mkdir()
    (folder / "alpha.safetensors").write_bytes(b"x")
    (folder / "alpha.png").write_bytes(demo.preview_pngs(1, 8)[0])
    (folder / "alpha.description.txt").write_text("First model", encoding="utf-8")
    (folder / "beta.safetensors").write_bytes(b"y")
    (tmp_path / "outside.png").write_bytes(demo.preview_pngs(1, 8)[0])
    engine = demo.make_engine(tmp_path)
    with runtime.using(engine):
        from modules import ui_extra_networks

        page = make_page_class()(str(folder))
        ui_extra_networks.register_page(page)
        app = FastAPI()
        uen.mount_extra_networks_routes(app, engine)
        with TestClient(app) as client:
            yield engine, client, page, tmp_path


def test_the_page_is_registered_with_a1111s_names(setup):
    engine, _client, page, tmp_path = setup
    from modules import ui_extra_networks

    assert ui_extra_networks.extra_pages == [page] and page.extra_networks_tabname == "civitai_models"
    assert os.path.abspath(tmp_path / "civitai") in ui_extra_networks.allowed_dirs
    assert ui_extra_networks.quote_js('a "b"') == '"a \\"b\\""'


def test_its_items_are_cards_and_previews_are_served_from_its_folder_only(setup):
    engine, client, page, tmp_path = setup
    r = client.get("/sd_extra_networks/cards", params={"page": "civitai_models"})
    assert r.status_code == 200, r.text
    body = r.json()
    cards = {c["name"]: c for c in body["cards"]}
    assert body["title"] == "Civitai Models" and set(cards) == {"alpha", "beta"}
    alpha = cards["alpha"]
    assert alpha["prompt"] == "<lora:alpha:0.8>" and alpha["action"] == "insert"
    assert alpha["tag"] == {"kinds": ["lora"], "names": ["alpha"]}
    assert alpha["description"] == "First model" and "first model" in alpha["search"]
    assert cards["beta"]["preview"] is None
    query = urllib.parse.parse_qs(urllib.parse.urlparse(alpha["preview"]).query)
    thumb = client.get("/sd_extra_networks/thumb", params={"filename": query["filename"][0]})
    assert thumb.status_code == 200 and thumb.content == (tmp_path / "civitai" / "alpha.png").read_bytes()
    outside = client.get("/sd_extra_networks/thumb", params={"filename": str(tmp_path / "outside.png")})
    assert outside.status_code in (403, 404)  # refused, as for any file no page lists


def test_refresh_reaches_the_page_and_a_failing_list_is_an_empty_page(setup):
    engine, client, page, _tmp = setup
    uen.ExtraNetworksService(engine).refresh()
    assert page.refreshed == 1

    def broken():
        raise RuntimeError("civitai is offline")

    page.list_items = broken
    r = client.get("/sd_extra_networks/cards", params={"page": "civitai_models"})
    assert r.status_code == 200 and r.json()["cards"] == []
    assert "civitai is offline" in r.json()["skipped"][0]["reason"]


def test_the_page_is_a_tab_whose_card_click_inserts_its_prompt(tmp_path: Path, browser):
    """In a real browser: the extension's tab lists its cards with the preview, and a click inserts the prompt."""
    from tests.browser_harness import open_page, require_playwright, serve, shot

    require_playwright()
    folder = tmp_path / "civitai"
    folder.mkdir()
    (folder / "alpha.safetensors").write_bytes(b"x")
    (folder / "alpha.png").write_bytes(demo.preview_pngs(1, 64)[0])
    (folder / "beta.safetensors").write_bytes(b"y")
    engine = demo.make_engine(tmp_path)
    with runtime.using(engine):
        from modules import ui_extra_networks

        ui_extra_networks.register_page(make_page_class()(str(folder)))
        app = demo.create_app(engine)
    with serve(app, "extension-networks") as url, open_page(browser, url, "#txt2img_prompt textarea") as pg:
        pg.get_by_role("tab", name="Civitai Models", exact=True).click()
        root = pg.locator("#txt2img_civitai_models .sd-en")
        root.locator(".sd-en-card").first.wait_for(timeout=10_000)
        assert root.locator(".sd-en-card").count() == 2
        assert root.locator(".sd-en-card img.sd-en-preview").count() == 1
        pg.wait_for_function("() => [...document.querySelectorAll('#txt2img_civitai_models img.sd-en-preview')]"
                             ".every(i => i.complete && i.naturalWidth > 0)", timeout=10_000)
        shot(pg, "extension_extra_networks_tab.png")
        root.locator(".sd-en-card").filter(has_text="alpha").first.click()
        assert pg.locator("#txt2img_prompt textarea").input_value() == "<lora:alpha:0.8>"
