"""Extensions' own extra networks pages (A1111's ``ui_extra_networks.register_page``) in the card browser.

Each registered ``ExtraNetworksPage`` is one more tab after the built-in pages; its cards come from
``list_items()`` (A1111's item dicts) each time the browser asks, so a page that lists files sees new ones. A card
click inserts the item's ``prompt`` (and ``negative_prompt`` when the page allows it) like a LoRA card does.
Previews are served from the page's ``allowed_directories_for_previews()`` only."""
from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING

from modules.engine import file_access
from modules.scripting.a1111_ui_extra_networks import ExtraNetworksPage, extension_pages, unquote_js

if TYPE_CHECKING:
    from modules.engine.engine import Engine

log = logging.getLogger(__name__)

_TAG = re.compile(r"^<([^:<>]+):([^:<>]+)(?::[^<>]*)?>")


def find(engine: "Engine", name: str) -> ExtraNetworksPage | None:
    return next((p for p in extension_pages(engine) if p.extra_networks_tabname == name), None)


def tabs(engine: "Engine") -> list[tuple[str, str]]:
    """(page name, title) of each registered page, in registration order."""
    return [(p.extra_networks_tabname, str(p.title)) for p in extension_pages(engine)]


def _card(page: ExtraNetworksPage, item: dict, order: int) -> dict:
    name = str(item.get("name") or "")
    filename = str(item.get("filename") or name)
    relpath = page.search_terms_from_path(filename).lstrip("/") if item.get("filename") else name
    relpath = relpath or os.path.basename(filename)
    try:
        st = os.stat(filename)
        size, mtime = st.st_size, st.st_mtime
    except (OSError, ValueError):
        size, mtime = 0, 0.0
    terms = item.get("search_terms") or []
    if isinstance(terms, str):
        terms = [terms]
    description = str(item.get("description") or "")
    prompt = unquote_js(item.get("prompt"))
    match = _TAG.match(prompt)
    sort_keys = item.get("sort_keys") or {}
    return {
        "id": filename, "name": name, "alias": name, "relpath": relpath.replace("\\", "/"),
        "dir": relpath.rsplit("/", 1)[0] if "/" in relpath else "", "hidden": False,
        "search": " ".join([name, relpath, *map(str, terms), description[:500]]).lower(),
        "preview": item.get("preview") or None, "description": description, "family": "", "size": size,
        "mtime": mtime, "hash": item.get("shorthash"),
        "sort": {"default": order, "name": name.lower(), "date": sort_keys.get("date_modified", mtime), "size": size,
                 "path": relpath.lower()},
        "action": "insert", "prompt": prompt,
        "negative": unquote_js(item.get("negative_prompt")) if page.allow_negative_prompt else "",
        "allow_negative": bool(page.allow_negative_prompt),
        "tag": {"kinds": [match.group(1)], "names": [match.group(2)]} if match else None,
    }


def payload(engine: "Engine", page: ExtraNetworksPage) -> dict:
    """The browser's JSON for ``page``: its cards (an item that cannot be shown is logged and left out)."""
    cards, skipped = [], []
    try:
        items = list(page.list_items() or [])
    except Exception as exc:  # noqa: BLE001 - an extension's failure shows as an empty page, not a broken tab
        log.exception("Extra networks page %r: list_items() failed", page.title)
        items, skipped = [], [{"name": str(page.title), "filename": "", "reason": f"list_items() failed: {exc}"}]
    for order, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        try:
            cards.append(_card(page, item, order))
        except Exception as exc:  # noqa: BLE001
            skipped.append({"name": str(item.get("name")), "filename": str(item.get("filename") or ""),
                            "reason": f"{type(exc).__name__}: {exc}"})
    return {"page": page.extra_networks_tabname, "title": str(page.title), "fields": [], "cards": cards,
            "skipped": skipped}


def refresh(engine: "Engine") -> None:
    for page in extension_pages(engine):
        try:
            page.refresh()
        except Exception:  # noqa: BLE001
            log.exception("Extra networks page %r: refresh() failed", page.title)


def allowed_preview(engine: "Engine", real: str) -> bool:
    """Whether ``real`` (a resolved image path) lies in a registered page's preview folders."""
    for page in extension_pages(engine):
        try:
            dirs = page.allowed_directories_for_previews() or []
        except Exception:  # noqa: BLE001
            continue
        if any(file_access.is_within(real, os.path.realpath(d)) for d in dirs):
            return True
    return False
