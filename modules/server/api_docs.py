"""``/docs``: Swagger UI served from the ``swagger-ui-bundle`` package, so the API docs work with no network.

FastAPI's default page loads Swagger UI from a CDN, which leaves a blank page on an offline machine (and asks
a third party on every visit). The assets ship in the wheel; this serves them under ``/docs/assets``.
"""
from __future__ import annotations

from typing import Any

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
SCHEMA_URL = "/docs/openapi.json"


def mount_api_docs(app: Any) -> None:
    """Add ``/docs``, its OAuth2 redirect and the Swagger UI assets to ``app`` (made with ``docs_url=None``)."""
    import swagger_ui_bundle
    from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from fastapi.staticfiles import StaticFiles

    app.mount(ASSETS_URL, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger_ui_assets")

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui() -> Any:
        return get_swagger_ui_html(
            openapi_url=SCHEMA_URL, title=f"{app.title} - Swagger UI", oauth2_redirect_url=OAUTH2_REDIRECT_URL,
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png")

    @app.get(SCHEMA_URL, include_in_schema=False)
    def schema_for_swagger_ui() -> Any:
        return {**app.openapi(), "openapi": "3.0.3"}

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    def swagger_ui_redirect() -> Any:
        return get_swagger_ui_oauth2_redirect_html()
