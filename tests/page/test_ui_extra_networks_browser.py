"""Extra Networks browser in a real browser (Playwright + the system Chromium), on the standalone demo app.

Needs `pip install playwright` and `apt-get install chromium` (/usr/bin/chromium); never `playwright install`.
Screenshots go to tests/artifacts/.
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from tests.browser_harness import open_page, require_playwright, serve, shot
from tools import demo_extra_networks as demo

require_playwright()  # the whole module skips where Playwright or Chromium is missing


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("extra-networks-browser")
    demo.write_sample_data(data, 24)
    engine = demo.make_engine(data)
    demo.check_embeddings_without_model(engine, 768)
    with serve(demo.create_app(engine), "extra-networks") as url:
        yield SimpleNamespace(url=url, data=data, engine=engine)


@pytest.fixture()
def page(server, browser):
    with open_page(browser, server.url, "#txt2img_prompt textarea") as pg:
        yield pg


def open_tab(pg, title: str, elem: str):
    pg.get_by_role("tab", name=title, exact=True).click()
    root = pg.locator(f"#txt2img_{elem} .sd-en")
    root.locator(".sd-en-count").filter(has_text="item").or_(root.locator(".sd-en-count").filter(has_text=" of ")) \
        .wait_for(timeout=10_000)
    return root


def prompt_value(pg, elem_id: str = "txt2img_prompt") -> str:
    return pg.locator(f"#{elem_id} textarea").input_value()


def card_names(root) -> list[str]:
    return root.locator(".sd-en-card .sd-en-name, .sd-en-row .sd-en-name").all_inner_texts()


def echo(pg) -> str:
    """Send the prompts through a Gradio event and return what Python received (callers expect a new value)."""
    before = pg.locator("#demo_echo_out textarea").input_value()
    pg.locator("#demo_echo").click()
    pg.wait_for_function("b => document.querySelector('#demo_echo_out textarea').value !== b", arg=before,
                         timeout=10_000)
    return pg.locator("#demo_echo_out textarea").input_value()


def test_lora_search_click_inserts_and_click_again_removes(page, server):
    root = open_tab(page, "Lora", "lora")
    listed = server.engine.networks.loras.items()
    visible = [e for e in listed if not e.hidden]
    assert root.locator(".sd-en-count").inner_text() == f"{len(visible)} of {len(listed)}"
    assert root.locator(".sd-en-card").count() == len(visible)
    assert root.locator(".sd-en-card img.sd-en-preview").count() > 0
    shot(page, "lora_tab.png")

    root.locator(".sd-en-search").fill("00003")
    page.wait_for_function("() => document.querySelector('#txt2img_lora .sd-en-count').textContent.startsWith('1 of')")
    assert card_names(root) == ["lora_00003"]
    shot(page, "lora_search.png")

    root.locator(".sd-en-card").first.click()
    assert prompt_value(page) == "<lora:lora-alias-00003:1>"
    assert echo(page) == "<lora:lora-alias-00003:1> || "  # Gradio saw the edit
    root.locator(".sd-en-card").first.click()
    assert prompt_value(page) == ""
    assert echo(page) == " || "


def test_insert_keeps_user_text_and_removes_any_multiplier(page):
    ta = page.locator("#txt2img_prompt textarea")
    ta.fill("a cat, <lora:lora-alias-00005:0.35>")
    root = open_tab(page, "Lora", "lora")
    root.locator(".sd-en-search").fill("lora_00005")
    page.wait_for_function("() => document.querySelector('#txt2img_lora .sd-en-count').textContent.startsWith('1 of')")
    root.locator(".sd-en-card").first.click()  # already there (other multiplier): taken out
    assert prompt_value(page) == "a cat,"
    root.locator(".sd-en-card").first.click()
    assert prompt_value(page) == "a cat, <lora:lora-alias-00005:1>"


def test_edit_dialog_saves_preferred_weight_and_next_click_uses_it(page, server):
    root = open_tab(page, "Lora", "lora")
    root.locator(".sd-en-search").fill("lora_00004")
    page.wait_for_function("() => document.querySelector('#txt2img_lora .sd-en-count').textContent.startsWith('1 of')")
    card = root.locator(".sd-en-card").first
    card.hover()
    card.locator(".sd-en-edit").click()
    dialog = page.locator("dialog.sd-en-dialog")
    dialog.wait_for()
    weight = dialog.locator('[data-field="preferred weight"]')
    page.wait_for_function("() => !document.querySelector('dialog.sd-en-dialog .sd-en-save').disabled")
    assert weight.input_value() == "0"

    weight.fill("5")  # out of range: the server names the field and nothing is written
    dialog.locator(".sd-en-save").click()
    error = dialog.locator(".sd-en-dialog-error")
    error.filter(has_text="preferred weight").wait_for()
    assert "from 0 to 2" in error.inner_text()
    sidecar = server.data / "models" / "Lora" / "concepts" / "lora_00004.json"
    assert not sidecar.exists()

    weight.fill("0.7")
    dialog.locator('[data-field="activation text"]').fill("in red")
    dialog.locator('[data-field="notes"]').fill("Saved from the browser test")
    shot(page, "lora_edit_dialog.png")
    dialog.locator(".sd-en-save").click()
    dialog.wait_for(state="detached")
    saved = json.loads(sidecar.read_text(encoding="utf-8"))
    assert saved["preferred weight"] == 0.7 and saved["activation text"] == "in red"
    assert saved["notes"] == "Saved from the browser test" and saved["sd version"] == "SD1"

    root.locator(".sd-en-card").first.click()
    assert prompt_value(page) == "<lora:lora-alias-00004:0.7> in red"
    root.locator(".sd-en-card").first.click()
    assert prompt_value(page) == ""


def test_textual_inversion_goes_to_the_prompt_edited_last_and_skipped_are_listed(page):
    root = open_tab(page, "Textual Inversion", "textual_inversion")
    assert sorted(card_names(root)) == ["easynegative", "style-word"]
    skipped = root.locator(".sd-en-skipped-item")
    assert skipped.count() == 1
    assert "sd2-only" in skipped.inner_text() and "width mismatch" in skipped.inner_text()
    shot(page, "textual_inversion_tab.png")

    page.locator("#txt2img_neg_prompt textarea").fill("lowres")
    page.locator("#txt2img_neg_prompt textarea").focus()
    root.locator(".sd-en-card", has_text="easynegative").click()
    assert prompt_value(page, "txt2img_neg_prompt") == "lowres easynegative"
    assert prompt_value(page) == ""
    page.locator("#txt2img_prompt textarea").focus()
    root.locator(".sd-en-card", has_text="style-word").click()
    assert prompt_value(page) == "style-word"
    root.locator(".sd-en-card", has_text="style-word").click()
    assert prompt_value(page) == ""
    page.locator("#txt2img_neg_prompt textarea").focus()
    root.locator(".sd-en-card", has_text="easynegative").click()
    assert prompt_value(page, "txt2img_neg_prompt") == "lowres"


def test_hypernetwork_card_inserts_tag(page):
    root = open_tab(page, "Hypernetworks", "hypernetworks")
    root.locator(".sd-en-card", has_text="anime_hn").click()
    assert prompt_value(page) == "<hypernet:anime_hn:1>"


def test_list_view_sort_folders_and_hidden(page):
    root = open_tab(page, "Lora", "lora")
    root.locator(".sd-en-layout").click()
    assert root.locator(".sd-en-row").count() > 0 and root.locator(".sd-en-card").count() == 0
    root.locator(".sd-en-sort").select_option("name")
    names = card_names(root)
    assert names == sorted(names, key=str.lower)
    root.locator(".sd-en-order").click()
    names = card_names(root)
    assert names == sorted(names, key=str.lower, reverse=True)

    root.locator('.sd-en-dir[data-dir="Lora/characters"]').click()
    paths = root.locator(".sd-en-row .sd-en-path").all_inner_texts()
    assert paths and all(p.startswith("Lora/characters/") for p in paths)
    shot(page, "lora_list_view_folder.png")
    root.locator('.sd-en-dir[data-dir="Lora/characters"]').click()  # again: filter off

    assert "hidden_style" not in card_names(root)
    root.locator(".sd-en-search").fill("hid")  # under 4 characters: hidden folders stay hidden
    page.wait_for_timeout(100)
    assert "hidden_style" not in card_names(root)
    root.locator(".sd-en-search").fill("hidden")
    page.wait_for_function("() => document.querySelector('#txt2img_lora .sd-en-count').textContent.startsWith('1 of')")
    assert card_names(root) == ["hidden_style"]


def test_tree_view_filters_by_folder(page, server):
    options = server.engine.options
    options.set("extra_networks_tree_view_style", "Tree")
    try:
        root = open_tab(page, "Lora", "lora")
        assert root.locator(".sd-en-treelist").count() > 0
        row = root.locator('.sd-en-treerow[data-dir="Lora/styles"]')
        row.locator(".sd-en-dirname").click()
        names = card_names(root)
        paths = page.evaluate("() => window.sdExtraNetworks.pages().find(p => p.cfg.page === 'lora')"
                              ".view.map(c => c.relpath)")
        assert names and len(paths) == len(names)
        assert all(p.startswith("Lora/styles/") for p in paths)  # sub-folders included
        assert any(p.startswith("Lora/styles/painting/") for p in paths)
        shot(page, "lora_tree_view.png")
        row.locator(".sd-en-twisty").click()  # collapse: the painting folder row is hidden
        assert not root.locator('.sd-en-treerow[data-dir="Lora/styles/painting"]').is_visible()
    finally:
        options.set("extra_networks_tree_view_style", "Dirs")


def test_lora_cards_for_other_model_families_are_hidden(page):
    root = open_tab(page, "Lora", "lora")
    families = page.evaluate("""() => {
        const p = window.sdExtraNetworks.pages().find(p => p.cfg.page === 'lora');
        const seen = () => [...new Set(p.view.map(c => c.family))].sort();
        const out = [seen()];
        p.data.model_family = 'SDXL'; p.apply(); out.push(seen());
        p.opts.lora_show_all = true; p.apply(); out.push(seen());
        p.opts.lora_show_all = false; p.data.model_family = null; p.apply();
        return out;
    }""")
    assert families == [["SD1", "SDXL"], ["SDXL"], ["SD1", "SDXL"]]


def test_checkpoint_card_reports_load_error(page):
    root = open_tab(page, "Checkpoints", "checkpoints")
    assert sorted(card_names(root)) == ["other-model", "placeholder-model"]
    root.locator(".sd-en-card", has_text="placeholder-model").click()
    status = root.locator(".sd-en-status.sd-en-error")
    status.wait_for(timeout=30_000)
    assert status.inner_text().startswith("Could not load placeholder-model.safetensors:")
    shot(page, "checkpoint_error.png")


def test_refresh_picks_up_a_new_file(page, server):
    root = open_tab(page, "Lora", "lora")
    (server.data / "models" / "Lora" / "brand_new.safetensors").write_bytes(demo.tiny_lora(None))
    root.locator(".sd-en-search").fill("brand_new")
    page.wait_for_timeout(100)
    assert card_names(root) == []
    root.locator(".sd-en-refresh").click()
    root.locator(".sd-en-card", has_text="brand_new").wait_for(timeout=10_000)
    assert root.locator(".sd-en-status").inner_text().startswith("Refreshed:")


def test_prompt_text_removal_rules(page):
    """removeFromPrompt/addToPrompt of extraNetworks.js on edge cases (run in the page)."""
    root = open_tab(page, "Lora", "lora")
    assert root.locator(".sd-en-card").count() > 0  # the script is loaded
    cases = page.evaluate("""() => {
        const en = window.sdExtraNetworks;
        const lora = {kinds: ["lora", "lyco"], names: ["x", "x-alias"]};
        return [
            en.removeFromPrompt("a <lora:x:0.5> b", "<lora:x:1>", lora, " "),
            en.removeFromPrompt("a <lyco:x-alias:0.5:te=1> b", "<lora:x:1>", lora, " "),
            en.removeFromPrompt("<lora:x:1> trigger, b", "<lora:x:1> trigger", lora, " "),
            en.removeFromPrompt("a <lora:xy:1>", "<lora:x:1>", lora, " "),
            en.removeFromPrompt("a word", "wor", null, " "),
            en.removeFromPrompt("a (word:1.2) b", "word", null, " "),
            en.removeFromPrompt("word, b word", "word", null, " "),
            en.removeFromPrompt("a.b c", "a.b", null, " "),
            en.addToPrompt("", "t", " "),
            en.addToPrompt("a", "t", " "),
            en.addToPrompt("a ", "t", " "),
            en.addToPrompt("a", "t", ", "),
        ];
    }""")
    assert cases == [
        "a b",
        "a b",
        ", b",
        "a <lora:xy:1>",  # another network whose name starts the same is left alone
        "a word",  # not a whole word
        "a (:1.2) b",
        ", b",
        "c",  # the separator in front of what is left goes too
        "t",
        "a t",
        "a t",
        "a, t",
    ]


def test_long_lists_render_in_chunks_as_they_scroll(page, server):
    folder = server.data / "models" / "Lora" / "many"
    demo.write_loras(folder, 300, previews=False, prefix="many")
    root = open_tab(page, "Lora", "lora")
    root.locator(".sd-en-refresh").click()
    root.locator(".sd-en-status").filter(has_text="Refreshed").wait_for(timeout=10_000)
    root.locator(".sd-en-search").fill("lora/many/")
    page.wait_for_function("() => document.querySelector('#txt2img_lora .sd-en-count').textContent === '300 of "
                           f"{len(server.engine.networks.loras.items())}'")
    assert root.locator(".sd-en-card").count() == 120
    for _ in range(10):
        root.locator(".sd-en-scroller").evaluate("s => { s.scrollTop = s.scrollHeight; }")
        page.wait_for_timeout(150)
        if root.locator(".sd-en-card").count() == 300:
            break
    assert root.locator(".sd-en-card").count() == 300
    shot(page, "lora_scrolled.png")
