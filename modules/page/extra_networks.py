"""Extra Networks card browser (spec §5.2): card data, HTTP routes and the Gradio tab contents.

Cards are plain dicts built from the catalogs (no model needed). The browser gets them once per page as
JSON (``GET /sd_extra_networks/cards?page=lora``); ``javascript/extraNetworks.js`` renders, searches and
sorts them client-side, so typing in the search box never goes through Gradio or Python, and with
thousands of adapters only the cards in view are in the DOM (it renders in chunks as you scroll).

Integration:

- ``mount_extra_networks_routes(app, engine)`` adds the ``/sd_extra_networks/*`` routes to the FastAPI app
  (placed before any catch-all mount such as Gradio's at "/", so call order does not matter).
- ``create_extra_networks_ui(engine, tabname)`` inside an open ``gr.Tabs()`` adds one ``gr.Tab`` per page
  (Textual Inversion, Hypernetworks, Checkpoints, Lora). Each holds a ``gr.HTML`` whose ``head`` loads the
  JS and CSS from the routes above (Gradio 6 takes page-wide ``js``/``css``/``head`` only in
  ``launch``/``mount_gradio_app``; ``gr.HTML(head=...)`` lets the component bring its own, deduplicated).
"""
from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from modules.engine import file_access
from modules.core import fileio
from modules.networks import sidecars

if TYPE_CHECKING:
    from modules.engine.engine import Engine

log = logging.getLogger(__name__)

ROUTE_PREFIX = "/sd_extra_networks"
REPO_ROOT = Path(__file__).resolve().parents[2]
# The only files the static route serves: name -> (path, media type).
STATIC_FILES = {
    "extraNetworks.js": (REPO_ROOT / "javascript" / "extraNetworks.js", "text/javascript"),
    "extra_networks.css": (REPO_ROOT / "html" / "extra_networks.css", "text/css"),
}
IMAGE_EXTENSIONS = frozenset(sidecars.PREVIEW_EXTENSIONS)
# Search terms keep this much of a description: enough to find a word, small enough for 5,000 cards.
SEARCH_DESCRIPTION_MAX = 500
TEXT_FIELD_MAX = 100_000
FAMILY_OF_MODEL = {"sd1": "SD1", "sd2": "SD2", "sdxl": "SDXL", "sdxl-refiner": "SDXL"}
FAMILY_OF_WIDTH = {768: "SD1", 1024: "SD2", 2048: "SDXL"}


@dataclass(frozen=True)
class Page:
    name: str  # id part: txt2img_<name>
    title: str
    catalog: str | None  # attribute of engine.networks holding its NetworkCatalog; None for checkpoints
    fields: tuple[str, ...]  # user-metadata keys its edit dialog writes


# A1111's registration order: the three default pages, then the Lora extension's.
PAGES: tuple[Page, ...] = (
    Page("textual_inversion", "Textual Inversion", "embedding_files", ("description", "notes")),
    Page("hypernetworks", "Hypernetworks", "hypernetworks",
         ("description", "notes", "activation text", "preferred weight")),
    Page("checkpoints", "Checkpoints", None, ("description", "notes")),
    Page("lora", "Lora", "loras",
         ("description", "notes", "sd version", "activation text", "negative text", "preferred weight")),
)
PAGES_BY_NAME = {p.name: p for p in PAGES}

# Options the browser needs, sent with every page (read by extraNetworks.js).
CLIENT_OPTIONS = (
    "extra_networks_add_text_separator", "extra_networks_hidden_models", "extra_networks_show_hidden_directories",
    "extra_networks_card_width", "extra_networks_card_height", "extra_networks_card_text_scale",
    "extra_networks_card_show_desc", "extra_networks_card_description_is_html", "extra_networks_card_order_field",
    "extra_networks_card_order", "extra_networks_tree_view_style", "extra_networks_tree_view_default_enabled",
    "extra_networks_tree_view_default_width", "lora_show_all", "lora_hide_unknown_for_versions",
)
# Options that change the card data itself (part of the cache key).
CARD_OPTIONS = ("extra_networks_default_multiplier", "lora_preferred_name")


