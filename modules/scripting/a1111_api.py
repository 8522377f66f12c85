"""A1111's ``api.api`` image helpers: ``decode_base64_to_image`` (a data URL or bare base64; a bad one is an HTTP
400 for the extension's route, as in A1111) and ``encode_pil_to_base64`` (PNG with the infotext, base64 bytes)."""
from __future__ import annotations

import base64
import io
from typing import Any

from modules.core import image_files


def decode_base64_to_image(encoding: str) -> Any:
    try:
        return image_files.decode_base64_image(encoding)
    except Exception as e:  # noqa: BLE001
        from fastapi import HTTPException

        raise HTTPException(status_code=400, detail=f"Invalid encoded image: {e}") from e


def encode_pil_to_base64(image: Any) -> bytes:
    """PNG bytes in base64 (A1111 returns bytes; ``parameters`` text kept)."""
    from PIL import PngImagePlugin

    with io.BytesIO() as out:
        info = PngImagePlugin.PngInfo()
        for key, value in (getattr(image, "info", None) or {}).items():
            if isinstance(key, str) and isinstance(value, str):
                info.add_text(key, value)
        image.save(out, format="PNG", pnginfo=info)
        return base64.b64encode(out.getvalue())


def verify_url(url: str) -> bool:
    """A1111 refuses local addresses for image URLs; extensions call it before fetching."""
    from urllib.parse import urlparse

    host = urlparse(url).hostname or ""
    return not (host in ("localhost", "") or host.startswith("127.") or host == "::1")
