"""What A1111's ``modules.ui_extra_networks`` holds for extensions: the ``ExtraNetworksPage`` base class their own
card pages subclass, ``register_page`` (usually from an ``on_before_ui`` callback), ``quote_js`` and the
per-Engine ``extra_pages`` / ``allowed_dirs``.

The page door shows every registered page as one more tab of the extra networks browser, beside the built-in
ones (``modules/page/extension_networks.py`` turns each ``list_items()`` item into a card); a card's click inserts
its ``prompt`` (A1111's items carry it as a JS string literal made by ``quote_js``). Previews are served only from
the page's ``allowed_directories_for_previews()``."""
from __future__ import annotations

import json
import os
import urllib.parse
from typing import TYPE_CHECKING, Any, Callable, Iterable

from modules.scripting import runtime

if TYPE_CHECKING:
    from modules.engine.engine import Engine

PREVIEW_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "gif")


def quote_js(s: str) -> str:
    """``s`` as a double-quoted JavaScript string literal (A1111's helper for card prompts)."""
    return json.dumps(str(s), ensure_ascii=False)


def unquote_js(s: Any) -> str:
    """The text of a ``quote_js`` literal (a plain string is taken as it is)."""
    if isinstance(s, str) and len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        try:
            return str(json.loads(s if s[0] == '"' else '"' + s[1:-1].replace('"', '\\"') + '"'))
        except ValueError:
            return s[1:-1]
    return "" if s is None else str(s)


class ExtraNetworksPage:
    """A page of cards: subclasses set the title in ``__init__``, and define ``list_items()`` (dicts with
    ``name``, ``filename``, ``preview``, ``description``, ``search_terms``, ``prompt``, ``sort_keys``...),
    ``refresh()`` and ``allowed_directories_for_previews()``."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.name = title.lower()
        self.extra_networks_tabname = self.name.replace(" ", "_")
        self.id_page = self.extra_networks_tabname
        self.card_page = ""
        self.allow_prompt = True
        self.allow_negative_prompt = False
        self.metadata: dict = {}
        self.items: dict = {}
        self.lister: Any = None
        self.pane_content_tree_tpl = self.pane_content_dirs_tpl = self.btn_copy_path_tpl = None

    def refresh(self) -> None:
        pass

    def list_items(self) -> Iterable[dict]:
        return []

    def allowed_directories_for_previews(self) -> list[str]:
        return []

    def create_item(self, name: str, index: int | None = None, enable_filter: bool = True) -> dict | None:
        return None

    def read_user_metadata(self, item: dict, use_cache: bool = True) -> None:
        filename = item.get("filename")
        metadata = {}
        if filename:
            path = os.path.splitext(filename)[0] + ".json"
            try:
                with open(path, encoding="utf8") as f:
                    loaded = json.load(f)
                metadata = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                metadata = {}
        desc = metadata.get("description")
        if desc is not None:
            item["description"] = desc
        item["user_metadata"] = metadata

    def link_preview(self, filename: str) -> str:
        quoted = urllib.parse.quote(filename.replace("\\", "/"))
        try:
            mtime = os.path.getmtime(filename)
        except OSError:
            mtime = 0
        return f"./sd_extra_networks/thumb?filename={quoted}&mtime={mtime}"

    def search_terms_from_path(self, filename: str, possible_directories: Iterable[str] | None = None) -> str:
        abspath = os.path.abspath(filename)
        for parent in possible_directories or self.allowed_directories_for_previews():
            parent = os.path.abspath(parent)
            if abspath.startswith(parent + os.sep):
                return abspath[len(parent):].replace("\\", "/")
        return ""

    def find_preview(self, path: str) -> str | None:
        """The thumb URL of ``path``'s preview image (``NAME.png``, ``NAME.preview.png``...), or None."""
        for file in [path + "." + ext for ext in PREVIEW_EXTENSIONS] + \
                    [path + ".preview." + ext for ext in PREVIEW_EXTENSIONS]:
            if os.path.isfile(file):
                return self.link_preview(file)
        return None

    def find_description(self, path: str) -> str | None:
        for file in (f"{path}.txt", f"{path}.description.txt"):
            try:
                with open(file, encoding="utf-8", errors="replace") as f:
                    return f.read()
            except OSError:
                continue
        return None

    def get_sort_keys(self, path: str) -> dict:
        try:
            st = os.stat(path)
            return {"date_created": int(st.st_ctime), "date_modified": int(st.st_mtime),
                    "name": os.path.basename(path).lower(), "path": path.lower()}
        except OSError:
            return {"name": os.path.basename(path).lower(), "path": path.lower()}


def _state(engine: "Engine") -> dict:
    state = runtime.engine_state(engine)
    state.setdefault("extra_pages", [])
    state.setdefault("extra_pages_allowed_dirs", set())
    return state


def register_page(page: ExtraNetworksPage) -> None:
    """Show ``page`` as a tab of the extra networks browser of the running Engine (a page of the same name
    replaces the earlier one: a script reload registers again)."""
    state = _state(runtime.current())
    pages = state["extra_pages"]
    pages[:] = [p for p in pages if getattr(p, "extra_networks_tabname", None) != page.extra_networks_tabname]
    pages.append(page)
    state["extra_pages_allowed_dirs"].update(os.path.abspath(d) for d in page.allowed_directories_for_previews() or [])


def extension_pages(engine: "Engine") -> list[ExtraNetworksPage]:
    return list(_state(engine)["extra_pages"])


def initialize() -> None:
    """A1111 clears the registered pages before the page is built again."""
    state = _state(runtime.current())
    state["extra_pages"].clear()
    state["extra_pages_allowed_dirs"].clear()


intialize = initialize  # A1111's earlier (misspelt) name, still called by older extensions


def pages_in_preferred_order(pages: list) -> list:
    order = str(runtime.current().options.get("ui_extra_networks_tab_reorder") or "")
    wanted = [x.lower().strip() for x in order.split(",") if x.strip()]

    def key(page: Any) -> tuple:
        name = str(getattr(page, "name", "")).lower()
        return next((i for i, w in enumerate(wanted) if w in name), len(wanted)), name

    return sorted(pages, key=key)


RESOLVERS: dict[str, Callable[[Any], Any]] = {
    "extra_pages": lambda e: _state(e)["extra_pages"],
    "allowed_dirs": lambda e: _state(e)["extra_pages_allowed_dirs"],
}