class UserMetadataError(ValueError):
    """A field of an edit-dialog save that cannot be stored; ``field`` names it."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


# --- small pure helpers ---------------------------------------------------------------------------------


def ordered_pages(reorder: str | None) -> list[Page]:
    """Pages in the order of ``ui_extra_networks_tab_reorder``: a comma list of title substrings.

    A page takes the position of the first listed substring its title contains; pages matching
    none keep their registration order after the matched ones.
    """
    wanted = [part.strip().lower() for part in (reorder or "").split(",") if part.strip()]

    def score(page: Page) -> int:
        title = page.title.lower()
        return next((i for i, part in enumerate(wanted) if part in title), len(wanted))

    return sorted(PAGES, key=score)  # stable: ties keep PAGES order


def format_multiplier(value: float) -> str:
    """A multiplier as JavaScript prints a number (A1111 builds the tag in JS): 1.0 -> "1", 0.8 -> "0.8"."""
    value = float(value)
    if value.is_integer():
        return str(int(value))
    return repr(value)


def preview_url(path: str | os.PathLike, mtime: float) -> str:
    """URL of the thumb route for a preview; the mtime makes a replaced preview a new URL (no stale cache)."""
    return f"{ROUTE_PREFIX}/thumb?filename={urllib.parse.quote(os.fspath(path), safe='')}&mtime={int(mtime)}"


def _parent(relpath: str) -> str:
    return relpath.rsplit("/", 1)[0] if "/" in relpath else ""


def _hidden(relpath: str) -> bool:
    return any(part.startswith(".") for part in relpath.split("/"))


def _option(options: Any, key: str, default: Any = None) -> Any:
    try:
        return options.get(key)
    except KeyError:
        return default


def _str_field(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _stat(path: str | os.PathLike) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _search_text(*parts: Any) -> str:
    return " ".join(str(p) for p in parts if p).lower()


def _base_card(*, page: Page, card_id: str, name: str, relpath: str, size: int, mtime: float, family: str,
               description: str, preview: str | None, order: int, hash_: str | None, alias: str | None = None) -> dict:
    """Fields every card has; the page builders add the click action."""
    return {
        "id": card_id,
        "name": name,
        "alias": alias if alias is not None else name,
        "relpath": relpath,
        "dir": _parent(relpath),
        "hidden": _hidden(relpath),
        "search": _search_text(name, relpath, alias if alias and alias != name else "", hash_,
                               description[:SEARCH_DESCRIPTION_MAX]),
        "preview": preview,
        "description": description,
        "family": family,
        "size": size,
        "mtime": mtime,
        "hash": hash_,
        "sort": {"default": order, "name": name.lower(), "date": mtime, "size": size, "path": relpath.lower()},
    }


# --- card builders ---------------------------------------------------------------------------------------


def _entry_preview(entry: Any) -> str | None:
    if entry.preview is None:
        return None
    st = _stat(entry.preview)
    return preview_url(entry.preview, st.st_mtime) if st is not None else None


def _known_hash(catalog: Any, entry: Any) -> str | None:
    """A hash only if already known (metadata or the hash cache): listing never hashes a file."""
    value = entry.light_metadata.get("sshs_model_hash") if catalog.kind == "lora" else None
    if isinstance(value, str) and value:
        return value
    cache = getattr(catalog, "hash_cache", None)
    if cache is None or not getattr(cache, "enabled", True):
        return None
    title = f"{catalog.kind}/{entry.name}"
    known = cache.cached(entry.path, title)
    if known is None and catalog.kind == "lora":
        known = cache.cached(entry.path, title, "addnet")
    return known


def _network_card(page: Page, catalog: Any, entry: Any, order: int) -> dict:
    return _base_card(page=page, card_id=os.fspath(entry.path), name=entry.name, alias=entry.alias,
                      relpath=entry.relpath, size=entry.size, mtime=entry.mtime, family=entry.family,
                      description=entry.description, preview=_entry_preview(entry), order=order,
                      hash_=_known_hash(catalog, entry))


def lora_card(catalog: Any, entry: Any, options: Any, order: int = 0) -> dict:
    """Card of one LoRA: ``<lora:NAME:M>`` (+ " " + activation text), spec §3.8."""
    card = _network_card(PAGES_BY_NAME["lora"], catalog, entry, order)
    use_alias = _option(options, "lora_preferred_name", "Alias from file") != "Filename"
    name = entry.alias if use_alias and entry.alias and not catalog.alias_forbidden(entry.alias) else entry.name
    weight = entry.preferred_weight or float(_option(options, "extra_networks_default_multiplier", 1.0))
    prompt = f"<lora:{name}:{format_multiplier(weight)}>"
    if entry.activation_text:
        prompt += " " + entry.activation_text
    negative = _str_field(entry.user_metadata.get("negative text"))
    card.update(action="insert", prompt=prompt, negative=f"({negative}:1)" if negative else "",
                allow_negative=False, tag={"kinds": ["lora", "lyco"], "names": sorted({name, entry.name, entry.alias})})
    return card


def hypernetwork_card(catalog: Any, entry: Any, options: Any, order: int = 0) -> dict:
    card = _network_card(PAGES_BY_NAME["hypernetworks"], catalog, entry, order)
    weight = entry.preferred_weight or float(_option(options, "extra_networks_default_multiplier", 1.0))
    prompt = f"<hypernet:{entry.name}:{format_multiplier(weight)}>"
    if entry.activation_text:
        prompt += " " + entry.activation_text
    card.update(action="insert", prompt=prompt, negative="", allow_negative=False,
                tag={"kinds": ["hypernet"], "names": [entry.name]})
    return card


def embedding_card(catalog: Any, entry: Any, trigger: str | None = None, order: int = 0) -> dict:
    """A textual inversion: its trigger word goes to whichever prompt (positive or negative) was edited last."""
    card = _network_card(PAGES_BY_NAME["textual_inversion"], catalog, entry, order)
    word = trigger or entry.name
    card.update(name=word, action="insert", prompt=word, negative="", allow_negative=True, tag=None)
    if word != entry.name:
        card["search"] = f"{word.lower()} {card['search']}"
    card["sort"]["name"] = word.lower()
    return card


def checkpoint_card(info: Any, ckpt_dirs: Sequence[str | os.PathLike], listing_cache: dict, order: int = 0,
                    hash_: str | None = None) -> dict:
    """A checkpoint: clicking it switches the model (action ``checkpoint`` carrying the title)."""
    path = info.filename
    folder, base = os.path.split(path)
    stem = base if os.path.isdir(path) else os.path.splitext(base)[0]
    listing = listing_cache.get(folder)
    if listing is None:
        try:
            with os.scandir(folder) as it:
                listing = {de.name: de for de in it}
        except OSError:
            listing = {}
        listing_cache[folder] = listing
    found = sidecars.folder_sidecars(listing).get(stem, [])
    preview_name = sidecars.find_preview(found, listing, exclude=base) if found else None
    user, description = {}, ""
    for _, role, name in found:
        if role == "json" and not user:
            value, problem, _ = sidecars.read_sidecar(os.path.join(folder, name))
            user, problem = sidecars.user_metadata_from(value, os.path.join(folder, name), problem)
            if problem:
                log.warning("%s", problem)
        elif role == "text" and not description:
            value, problem, _ = sidecars.read_sidecar(os.path.join(folder, name))
            description = value if isinstance(value, str) else ""
    if isinstance(user.get("description"), str) and user["description"]:
        description = user["description"]
    st = _stat(path)
    preview = None
    if preview_name:
        pst = _stat(os.path.join(folder, preview_name))
        if pst is not None:
            preview = preview_url(os.path.join(folder, preview_name), pst.st_mtime)
    relpath = f"{_ckpt_root_name(path, ckpt_dirs)}{info.name.replace(os.sep, '/')}"
    card = _base_card(page=PAGES_BY_NAME["checkpoints"], card_id=path, name=info.name_for_extra, relpath=relpath,
                      size=st.st_size if st else 0, mtime=st.st_mtime if st else 0.0,
                      family=sidecars.sd_version_override(user) or "Unknown", description=description,
                      preview=preview, order=order, hash_=hash_ or info.sha256)
    card.update(action="checkpoint", title=info.title, prompt="", negative="", allow_negative=False, tag=None)
    return card


def _ckpt_root_name(path: str, ckpt_dirs: Sequence[str | os.PathLike]) -> str:
    """``Stable-diffusion/`` style prefix: the checkpoint folder's name, as relpaths of adapters start with theirs."""
    for folder in ckpt_dirs:
        folder = os.path.abspath(folder)
        try:
            if os.path.commonpath([path, folder]) == folder:
                return os.path.basename(folder) + "/"
        except ValueError:
            continue
    return ""


