"""A1111's settings API for extensions: ``shared.OptionInfo``, ``options_section``, ``options_templates`` and
``shared.opts``, mapped onto this app's :class:`modules.settings.options.Options`.

A1111's ``OptionInfo(default, label, component, component_args, onchange, section, refresh, ...)`` carries no
key (``opts.add_option(key, info)`` gives it) and describes its control with a Gradio class; here an option is
a typed :class:`~modules.settings.options.OptionInfo` the settings page renders by type. :func:`to_option`
converts one into the other (choices, range and step from ``component_args``; a slider with a fractional step
holds floats). ``OptsView`` is ``shared.opts``: attribute get/set, ``opts.data`` as a live mapping,
``add_option(key, info)``, ``onchange(key, fn)``, ``save()``, ``data_labels``.
"""
from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, Callable, Iterator

from modules.core.request import RequestError
from modules.engine import settings_changes
from modules.engine.engine import MODEL_KEYS
from modules.settings import options as options_mod

if TYPE_CHECKING:
    from modules.engine.engine import Engine

log = logging.getLogger(__name__)


class OptionInfo:
    """A1111's option description; the chaining helpers (``.info()``, ``.html()``, ``.link()``, ``.js()``,
    ``.needs_reload_ui()``, ``.needs_restart()``) return the same object, as there."""

    def __init__(self, default: Any = None, label: str = "", component: Any = None, component_args: Any = None,
                 onchange: Callable[[], None] | None = None, section: Any = None, refresh: Callable | None = None,
                 comment_before: str = "", comment_after: str = "", infotext: str | None = None,
                 restrict_api: bool = False, category_id: str | None = None) -> None:
        self.default = default
        self.label = label
        self.component = component
        self.component_args = component_args
        self.onchange = onchange
        self.section = section
        self.category_id = category_id
        self.refresh = refresh
        self.do_not_save = False
        self.comment_before = comment_before
        self.comment_after = comment_after
        self.infotext = infotext
        self.restrict_api = restrict_api
        self.reload_ui = False
        self.restart = False

    def link(self, label: str, url: str) -> "OptionInfo":
        self.comment_before += f"[{label}]({url})"
        return self

    def js(self, label: str, js_func: str) -> "OptionInfo":
        self.comment_before += f"[{label}]"
        return self

    def info(self, info: str) -> "OptionInfo":
        self.comment_after += f" ({info})" if self.comment_after else f"({info})"
        return self

    def html(self, html: str) -> "OptionInfo":
        self.comment_after += html
        return self

    def needs_restart(self) -> "OptionInfo":
        self.restart = True
        self.comment_after += " (requires restart)"
        return self

    def needs_reload_ui(self) -> "OptionInfo":
        self.reload_ui = True
        self.comment_after += " (requires Reload UI)"
        return self


class OptionHTML(OptionInfo):
    """A block of text in the settings page (no value)."""

    def __init__(self, text: str) -> None:
        super().__init__(str(text).strip(), label="")
        self.do_not_save = True


def options_section(section_identifier: Any, options_dict: dict[str, OptionInfo]) -> dict[str, OptionInfo]:
    """Give every option of ``options_dict`` the section ``(id, label)`` (A1111 also accepts a category)."""
    for value in options_dict.values():
        if len(section_identifier) == 2:
            value.section = section_identifier
        elif len(section_identifier) == 3:
            value.section = section_identifier[0:2]
            value.category_id = section_identifier[2]
    return options_dict


def _component_args(info: OptionInfo) -> dict[str, Any]:
    args = info.component_args
    if callable(args):
        try:
            args = args()
        except Exception as exc:  # noqa: BLE001 - a broken choices lambda must not lose the option
            log.warning("OptionInfo %r: component_args() raised %s", info.label, exc)
            args = None
    return dict(args) if isinstance(args, dict) else {}


def _component_name(component: Any) -> str:
    return getattr(component, "__name__", type(component).__name__ if component is not None else "").lower()


def _plain_choices(raw: Any) -> list | None:
    if not isinstance(raw, (list, tuple)):
        return None
    out = []
    for c in raw:
        if isinstance(c, (tuple, list)) and len(c) == 2:
            c = c[1]
        if not isinstance(c, (str, int, float, bool)) and c is not None:
            return None
        out.append(c)
    return out


def to_option(key: str, info: OptionInfo) -> options_mod.OptionInfo:
    """This app's typed option for A1111's ``info`` registered as ``key``."""
    args = _component_args(info)
    kind = _component_name(info.component)
    default = info.default
    minimum, maximum, step = args.get("minimum"), args.get("maximum"), args.get("step")
    if isinstance(default, int) and not isinstance(default, bool) and any(
            isinstance(v, float) and not float(v).is_integer() for v in (minimum, maximum, step) if v is not None):
        default = float(default)  # a fractional slider holds floats
    if isinstance(default, tuple):
        default = list(default)
    choices = None
    raw_choices = info.component_args.get("choices") if isinstance(info.component_args, dict) else None
    if callable(raw_choices):
        choices = _lenient_choices(raw_choices)
    elif "choices" in args:
        choices = _plain_choices(args["choices"])
    if choices is not None and isinstance(default, str) and default not in (choices() if callable(choices) else choices):
        choices = None  # A1111 never checks; a default outside the list must still load
    multiselect = isinstance(default, list) and ("checkboxgroup" in kind or bool(args.get("multiselect")))
    section = info.section if isinstance(info.section, (tuple, list)) and len(info.section) >= 2 else (None, "Hidden options")
    comment = " ".join(x for x in (info.comment_before, info.comment_after) if x).strip()
    numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
    return options_mod.OptionInfo(
        key=key, default=default, label=str(info.label or key), section=(section[0], str(section[1])),
        choices=choices, minimum=minimum if numeric else None, maximum=maximum if numeric else None,
        step=step if numeric else None, infotext=info.infotext, comment=comment, multiselect=multiselect,
        needs_restart=bool(info.restart or info.reload_ui))


