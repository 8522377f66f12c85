"""What the Playwright browser tests share: skip rules, a served app, the system Chromium, a checked page.

Needs `pip install playwright` and Debian's chromium (/usr/bin/chromium, or $SD_WEBUI_CHROMIUM); never
`playwright install`. Screenshots go to tests/artifacts/.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

CHROMIUM = os.environ.get("SD_WEBUI_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def require_playwright() -> ModuleType:
    """Return playwright.sync_api, or skip the calling test module when it or Chromium is missing.

    Call at module level: the skips are module-level so the whole file reports one reason.
    """
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
    return sync_api


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(app: Any, name: str, start_timeout: float = 60.0) -> Iterator[str]:
    """Run ``app`` with uvicorn in a daemon thread on a free port; yield its base URL, stop it on exit.

    ``name`` labels the thread and the failure message, so a test log says which server did not start.
    """
    import uvicorn

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True, name=f"{name}-test-server")
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not srv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            srv.should_exit = True
            pytest.fail(f"the {name} test server did not start within {start_timeout:g}s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        srv.should_exit = True
        thread.join(10)


@contextmanager
def launch_chromium(sync_api: ModuleType) -> Iterator[Any]:
    """The system Chromium, headless; sandboxing is off because tests may run as root in a container."""
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def open_page(browser: Any, url: str, ready_selector: str,
              viewport: dict[str, int] | None = None) -> Iterator[Any]:
    """A fresh context and page at ``url``, ready once ``ready_selector`` shows up.

    On a clean exit it asserts the page raised no JavaScript errors: an uncaught error in the page's
    scripts fails the test even when every assertion in it passed.
    """
    context = browser.new_context(viewport=viewport or {"width": 1280, "height": 1000})
    errors: list[str] = []
    try:
        pg = context.new_page()
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(url)
        pg.wait_for_selector(ready_selector)
        yield pg
    finally:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


def shot(pg: Any, name: str, full_page: bool = False) -> None:
    """Save a screenshot as tests/artifacts/<name> (look at it: the assertions cannot see layout)."""
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / name), full_page=full_page)


def set_number(pg: Any, elem_id: str, value: Any) -> None:
    """Type a value into a Gradio number box and leave it, so its change event fires."""
    box = pg.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Tab")


def gallery_images(pg: Any, tab: str) -> list[Any]:
    """The pictures ``#<tab>_gallery`` shows, fetched from the server as PIL images."""
    import io

    from PIL import Image

    return [Image.open(io.BytesIO(pg.request.get(img.get_attribute("src")).body()))
            for img in pg.locator(f"#{tab}_gallery img").all()]


def wait_done(pg: Any, tab: str, timeout: float = 90_000) -> None:
    """Wait until the ``tab`` (txt2img/img2img) run ended: its log shows the time taken (an error fails the test)
    and the progress box is gone."""
    log = pg.locator(f"#html_log_{tab}")
    log.filter(has_text="Time taken").or_(log.filter(has_text="Error")).wait_for(timeout=timeout)
    assert "Error" not in log.inner_text(), log.inner_text()
    pg.wait_for_function(f"() => !document.querySelector('#{tab}_results .sd-progress-box')", timeout=timeout)


def draw_stroke(pg: Any, selector: str, points: list[tuple[float, float]]) -> None:
    """Draw one stroke on the canvas of the image editor ``selector`` through ``points`` (fractions of its size)."""
    box = pg.locator(f"{selector} canvas").first.bounding_box()
    # over the canvas first, as a hand would: the editor starts a stroke where it last saw the pointer
    pg.mouse.move(box["x"] + box["width"] * points[0][0], box["y"] + box["height"] * points[0][1], steps=10)
    pg.mouse.down()
    for fx, fy in points[1:]:
        pg.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy, steps=8)
    pg.mouse.up()


def wait_image_shown(pg: Any, selector: str, timeout: float = 30_000) -> None:
    """Wait until the image component or image editor ``selector`` shows a picture (after an upload or a "Send
    to"): its empty-state prompt is gone and a canvas (editor) or an img (image) is visible. A fixed sleep was
    not enough on a loaded machine; the editor only takes strokes once its background is in."""
    pg.wait_for_function(
        """sel => {
            const root = document.querySelector(sel);
            const shown = e => !!e && e.offsetParent !== null;
            if (!root || Array.from(root.querySelectorAll('.empty')).some(shown)) return false;
            return shown(root.querySelector('canvas')) || shown(root.querySelector('img'));
        }""", arg=selector, timeout=timeout)
    # two animation frames: the editor draws its background on the next frame after it has it
    pg.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def upload_image(pg: Any, selector: str, path: Path | str) -> None:
    """Upload ``path`` into the image component or image editor ``selector`` and wait until it shows it."""
    pg.locator(f"{selector} input[type=file]").first.set_input_files(str(path))
    wait_image_shown(pg, selector)


def write_demo_checkpoints(ckpt_dir: Path) -> None:
    """The shipped demo model as ``demo.safetensors`` and a copy whose UNet weights are scaled by 1.05
    (``demo-other.safetensors``): two checkpoints that load and give different, still sensible pictures."""
    import shutil

    from modules.models import builtin_model, merge
    from modules.models.safe_load import load_state_dict, read_safetensors_metadata

    ckpt_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(builtin_model.DEMO_PATH, ckpt_dir / "demo.safetensors")
    state = load_state_dict(builtin_model.DEMO_PATH)
    other = {k: v * 1.05 if k.startswith("model.diffusion_model.") and v.is_floating_point() else v
             for k, v in state.items()}
    merge.write_checkpoint(other, ckpt_dir / "demo-other.safetensors", read_safetensors_metadata(builtin_model.DEMO_PATH))
