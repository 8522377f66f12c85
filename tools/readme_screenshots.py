"""Take the README's screenshots from the real app: `python tools/readme_screenshots.py [--out docs/screenshots]`.

Starts webui's app (the same create_app as ./webui.sh) on a free port with the repository's models folder
(the demo model and demo adapters) and a temporary data folder, drives Debian's chromium with Playwright
through each main tab, and writes one PNG per tab.
"""
from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROMPT = "a red circle on a blue background"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(data_dir: Path):
    import shutil

    import uvicorn

    import webui
    from modules.settings import cmd_args

    # The example extension, as a user would install it, so the Extensions tab has something to show.
    shutil.copytree(REPO / "extensions-examples" / "sd-webui-example", data_dir / "extensions" / "sd-webui-example")
    args = cmd_args.parse_args(["--data-dir", str(data_dir), "--models-dir", str(REPO / "models")], environ={})
    engine = webui.build_engine(args)
    engine.ensure_model()
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(webui.create_app(engine, args), host="127.0.0.1", port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}/"


def take(url: str, out: Path, chromium: str, data_dir: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox"])
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(url)
        page.wait_for_selector("#txt2img_prompt textarea")

        def shot(name: str) -> None:
            path = out / f"{name}.png"
            page.screenshot(path=str(path))
            written.append(path)

        page.locator("#txt2img_prompt textarea").fill(PROMPT)
        box = page.locator("#txt2img_batch_size input[type=number]")
        box.fill("4")
        box.press("Tab")
        page.locator("#txt2img_generate").click()
        page.wait_for_function("() => document.querySelectorAll('#txt2img_gallery img').length >= 4", timeout=300_000)
        page.locator("#html_info_txt2img .sd-infotext").wait_for()
        time.sleep(0.5)
        shot("txt2img")

        page.get_by_role("tab", name="Lora", exact=True).first.click()
        page.locator("#txt2img_lora .sd-en-count").wait_for(timeout=20_000)
        time.sleep(0.5)
        shot("extra_networks_lora")
        page.get_by_role("tab", name="Generation", exact=True).first.click()

        page.locator("#txt2img_send_to_img2img").click()
        page.locator("#img2img_prompt textarea").wait_for(state="visible")
        page.wait_for_function("p => document.querySelector('#img2img_prompt textarea').value === p", arg=PROMPT,
                               timeout=20_000)
        time.sleep(0.5)
        shot("img2img")

        page.get_by_role("tab", name="txt2img", exact=True).first.click()
        page.locator("#txt2img_send_to_inpaint").click()
        page.locator("#img2img_inpaint_controls").first.wait_for(state="visible", timeout=20_000)
        page.wait_for_function("() => document.querySelector('#img2img_prompt textarea').value.length > 0",
                               timeout=20_000)
        page.wait_for_function("() => !document.querySelector('#img2maskimg').innerText.includes('processing')",
                               timeout=60_000)
        time.sleep(2.5)  # the editor draws the picture after the event
        shot("img2img_inpaint")

        page.locator("#soft_inpainting_enabled input").check()
        page.locator("#mask_blend_power").wait_for(state="visible")
        page.locator("#img2img_mask_blur").scroll_into_view_if_needed()
        page.mouse.wheel(0, 250)
        time.sleep(0.5)
        shot("img2img_soft_inpainting")
        page.locator("#soft_inpainting_enabled input").uncheck()

        page.get_by_role("tab", name="txt2img", exact=True).first.click()
        page.locator("#txt2img_enable input").check()
        page.locator("#txt2img_checkpoint input").first.click()
        page.get_by_role("option").locator("visible=true").first.click()
        page.locator("#txt2img_seed").scroll_into_view_if_needed()
        time.sleep(0.5)
        shot("txt2img_refiner")
        page.locator("#txt2img_enable input").uncheck()
        page.mouse.wheel(0, -2000)

        page.locator("#txt2img_send_to_extras").click()
        page.locator("#extras_generate").wait_for(state="visible")
        page.locator("#extras_generate").click()
        page.locator("#extras_gallery img").first.wait_for(timeout=60_000)
        time.sleep(0.5)
        shot("extras")

        for title, name, marker in (("PNG Info", "pnginfo", "#pnginfo_image"), ("Checkpoint Merger", "checkpoint_merger", "#modelmerger_merge"),
                                    ("Settings", "settings", "#settings_submit"),
                                    ("Extensions", "extensions", "#tab_extensions")):
            page.get_by_role("tab", name=title, exact=True).first.click()
            page.locator(marker).first.wait_for(state="visible")
            if name == "pnginfo":
                generated = sorted((data_dir / "outputs").rglob("*.png"))
                page.locator("#pnginfo_image input[type=file]").set_input_files(str(generated[0]))
                page.locator("#pnginfo_generation_info").filter(has_text="Steps:").wait_for(timeout=20_000)
            time.sleep(0.5)
            shot(name)
        browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    ns = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sd-screenshots-") as data:
        server, url = start_app(Path(data))
        try:
            for path in take(url, ns.out, ns.chromium, Path(data)):
                print(path)
        finally:
            server.should_exit = True
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