def validate_user_metadata(page: Page, data: Any) -> dict:
    """The edit dialog's fields, checked and normalised; UserMetadataError names the first bad field."""
    if not isinstance(data, dict):
        raise UserMetadataError("data", f"expected a JSON object of fields, got {type(data).__name__}")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in page.fields:
            raise UserMetadataError(str(key), f"not an editable field of {page.title} cards "
                                              f"(editable: {', '.join(page.fields)})")
        if key == "preferred weight":
            out[key] = _weight(value)
        elif key == "sd version":
            if value not in sidecars.SD_VERSIONS:
                raise UserMetadataError(key, f"must be one of {', '.join(sidecars.SD_VERSIONS)}, got {value!r}")
            out[key] = value
        else:
            if not isinstance(value, str):
                raise UserMetadataError(key, f"must be text, got {type(value).__name__}")
            if len(value) > TEXT_FIELD_MAX:
                raise UserMetadataError(key, f"is {len(value)} characters long; at most {TEXT_FIELD_MAX} are kept")
            out[key] = value
    return out


def _weight(value: Any) -> float:
    if isinstance(value, bool) or value is None:
        raise UserMetadataError("preferred weight", f"must be a number from 0 to 2, got {value!r}")
    if isinstance(value, str):
        value = value.strip() or "0"
    try:
        weight = float(value)
    except (TypeError, ValueError):
        raise UserMetadataError("preferred weight", f"must be a number from 0 to 2, got {value!r}") from None
    if not math.isfinite(weight) or not 0.0 <= weight <= 2.0:
        raise UserMetadataError("preferred weight",
                                f"must be from 0 to 2 (0 = use the default multiplier), got {weight}")
    return weight


