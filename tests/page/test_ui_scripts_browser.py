"""The scripts UI, an extension's tab and the Extensions tab in a real browser (Playwright + system Chromium).

The pieces are mounted the way modules/ui.py mounts them (extension tabs made while the page is being built),
with the example extension and a broken one installed. Screenshots go to tests/artifacts/.
"""
from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests import browser_harness, tiny_models
from tests.browser_harness import open_page, require_playwright, serve
from modules.scripting.host import ScriptHost


def _host(engine):
    return ScriptHost.for_engine(engine)


REPO = Path(__file__).resolve().parents[2]

require_playwright()  # the whole module skips where Playwright or Chromium is missing
shot = partial(browser_harness.shot, full_page=True)  # this file keeps whole-page screenshots


def _build_app(engine):
    import gradio as gr
    from fastapi import FastAPI

    from modules.scripting import extensions
    from modules.page import extensions as ui_extensions
    from modules.page import scripts as ui_scripts

    with gr.Blocks(title="scripts test", analytics_enabled=False) as demo:
        with gr.Tabs():
            with gr.Tab("txt2img", elem_id="tab_txt2img"):
                with gr.Column():
                    scripts_ui = ui_scripts.create_scripts_ui(_host(engine), False)
                collect = gr.Button("Collect", elem_id="collect")
                collected = gr.Textbox(label="Collected", elem_id="collected")
                collect.click(lambda *values: json.dumps(scripts_ui.request_fields(list(values)), default=str),
                              inputs=scripts_ui.inputs, outputs=collected)
            for blocks, title, elem_id in ui_extensions.extension_tabs(_host(engine)):
                with gr.Tab(title, elem_id=f"tab_{elem_id}"):
                    blocks.render()
            with gr.Tab("Extensions", elem_id="tab_extensions"):
                ui_extensions.create_extensions_tab(_host(engine))
    app = FastAPI()
    extensions.add_routes(app, _host(engine).extensions)
    return gr.mount_gradio_app(app, demo, path="/", head=ui_extensions.extensions_head_html(_host(engine)))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import webui
    from modules.settings import cmd_args

    data = tmp_path_factory.mktemp("scripts-browser")
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=0), data / "models" / "Stable-diffusion" / "t.safetensors", "sd1")
    shutil.copytree(REPO / "extensions-examples" / "sd-webui-example", data / "extensions" / "sd-webui-example")
    (data / "extensions" / "broken" / "scripts").mkdir(parents=True)
    (data / "extensions" / "broken" / "scripts" / "boom.py").write_text("raise ImportError('missing_package')\n")
    engine = webui.build_engine(cmd_args.parse_args(["--data-dir", str(data)], environ={}))
    with serve(_build_app(engine), "scripts-browser") as url:
        yield SimpleNamespace(url=url, data=data, engine=engine)


@pytest.fixture()
def page(server, browser):
    with open_page(browser, server.url, "#script_list", viewport={"width": 1280, "height": 1100}) as pg:
        yield pg


def test_script_dropdown_shows_the_selected_script_and_values_become_request_fields(page):
    xyz_group = page.locator("#txt2img_script_xyz_plot").first
    matrix_group = page.locator("#txt2img_script_prompt_matrix").first
    assert not xyz_group.is_visible() and not matrix_group.is_visible()
    page.locator("#script_list input").click()
    page.get_by_role("option", name="X/Y/Z plot").click()
    xyz_group.wait_for(state="visible")
    assert not matrix_group.is_visible()
    page.locator("#script_txt2img_xyz_plot_x_values textarea, #script_txt2img_xyz_plot_x_values input").first.fill("1-3")
    page.locator("#txt2img_script_example_note").get_by_text("Example note").click()  # open the accordion
    page.locator("#script_txt2img_example_note_note textarea, #script_txt2img_example_note_note input").first.fill("hi")
    shot(page, "scripts_xyz_selected.png")
    page.locator("#collect").click()
    page.wait_for_function("() => document.querySelector('#collected textarea').value !== ''", timeout=10_000)
    fields = json.loads(page.locator("#collected textarea").input_value())
    assert fields["script_name"] == "X/Y/Z plot"
    assert fields["script_args"][:2] == ["Seed", "1-3"] and len(fields["script_args"]) == 18
    assert fields["alwayson_scripts"] == {"Example note": {"args": [False, "hi"]}}


def test_extension_assets_and_tab(page):
    assert page.evaluate("document.documentElement.dataset.exampleExtension") == "loaded"
    page.get_by_role("tab", name="Example").click()
    page.locator("#example_tab_text textarea").fill("abc")
    page.locator("#example_tab_button").click()
    page.wait_for_function("() => document.querySelector('#example_tab_reversed textarea').value === 'cba'",
                           timeout=10_000)
    intro = page.locator(".example-tab-intro").first
    assert intro.evaluate("e => getComputedStyle(e).borderLeftStyle") == "solid"  # style.css applied
    shot(page, "extension_example_tab.png")


def test_extensions_tab_lists_errors_and_saves_the_enabled_set(page, server):
    page.get_by_role("tab", name="Extensions").click()
    table = page.locator("#extensions_table table")
    table.wait_for()
    row = table.locator("tr[data-extension='broken']")
    assert "ImportError: missing_package" in row.inner_text() and "failed to load" in row.inner_text()
    assert "enabled" in table.locator("tr[data-extension='sd-webui-example']").inner_text()
    shot(page, "extensions_tab.png")
    page.locator("#extensions_enabled").get_by_label("broken").uncheck()
    page.locator("#extensions_apply").click()
    page.wait_for_function("() => document.querySelector('#extensions_message').innerText.includes('Saved')",
                           timeout=10_000)
    saved = json.loads((server.data / "config.json").read_text())
    assert saved["disabled_extensions"] == ["broken"]
    page.wait_for_function("() => document.querySelector(\"#extensions_table tr[data-extension='broken']\")"
                           ".innerText.includes('from the next start')", timeout=10_000)
