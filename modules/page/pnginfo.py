"""The PNG Info tab: drop an image, read its generation parameters, send them to txt2img, img2img or extras.

:func:`create_pnginfo_tab` builds the tab's content inside an open ``gr.Tab("PNG Info")``; the page wires the
send buttons with :func:`modules.ui_paste.connect_paste` (the tab knows nothing of the other tabs).
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from modules.page.paste import ImageInfoError, read_generation_parameters

if TYPE_CHECKING:
    from modules.engine.engine import Engine

__all__ = ["PngInfoTab", "create_pnginfo_tab", "pnginfo_html", "run_pnginfo"]

NOTHING_FOUND = "Nothing found in the image."
_MAX_ITEM_CHARS = 20_000  # a huge text chunk (an embedded workflow) stays readable and the page stays light

_CSS = """
.pnginfo-parameters { white-space: pre-wrap; word-break: break-word; font-family: inherit; margin: 0 0 1em 0; }
.pnginfo-items { border-collapse: collapse; width: 100%; }
.pnginfo-items th, .pnginfo-items td { text-align: left; vertical-align: top; padding: 4px 8px;
  border-top: 1px solid var(--border-color-primary); }
.pnginfo-items th { width: 1%; white-space: nowrap; }
.pnginfo-items td { white-space: pre-wrap; word-break: break-word; }
.pnginfo-error { color: var(--error-text-color); }
"""


@dataclass
class PngInfoTab:
    image: gr.Image
    infotext: gr.Textbox  # hidden; the parameters text, the source for connect_paste
    html: gr.HTML
    send_to_txt2img: gr.Button
    send_to_img2img: gr.Button
    send_to_inpaint: gr.Button
    send_to_extras: gr.Button

    # short names, as the page refers to them
    @property
    def send_txt2img(self) -> gr.Button:
        return self.send_to_txt2img

    @property
    def send_img2img(self) -> gr.Button:
        return self.send_to_img2img

    @property
    def send_inpaint(self) -> gr.Button:
        return self.send_to_inpaint

    @property
    def send_extras(self) -> gr.Button:
        return self.send_to_extras


def _shorten(text: str) -> str:
    if len(text) <= _MAX_ITEM_CHARS:
        return text
    return text[:_MAX_ITEM_CHARS] + f"… ({len(text) - _MAX_ITEM_CHARS} more characters)"


def pnginfo_html(infotext: str, items: dict[str, Any], error: str | None = None) -> str:
    """The tab's HTML: the parameters text, then the other info items as a table; or the error message."""
    if error is not None:
        return f"<div class='pnginfo-error'><p>{html.escape(error)}</p></div>"
    parts = []
    if infotext:
        parts.append("<h4>parameters</h4>"
                     f"<pre class='pnginfo-parameters'>{html.escape(infotext)}</pre>")
    if items:
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_shorten(str(v)))}</td></tr>"
                       for k, v in items.items())
        parts.append(f"<table class='pnginfo-items'>{rows}</table>")
    if not parts:
        parts.append(f"<p>{NOTHING_FOUND}</p>")
    return "<div class='pnginfo'>" + "".join(parts) + "</div>"


def run_pnginfo(image: Any) -> tuple[str, str]:
    """``(parameters text, html)`` for an image payload; a bad image gives one readable message in the HTML."""
    if image is None:
        return "", ""
    try:
        infotext, items = read_generation_parameters(image)
    except ImageInfoError as exc:
        return "", pnginfo_html("", {}, f"Cannot read this image: {exc}")
    except Exception as exc:  # the page must keep working whatever the file holds
        return "", pnginfo_html("", {}, f"Cannot read this image: {type(exc).__name__}: {exc}")
    return infotext, pnginfo_html(infotext, items)


def create_pnginfo_tab(engine: Engine) -> PngInfoTab:
    """The tab's content, built inside the caller's open ``gr.Tab``. ``engine`` is unused today (the wiring to
    the other tabs is the page's), kept so that the tab can grow settings-dependent behaviour."""
    del engine
    with gr.Row(equal_height=False):
        with gr.Column(variant="panel"):
            # type/image_mode: the uploaded file itself, untouched, so that its text chunks and EXIF are there;
            # the listener takes it unprocessed, so an unreadable file is our message, not an error dialog.
            image = gr.Image(label="Source", sources=["upload", "clipboard"], type="filepath", image_mode=None,
                             interactive=True, elem_id="pnginfo_image", format="png")
        with gr.Column(variant="panel"):
            info_html = gr.HTML(elem_id="pnginfo_generation_info", css_template=_CSS)
            infotext = gr.Textbox(visible=False, elem_id="pnginfo_generation_info_text")
            with gr.Row(elem_id="pnginfo_send_buttons"):
                buttons = {
                    name: gr.Button(f"Send to {name}", elem_id=f"pnginfo_send_to_{name}", size="sm", min_width=100)
                    for name in ("txt2img", "img2img", "inpaint", "extras")
                }
    image.change(run_pnginfo, inputs=[image], outputs=[infotext, info_html], preprocess=False,
                 show_progress="hidden", api_visibility="private")
    return PngInfoTab(image=image, infotext=infotext, html=info_html, send_to_txt2img=buttons["txt2img"],
                      send_to_img2img=buttons["img2img"], send_to_inpaint=buttons["inpaint"],
                      send_to_extras=buttons["extras"])