def save_checkpoint_metadata(path: str, data: dict) -> None:
    """Merge ``data`` into the checkpoint's ``NAME.json`` (atomic write), as the catalogs do for adapters."""
    base = path if os.path.isdir(path) else os.path.splitext(path)[0]
    json_path = base + ".json"
    try:
        current = fileio.read_json(json_path, None)
    except (ValueError, OSError) as e:
        log.warning("%s: existing user metadata is unreadable (%s); replacing it", json_path, e)
        current = None
    fileio.atomic_write_json(json_path, {**(current if isinstance(current, dict) else {}), **data}, indent=4)


# --- the service behind the routes ---------------------------------------------------------------------


class ExtraNetworksService:
    """Card data for one engine, cached per page until a catalog, an option or the model changes.

    Thread-safe: routes run in FastAPI's thread pool. Built pages are replaced whole, never changed in place.
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        self._lock = threading.Lock()
        self._pages: dict[str, tuple[tuple, dict]] = {}  # page -> (cache key, payload)
        self._json: dict[str, tuple[dict, bytes]] = {}  # page -> (payload, its JSON)
        self._previews: tuple[tuple, frozenset[str]] | None = None  # (key, realpaths of allowed previews)
        self._checkpoint_previews: frozenset[str] = frozenset()
        self.switcher = CheckpointSwitcher(engine)

    # -- pages -----------------------------------------------------------------------------------------

    def page(self, name: str) -> dict:
        """The page's payload: cards, skipped embeddings, options for the browser, model family."""
        page = PAGES_BY_NAME.get(name)
        if page is None:
            from modules.page import extension_networks

            extension_page = extension_networks.find(self.engine, name)
            if extension_page is None:
                raise KeyError(f"unknown page {name!r}; pages: {', '.join(PAGES_BY_NAME)}")
            payload = extension_networks.payload(self.engine, extension_page)
            payload["options"] = {k: _option(self.engine.options, k) for k in CLIENT_OPTIONS}
            payload["model_family"] = self._model_family()
            return payload
        key = self._page_key(page)
        with self._lock:
            cached = self._pages.get(name)
        if key is not None and cached is not None and cached[0] == key:
            return cached[1]
        payload = self._build(page)
        payload["options"] = {k: _option(self.engine.options, k) for k in CLIENT_OPTIONS}
        payload["model_family"] = self._model_family()
        if key is not None and self._page_key(page) == key:  # nothing changed while building: safe to reuse
            with self._lock:
                self._pages[name] = (key, payload)
        return payload

    def page_json(self, name: str) -> bytes:
        """``page(name)`` serialised (kept with the cached payload: 5,000 cards are a few MB of JSON)."""
        payload = self.page(name)
        with self._lock:
            cached = self._json.get(name)
            if cached is not None and cached[0] is payload:
                return cached[1]
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        with self._lock:
            self._json[name] = (payload, data)
        return data

    def invalidate(self) -> None:
        with self._lock:
            self._pages.clear()
            self._json.clear()
            self._previews = None

    def _page_key(self, page: Page) -> tuple | None:
        """What the page's payload depends on; None: not cacheable (checkpoints: few, and unversioned)."""
        if page.catalog is None:
            return None
        options = self.engine.options
        opts = tuple(repr(_option(options, k)) for k in CARD_OPTIONS + CLIENT_OPTIONS)
        model = self.engine.model
        catalog = getattr(self.engine.networks, page.catalog)
        catalog.items()  # the first call scans; the key must see the version after it
        extra = ()
        if page.name == "textual_inversion":
            extra = (id(model), self.engine.networks.embeddings.version)
        return (opts, id(catalog), catalog.version, *extra, self._model_family())

    def _model_family(self) -> str | None:
        model = self.engine.model
        return FAMILY_OF_MODEL.get(getattr(model, "family", None)) if model is not None else None

    def _build(self, page: Page) -> dict:
        started = time.perf_counter()
        skipped: list[dict] = []
        if page.name == "checkpoints":
            cards = self._checkpoint_cards()
        elif page.name == "textual_inversion":
            cards, skipped = self._embedding_cards()
        else:
            catalog = getattr(self.engine.networks, page.catalog)
            build = lora_card if page.name == "lora" else hypernetwork_card
            cards = [build(catalog, entry, self.engine.options, i) for i, entry in enumerate(catalog.items())]
        log.debug("extra networks page %s: %d cards in %.3fs", page.name, len(cards), time.perf_counter() - started)
        payload: dict[str, Any] = {"page": page.name, "title": page.title, "fields": list(page.fields),
                                   "cards": cards, "skipped": skipped}
        if page.name == "checkpoints":
            current = getattr(self.engine, "checkpoint_info", None)
            payload["current"] = getattr(current, "title", None)
        return payload

    def _checkpoint_cards(self) -> list[dict]:
        engine = self.engine
        dirs = list(getattr(engine.paths, "ckpt_dirs", []) or [])
        listing_cache: dict = {}
        cache = getattr(engine, "hash_cache", None)
        cards = []
        for i, info in enumerate(engine.available_checkpoints()):
            known = None
            if cache is not None and not info.sha256 and not getattr(info, "is_diffusers_folder", False):
                known = cache.cached(info.filename, f"checkpoint/{info.name}")
            cards.append(checkpoint_card(info, dirs, listing_cache, i, known))
        previews = set()
        for card in cards:
            if card["preview"]:
                previews.add(os.path.realpath(_filename_of(card["preview"])))
        with self._lock:
            self._checkpoint_previews = frozenset(previews)
        return cards

    def _embedding_cards(self) -> tuple[list[dict], list[dict]]:
        """Cards from the embedding files; with a model loaded, those it cannot use are listed apart."""
        networks = self.engine.networks
        catalog = networks.embedding_files
        skipped_embeddings, errors, width = [], {}, None
        triggers: dict[str, str] = {}
        model = self.engine.model
        if model is not None:
            try:
                registered, skipped_embeddings = networks.embeddings_report(True)
                errors = dict(networks.embeddings.errors)
                width = sum(int(te.config.hidden_size) for te in model.text_encoders)
            except Exception as e:  # a broken file must not take the page down
                log.warning("could not check embeddings against the loaded model: %s", e)
                registered = []
            triggers = {os.path.abspath(e.filename): e.name for e in registered if e.filename and e.source == "file"}
        else:
            skipped_embeddings = list(networks.embeddings.skipped.values())
        apart = {os.path.abspath(e.filename) for e in skipped_embeddings if e.filename and e.source == "file"}
        apart |= {os.path.abspath(p) for p in errors}
        cards = []
        for i, entry in enumerate(catalog.items()):
            apath = os.path.abspath(entry.path)
            if apath in apart:
                continue
            cards.append(embedding_card(catalog, entry, triggers.get(apath), i))
        skipped = [{"name": e.name, "filename": e.filename or "", "reason": _width_reason(e, width)}
                   for e in skipped_embeddings]
        skipped += [{"name": Path(p).stem, "filename": p, "reason": f"not loaded: {reason}"}
                    for p, reason in errors.items()]
        return cards, skipped

    # -- single cards and saving -----------------------------------------------------------------------

    def find(self, page: Page, card_id: str) -> Any:
        """The catalog entry (or CheckpointInfo) a card id names, or None."""
        if page.catalog is None:
            return next((c for c in self.engine.available_checkpoints() if c.filename == card_id), None)
        catalog = getattr(self.engine.networks, page.catalog)
        return next((e for e in catalog.items() if os.fspath(e.path) == card_id), None)

    def card(self, page_name: str, card_id: str) -> dict | None:
        payload = self.page(page_name)
        return next((c for c in payload["cards"] if c["id"] == card_id), None)

    def user_metadata(self, page_name: str, card_id: str) -> dict:
        """What the edit dialog shows: the whole user metadata (read now) and file facts."""
        page = PAGES_BY_NAME[page_name]
        item = self.find(page, card_id)
        if item is None:
            raise LookupError(f"no {page.title} card with id {card_id!r}; press refresh")
        if page.catalog is None:
            base = item.filename if os.path.isdir(item.filename) else os.path.splitext(item.filename)[0]
            json_path = base + ".json"
            value, problem, _ = sidecars.read_sidecar(json_path) if os.path.exists(json_path) else ({}, None, False)
            user = sidecars.user_metadata_from(value, json_path, problem)[0]
        else:
            user = dict(item.user_metadata)
        return {"user_metadata": {k: user.get(k) for k in page.fields if k in user}, "fields": list(page.fields)}

    def save(self, page_name: str, card_id: str, data: Any) -> dict:
        """Validate, write ``NAME.json`` atomically, and return the card rebuilt from the catalog."""
        page = PAGES_BY_NAME.get(page_name)
        if page is None:
            raise UserMetadataError("page", f"unknown page {page_name!r}; pages: {', '.join(PAGES_BY_NAME)}")
        fields = validate_user_metadata(page, data)
        item = self.find(page, card_id)
        if item is None:
            raise LookupError(f"no {page.title} card with id {card_id!r}; press refresh")
        if page.catalog is None:
            save_checkpoint_metadata(item.filename, fields)
        else:
            getattr(self.engine.networks, page.catalog).save_user_metadata(item, fields)
        card = self.card(page_name, card_id)
        if card is None:
            raise LookupError(f"{card_id}: saved, but the card is no longer listed")
        return card

    def replace_preview(self, page_name: str, card_id: str, data_url: str) -> dict:
        """Write the picture as the card's preview (see :mod:`modules.page.card_preview`); the card rebuilt."""
        from modules.page import card_preview

        page = PAGES_BY_NAME.get(page_name)
        if page is None:
            raise UserMetadataError("page", f"unknown page {page_name!r}; pages: {', '.join(PAGES_BY_NAME)}")
        item = self.find(page, card_id)
        if item is None:
            raise LookupError(f"no {page.title} card with id {card_id!r}; press refresh")
        image = card_preview.decode_image(data_url)
        card = self.card(page_name, card_id)
        current = _filename_of(card["preview"]) if card and card.get("preview") else None
        model_path = item.filename if page.catalog is None else os.fspath(item.path)
        card_preview.write_preview(image, card_preview.preview_path(model_path, current))
        self.refresh()
        card = self.card(page_name, card_id)
        if card is None:
            raise LookupError(f"{card_id}: preview written, but the card is no longer listed")
        return card

    def refresh(self) -> None:
        """Re-list every folder (A1111's refresh button); embeddings are re-read when a model is loaded."""
        engine = self.engine
        engine.networks.refresh()
        engine.refresh_checkpoints()
        if engine.model is not None:
            try:
                engine.networks.prepare_embeddings(force=True)
            except Exception as e:
                log.warning("could not reload embeddings: %s", e)
        from modules.page import extension_networks

        extension_networks.refresh(engine)
        self.invalidate()

    # -- previews ------------------------------------------------------------------------------------

    def allowed_preview(self, filename: str) -> str | None:
        """The real path to serve for a thumb request, or None: it must be a listed preview image."""
        if not filename or "\0" in filename:
            return None
        if os.path.splitext(filename)[1][1:].lower() not in IMAGE_EXTENSIONS:
            return None
        real = os.path.realpath(filename)
        if os.path.splitext(real)[1][1:].lower() not in IMAGE_EXTENSIONS:
            return None
        if real not in self._preview_set():
            from modules.page import extension_networks

            if not extension_networks.allowed_preview(self.engine, real):
                return None
        return real if os.path.isfile(real) else None

    def _preview_set(self) -> frozenset[str]:
        networks = self.engine.networks
        catalogs = [networks.loras, networks.hypernetworks, networks.embedding_files]
        key = tuple((id(c), c.version) for c in catalogs)
        with self._lock:
            cached = self._previews
            checkpoints = self._checkpoint_previews
        if cached is not None and cached[0] == key:
            return cached[1] | checkpoints
        reals = set()
        for catalog in catalogs:
            for entry in catalog.items():
                if entry.preview is None:
                    continue
                real = os.path.realpath(entry.preview)
                # A preview that is a symlink leading out of its model's folder is not served.
                homes = (os.path.realpath(os.path.dirname(entry.path)), os.path.realpath(entry.root))
                if any(file_access.is_within(real, home) for home in homes):
                    reals.add(real)
        allowed = frozenset(reals)
        with self._lock:
            self._previews = (key, allowed)
        return allowed | checkpoints