def _lenient_choices(fn: Callable[[], Any]) -> Callable[[], list]:
    def choices() -> list:
        try:
            return _plain_choices(fn()) or []
        except Exception:  # noqa: BLE001
            return []
    return choices


class _Templates(dict):
    """``shared.options_templates``: adding to it registers the options in the running Engine's settings."""

    def __init__(self, opts_of: Callable[[], "OptsView"]) -> None:
        super().__init__()
        self._opts_of = opts_of

    def __setitem__(self, key: str, info: OptionInfo) -> None:
        super().__setitem__(key, info)
        self._opts_of().add_option(key, info)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, info in dict(*args, **kwargs).items():
            self[key] = info


class _DataView(MutableMapping):
    """``opts.data``: every value by key, read and written through the settings object."""

    def __init__(self, view: "OptsView") -> None:
        self._view = view

    def __getitem__(self, key: str) -> Any:
        return self._view._options.get(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._view.set(key, value)

    def __delitem__(self, key: str) -> None:
        """An extension's own key is forgotten; a known setting goes back to its default."""
        options = self._view._options
        if key not in options:
            raise KeyError(key)
        try:
            default = options.info(key).default
        except ValueError:
            options.remove_unregistered(key)
            return
        options.set(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._view._options.data())

    def __len__(self) -> int:
        return len(self._view._options.data())

    def copy(self) -> dict[str, Any]:
        return dict(self._view._options.data())


class OptsView:
    """``shared.opts`` over one Engine's :class:`Options` (A1111's ``Options`` interface)."""

    def __init__(self, options: Any, a1111_infos: dict[str, OptionInfo], engine: "Engine | None" = None) -> None:
        object.__setattr__(self, "_options", options)
        object.__setattr__(self, "_a1111", a1111_infos)  # key -> A1111 OptionInfo, for data_labels
        object.__setattr__(self, "_engine", engine)  # model and VAE changes go through it

    # -- values --------------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._options.get(name)
        except KeyError:
            raise AttributeError(f"Options has no setting named {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self.set(name, value)

    def set(self, key: str, value: Any, is_api: bool = False, run_callbacks: bool = True) -> bool:
        """Store ``value`` at once, as A1111 does; a value this app's checks refuse is logged and left unset.
        The checkpoint and the VAE change through the Engine (:meth:`Engine.apply_settings`, after the same
        checks as the API): the change waits for a running generation and loads the model before returning
        (from inside a generation, as A1111, at once)."""
        if key not in self._options:
            self._options.set_unregistered(key, value)
            return True
        engine = self._engine
        if engine is not None and key in MODEL_KEYS:
            return self._set_model_key(engine, key, value)
        try:
            return self._options.set(key, value, run_callbacks=run_callbacks)
        except ValueError as exc:
            log.warning("%s (set by an extension; kept unchanged)", exc)
            return False

    def _set_model_key(self, engine: "Engine", key: str, value: Any) -> bool:
        try:
            value = settings_changes.check_change(engine, key, value, exact_checkpoint_name=False)
        except RequestError as exc:
            log.warning("%s (set by an extension; kept unchanged)", exc)
            return False
        if self._options.get(key) == value:
            return False
        return bool(engine.apply_settings({key: value}, save=False))

    def get_default(self, key: str) -> Any:
        try:
            return self._options.info(key).default
        except ValueError:
            return None

    @property
    def data(self) -> _DataView:
        return _DataView(self)

    @property
    def data_labels(self) -> dict[str, OptionInfo]:
        out = {i.key: OptionInfo(i.default, i.label, section=i.section, infotext=i.infotext) for i in self._options.infos()}
        out.update(self._a1111)
        return out

    def __contains__(self, key: str) -> bool:
        return key in self._options

    # -- definitions -----------------------------------------------------------------------------
    def add_option(self, key: str, info: OptionInfo) -> None:
        if isinstance(info, options_mod.OptionInfo):  # this app's own form
            self._options.add_option(info)
            return
        self._a1111[key] = info
        self._options.add_option(to_option(key, info))
        if info.onchange is not None:
            self.onchange(key, info.onchange, call=False)

    def onchange(self, key: str, func: Callable[[], None], call: bool = True) -> None:
        self._options.on_change(key, func)
        if call:
            func()

    def same_type(self, x: Any, y: Any) -> bool:
        if x is None or y is None:
            return True
        return type(x) is type(y) or (isinstance(x, (int, float)) and isinstance(y, (int, float)))

    def save(self, filename: str | None = None) -> None:
        self._options.save(filename)

    def load(self, filename: str | None = None) -> None:
        self._options.load()

    def dumpjson(self) -> str:
        import json

        return json.dumps(self._options.data(), default=str)
