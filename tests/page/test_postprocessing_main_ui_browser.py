"""``postprocessing_enable_in_main_ui`` on the page (real browser): the named Extras operations show in the txt2img
tab as always-on scripts with their Extras controls, and their values become the request's ``alwayson_scripts``."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from tests import tiny_models
from tests.browser_harness import open_page, require_playwright, serve, shot
from tests.scripting.test_postprocessing_main_ui import EXTENSION

require_playwright()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import gradio as gr
    from fastapi import FastAPI

    import webui
    from modules.page import scripts as ui_scripts
    from modules.scripting.host import ScriptHost
    from modules.settings import cmd_args

    data = tmp_path_factory.mktemp("pp-main-ui-browser")
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=0), data / "models" / "Stable-diffusion" / "t.safetensors", "sd1")
    (data / "extensions" / "pp-invert" / "scripts").mkdir(parents=True)
    (data / "extensions" / "pp-invert" / "scripts" / "invert.py").write_text(EXTENSION, encoding="utf-8")
    (data / "config.json").write_text(json.dumps({"postprocessing_enable_in_main_ui": ["Invert", "Upscale"]}))
    engine = webui.build_engine(cmd_args.parse_args(["--data-dir", str(data)], environ={}))
    host = ScriptHost.for_engine(engine)
    with gr.Blocks(title="postprocessing in txt2img", analytics_enabled=False) as demo:
        with gr.Column():
            scripts_ui = ui_scripts.create_scripts_ui(host, False)
        collect = gr.Button("Collect", elem_id="collect")
        collected = gr.Textbox(label="Collected", elem_id="collected")
        collect.click(lambda *values: json.dumps(scripts_ui.request_fields(list(values)), default=str),
                      inputs=scripts_ui.inputs, outputs=collected)
    app = gr.mount_gradio_app(FastAPI(), demo, path="/")
    with serve(app, "pp-main-ui") as url:
        yield SimpleNamespace(url=url, engine=engine)


def test_the_operations_show_with_their_controls_and_become_request_fields(server, browser):
    with open_page(browser, server.url, "#collect", viewport={"width": 1280, "height": 1100}) as pg:
        for title in ("Invert", "Upscale"):
            pg.get_by_text(title, exact=True).first.click()  # open the accordion
        pg.get_by_label("Upscaler 1").first.wait_for(timeout=10_000)
        shot(pg, "postprocessing_main_ui.png", full_page=True)
        pg.get_by_label("Invert", exact=True).uncheck()
        pg.locator("#collect").click()
        pg.wait_for_function("() => document.querySelector('#collected textarea').value !== ''", timeout=10_000)
        fields = json.loads(pg.locator("#collected textarea").input_value())
    scripts = fields["alwayson_scripts"]
    assert scripts["Invert"]["args"] == [False, "plain"]
    assert scripts["Upscale"]["args"][:2] == [True, 0] and scripts["Upscale"]["args"][6] == "None"
