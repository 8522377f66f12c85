"""A1111's ``extras.run_pnginfo``: (an empty string, the infotext, an HTML table of every text item)."""
from __future__ import annotations

import html
from typing import Any

from modules.core import image_files


def run_pnginfo(image: Any) -> tuple[str, str | None, str]:
    if image is None:
        return "", "", ""
    geninfo, items = image_files.read_info_from_image(image)
    items = {**({"parameters": geninfo} if geninfo else {}), **{k: v for k, v in items.items() if k != "parameters"}}
    rows = "".join(f"<div><p><b>{html.escape(str(k))}</b></p><p>{html.escape(str(v))}</p></div>" for k, v in items.items())
    return "", geninfo, rows or "<div><p>Nothing found in the image.</p></div>"