def _filename_of(url: str) -> str:
    query = urllib.parse.urlparse(url).query
    return urllib.parse.parse_qs(query).get("filename", [""])[0]


def _width_reason(embedding: Any, width: int | None) -> str:
    if embedding.source != "file":
        where = f"bundled in {embedding.source.split(':', 1)[-1]}; "
    else:
        where = ""
    family = FAMILY_OF_WIDTH.get(embedding.shape)
    made_for = f" ({family})" if family else ""
    if width is None:
        return f"{where}width mismatch: vector width {embedding.shape}{made_for} does not fit the loaded model"
    return (f"{where}width mismatch: vector width {embedding.shape}{made_for} does not fit the loaded model's "
            f"{width}{' (' + FAMILY_OF_WIDTH[width] + ')' if width in FAMILY_OF_WIDTH else ''}")


class CheckpointSwitcher:
    """Loads a checkpoint in a background thread for a checkpoint card; the browser polls ``status``."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._lock = threading.Lock()
        self._status: dict[str, Any] = {"state": "idle", "title": None, "error": None, "serial": 0}
        self._thread: threading.Thread | None = None

    def status(self) -> dict:
        with self._lock:
            return dict(self._status)

    def start(self, title: str) -> dict:
        """Begin switching; LookupError for an unknown title, RuntimeError while another load runs."""
        info = self.engine.checkpoints.get_closest(title) if title else None
        if info is None:
            info = next((c for c in self.engine.available_checkpoints() if title in (c.title, c.name)), None)
        if info is None:
            raise LookupError(f"checkpoint {title!r} not found; press refresh")
        with self._lock:
            if self._status["state"] == "loading":
                raise RuntimeError(f"checkpoint {self._status['title']!r} is still loading")
            serial = self._status["serial"] + 1
            self._status = {"state": "loading", "title": info.title, "error": None, "serial": serial}
            self._thread = threading.Thread(target=self._run, args=(info.title, serial), daemon=True,
                                            name="extra-networks-checkpoint")
            self._thread.start()
            return dict(self._status)

    def wait(self, timeout: float | None = None) -> dict:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.status()

    def _run(self, title: str, serial: int) -> None:
        # The Engine's one way to change the model: it waits for the running generation, and a checkpoint
        # that fails to load leaves the model and the setting as they were.
        try:
            info = self.engine.select_checkpoint(title)
            loaded = info.title if info is not None else title
            status = {"state": "done", "title": loaded, "error": None, "serial": serial}
        except Exception as e:  # shown on the page
            log.error("switching to checkpoint %s failed: %s", title, e)
            status = {"state": "error", "title": title, "error": f"{type(e).__name__}: {e}", "serial": serial}
        with self._lock:
            self._status = status


# --- routes --------------------------------------------------------------------------------------------


def mount_extra_networks_routes(app: Any, engine: Engine,
                                dependencies: Sequence[Any] | None = None) -> ExtraNetworksService:
    """Add ``/sd_extra_networks/*`` to ``app`` (a FastAPI app); returns the service (also ``app.state.extra_networks``).

    The routes go before any catch-all mount already on the app (Gradio at "/"), so this may be
    called before or after ``gr.mount_gradio_app``. ``dependencies`` (e.g. an auth check) apply to all.
    """
    from fastapi import APIRouter, Body, Query
    from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response

    service = ExtraNetworksService(engine)
    router = APIRouter(prefix=ROUTE_PREFIX, dependencies=list(dependencies or []), include_in_schema=False)

    def error(status: int, message: str, field: str | None = None) -> JSONResponse:
        return JSONResponse({"error": message, "field": field}, status_code=status)

    @router.get("/cards")
    def cards(page: str = Query(...)) -> Response:
        try:
            data = service.page_json(page)
        except KeyError as e:
            return error(404, str(e.args[0]), "page")
        # Serialised by the service: FastAPI's encoder walks every value and is slow for thousands of cards.
        return Response(data, media_type="application/json", headers={"Cache-Control": "no-store"})

    previews = file_access.PreviewIndex(engine)

    @router.get("/thumb")
    def thumb(filename: str = Query(""), mtime: str = Query("")) -> Response:
        real = service.allowed_preview(filename)  # network and checkpoint previews (the URL carries the mtime)
        if real is not None:
            return FileResponse(real, headers={"Cache-Control": "public, max-age=604800"})
        try:  # else what A1111's thumb also serves: output images, with file_access's refusals
            path = file_access.find_thumb(engine, filename, previews)
        except file_access.FileRefused as e:
            return PlainTextResponse("Forbidden" if e.status == 403 else "Not found", status_code=e.status)
        return FileResponse(path, headers={"Cache-Control": "no-cache"})

    @router.get("/user-metadata")
    def user_metadata(page: str = Query(...), id: str = Query(...)) -> Response:
        if page not in PAGES_BY_NAME:
            return error(404, f"unknown page {page!r}", "page")
        try:
            return JSONResponse(service.user_metadata(page, id))
        except LookupError as e:
            return error(404, str(e.args[0]), "id")

    @router.post("/save-user-metadata")
    def save_user_metadata(body: Any = Body(...)) -> Response:
        if not isinstance(body, dict):
            return error(422, "expected a JSON object {page, id, data}", "body")
        try:
            card = service.save(str(body.get("page", "")), str(body.get("id", "")), body.get("data"))
        except UserMetadataError as e:
            return error(422, str(e), e.field)
        except LookupError as e:
            return error(404, str(e.args[0]), "id")
        except OSError as e:
            return error(500, f"could not write the user metadata: {e.strerror or e}", "data")
        return JSONResponse({"card": card})

    @router.post("/replace-preview")
    def replace_preview(body: Any = Body(...)) -> Response:
        from modules.page.card_preview import PreviewError

        if not isinstance(body, dict):
            return error(422, "expected a JSON object with page, id and image")
        try:
            card = service.replace_preview(str(body.get("page", "")), str(body.get("id", "")),
                                           str(body.get("image", "")))
        except (UserMetadataError, PreviewError) as e:
            return error(422, str(e), getattr(e, "field", "image"))
        except LookupError as e:
            return error(404, str(e.args[0]), "id")
        except OSError as e:
            return error(500, f"the preview could not be written: {e}")
        return JSONResponse({"card": card})

    @router.post("/refresh")
    def refresh() -> Response:
        service.refresh()
        return JSONResponse({"ok": True})

    @router.post("/checkpoint")
    def switch_checkpoint(body: Any = Body(...)) -> Response:
        title = body.get("title") if isinstance(body, dict) else None
        if not isinstance(title, str) or not title:
            return error(422, "title: expected the checkpoint title", "title")
        try:
            status = service.switcher.start(title)
        except LookupError as e:
            return error(404, str(e.args[0]), "title")
        except RuntimeError as e:
            return error(409, str(e), "title")
        service.invalidate()  # the Lora page filters by the model family
        return JSONResponse(status, status_code=202)

    @router.get("/checkpoint-status")
    def checkpoint_status() -> Response:
        return JSONResponse(service.switcher.status())

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        found = STATIC_FILES.get(name)
        if found is None or not found[0].is_file():
            return error(404, f"no static file {name!r}", "name")
        return FileResponse(found[0], media_type=found[1], headers={"Cache-Control": "no-cache"})

    before = len(app.router.routes)
    app.include_router(router)
    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[0:0] = added  # ahead of a Mount("/") that would otherwise swallow them
    app.state.extra_networks = service
    return service


# --- Gradio ---------------------------------------------------------------------------------------------


def static_url(name: str) -> str:
    path = STATIC_FILES[name][0]
    st = _stat(path)
    return f"{ROUTE_PREFIX}/static/{name}?v={int(st.st_mtime) if st else 0}"


def head_html() -> str:
    """``<script>`` and ``<link>`` for the browser code; pass to ``mount_gradio_app(head=...)`` to preload it."""
    return (f'<link rel="stylesheet" href="{static_url("extra_networks.css")}">'
            f'<script src="{static_url("extraNetworks.js")}"></script>')


def _mount_js(config: dict) -> str:
    """``js_on_load`` of a page's gr.HTML: hand the element to extraNetworks.js (loaded by ``head``)."""
    cfg = json.dumps(config)
    return (
        "if (window.sdExtraNetworks) { window.sdExtraNetworks.mount(element, " + cfg + "); } "
        "else { element.textContent = 'Extra networks: ' + " + json.dumps(STATIC_FILES["extraNetworks.js"][0].name)
        + " + ' did not load; are the /sd_extra_networks routes mounted?'; }"
    )


def create_extra_networks_ui(engine: Engine, tabname: str, *, prompt_elem_id: str | None = None,
                             neg_prompt_elem_id: str | None = None) -> dict[str, Any]:
    """Add one ``gr.Tab`` per page inside the caller's open ``gr.Tabs()``; returns ``{page name: (tab, html)}``.

    Tab ids are A1111's: ``{tabname}_{page}`` (``txt2img_lora``). Clicking a card edits the textareas of
    ``#{prompt_elem_id}`` / ``#{neg_prompt_elem_id}`` (default ``{tabname}_prompt`` / ``{tabname}_neg_prompt``).
    """
    import gradio as gr

    prompt_id = prompt_elem_id or f"{tabname}_prompt"
    neg_id = neg_prompt_elem_id or f"{tabname}_neg_prompt"
    out: dict[str, Any] = {}
    for page in ordered_pages(_option(engine.options, "ui_extra_networks_tab_reorder", "")):
        elem = f"{tabname}_{page.name}"
        config = {"tabname": tabname, "page": page.name, "title": page.title, "prompt": prompt_id,
                  "negPrompt": neg_id, "api": ROUTE_PREFIX}
        with gr.Tab(page.title, id=elem, elem_id=elem) as tab:
            html = gr.HTML(value=f'<div class="sd-en-placeholder">Loading {page.title}…</div>',
                           head=head_html(), js_on_load=_mount_js(config), apply_default_css=False,
                           elem_id=f"{elem}_cards_html", elem_classes=["sd-en-host"], padding=False)
        out[page.name] = (tab, html)
    from modules.page import extension_networks

    for name, title in extension_networks.tabs(engine):  # extensions' pages (ui_extra_networks.register_page)
        elem = f"{tabname}_{name}"
        config = {"tabname": tabname, "page": name, "title": title, "prompt": prompt_id, "negPrompt": neg_id,
                  "api": ROUTE_PREFIX}
        with gr.Tab(title, id=elem, elem_id=elem) as tab:
            html = gr.HTML(value=f'<div class="sd-en-placeholder">Loading {title}…</div>',
                           head=head_html(), js_on_load=_mount_js(config), apply_default_css=False,
                           elem_id=f"{elem}_cards_html", elem_classes=["sd-en-host"], padding=False)
        out[name] = (tab, html)
    return out


__all__ = [
    "PAGES", "Page", "ExtraNetworksService", "CheckpointSwitcher", "UserMetadataError", "create_extra_networks_ui",
    "mount_extra_networks_routes", "head_html", "ordered_pages", "format_multiplier", "lora_card",
    "hypernetwork_card", "embedding_card", "checkpoint_card", "validate_user_metadata",
]
