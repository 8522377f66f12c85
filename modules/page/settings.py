"""The Settings tab and the quicksettings bar (A1111's Settings page and the row above the tabs).

- ``create_settings_tab(engine)`` inside an open ``gr.Tab("Settings")``: every visible option of
  ``engine.options`` (extensions' too: the tab is built after they load), one column per section with a
  section list and a search box on the left (client-side, ``javascript/settings.js``), "Apply settings"
  and a result line. Options in ``quicksettings_list`` live in the top bar instead, as in A1111.
- ``create_quicksettings(engine)`` inside an open ``gr.Row``: one control per ``quicksettings_list`` key,
  applied as soon as it changes; a checkpoint or VAE change loads it and says so in ``quicksettings_status``.

The pure parts (which control an option gets, converting values, applying a batch of changes) are plain
functions, tested without a browser. Changes go through ``modules.engine.settings_changes.apply_options``, like the
API's: checked, set (``Options.set`` runs the ``on_change`` callbacks), a new model loaded, and
``config.json`` written atomically.
"""
from __future__ import annotations

import html
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from modules.engine import settings_changes
from modules.core.request import RequestError
from modules.settings.options import OptionInfo

if TYPE_CHECKING:
    from modules.engine.engine import Engine

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
SETTINGS_JS = REPO_ROOT / "javascript" / "settings.js"
QUICKSETTINGS_JS = REPO_ROOT / "javascript" / "quicksettings.js"
SETTINGS_CSS = REPO_ROOT / "html" / "settings.css"

MODEL_KEYS = settings_changes.MODEL_KEYS
REFRESHABLE = ("sd_model_checkpoint", "sd_vae")
RESTART_NOTE = "takes effect after a restart of the web UI"
# At most this many fixed choices are shown as radio buttons / checkboxes; more make a dropdown.
RADIO_MAX = 6
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_SETTING_PREFIX = re.compile(r"^setting '[^']*': ")


# --- choices that depend on the engine --------------------------------------------------------------------


def checkpoint_titles(engine: Engine) -> list[str]:
    return [c.title for c in engine.available_checkpoints()]


def _catalog_names(engine: Engine, attr: str) -> list[str]:
    catalog = getattr(getattr(engine, "networks", None), attr, None)
    return ["None"] + ([e.name for e in catalog.items()] if catalog is not None else [])


def _sampler_names(_engine: Engine) -> list[str]:
    from modules.core import samplers

    return [s.name for s in samplers.SAMPLERS]


def _infotext_fields(_engine: Engine) -> list[str]:
    from modules.core import infotext

    return ["Prompt", "Negative prompt", *infotext.INFOTEXT_KEY_ORDER]


# key -> fn(engine) giving the current choices. These options have none (or only a fixed stand-in) in the table
# because the lists come from files on disk or from other parts of the program.
def _postprocessing_operations(engine: Engine) -> list[str]:
    from modules.scripting.postprocessing_main_ui import operation_names

    return operation_names(engine)


DYNAMIC_CHOICES: Mapping[str, Callable[[Any], list]] = MappingProxyType({
    "sd_model_checkpoint": checkpoint_titles,
    "sd_vae": lambda engine: list(engine.vaes.choices()),
    "sd_hypernetwork": lambda engine: _catalog_names(engine, "hypernetworks"),
    "sd_lora": lambda engine: _catalog_names(engine, "loras"),
    "hide_samplers": _sampler_names,
    "quicksettings_list": lambda engine: [i.key for i in engine.options.infos() if i.section[0] is not None],
    "infotext_skip_pasting": _infotext_fields,
    "sd_unet": lambda _engine: ["Automatic", "None"],
    "cross_attention_optimization": lambda _engine: ["Automatic"],
    "localization": lambda _engine: ["None"],
    "gradio_theme": lambda _engine: ["Default", "Base", "Soft", "Glass", "Monochrome", "Ocean", "Origin", "Citrus"],
    "ui_tab_order": lambda _engine: ["txt2img", "img2img", "Extras", "PNG Info", "Settings"],
    "hidden_tabs": lambda _engine: ["txt2img", "img2img", "Extras", "PNG Info"],
    "postprocessing_enable_in_main_ui": _postprocessing_operations,
    "postprocessing_disable_in_extras": _postprocessing_operations,
    "postprocessing_operation_order": _postprocessing_operations,
})
# Lists where the user may also type a value that is not offered.
OPEN_CHOICES = frozenset({"ui_tab_order", "hidden_tabs", "ui_reorder_list", "localization"})


def option_choices(engine: Engine, info: OptionInfo) -> list | None:
    """The choices the control offers: the engine's current list for :data:`DYNAMIC_CHOICES`, else the table's."""
    fn = DYNAMIC_CHOICES.get(info.key)
    if fn is not None:
        try:
            return list(fn(engine))
        except Exception as e:  # a broken folder must not take the settings page down
            log.warning("choices for setting %s: %s", info.key, e)
            return None
    return info.current_choices()


def current_value(engine: Engine, key: str) -> Any:
    """The value a control shows: the option, or for an unset checkpoint the one that is (or will be) loaded."""
    value = engine.options.get(key)
    if key == "sd_model_checkpoint" and not value:
        loaded = getattr(engine, "checkpoint_info", None)
        if loaded is not None:
            return loaded.title
        titles = checkpoint_titles(engine)
        return titles[0] if titles else None
    return value


# --- option -> control ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComponentSpec:
    """Which Gradio control an option gets: ``kind`` names the class (see ``_CLASSES``), ``kwargs`` its arguments."""

    kind: str
    kwargs: dict


def _help(info: OptionInfo) -> str | None:
    parts = [info.comment] if info.comment else []
    if info.needs_restart:
        parts.append(RESTART_NOTE)
    return "; ".join(parts) or None


def component_spec(info: OptionInfo, value: Any, choices: Sequence[Any] | None, *, dynamic: bool = False,
                   interactive: bool = True) -> ComponentSpec:
    """The control for ``info`` showing ``value`` (pure: no Gradio objects are made).

    bool: checkbox; int/float with a minimum and a maximum: slider (``precision=0`` for ints), without:
    number; choices: radio (at most ``RADIO_MAX`` fixed ones) or dropdown, checkbox group / multiselect
    dropdown for list options; ``#rrggbb`` strings: colour picker; lists without choices: a dropdown that
    takes typed values; anything else: textbox.
    """
    kw: dict[str, Any] = {"label": info.label or info.key, "info": _help(info), "interactive": interactive}
    kind = info.kind
    if kind is bool:
        return ComponentSpec("checkbox", {**kw, "value": bool(value)})
    if choices is not None or kind is list:
        opts = [c for c in (choices or [])]
        many = kind is list or info.multiselect
        if many:
            current = list(value or [])
            for v in current:  # never drop what is set, even if no longer offered
                if v not in opts:
                    opts.append(v)
            if choices is not None and not dynamic and len(opts) <= RADIO_MAX and info.key not in OPEN_CHOICES:
                return ComponentSpec("checkboxgroup", {**kw, "choices": opts, "value": current})
            return ComponentSpec("dropdown", {**kw, "choices": opts, "value": current, "multiselect": True,
                                              "allow_custom_value": choices is None or info.key in OPEN_CHOICES})
        if value is not None and value not in opts:
            opts.append(value)
        if not dynamic and len(opts) <= RADIO_MAX and info.key not in OPEN_CHOICES:
            return ComponentSpec("radio", {**kw, "choices": opts, "value": value})
        # Dynamic lists change under the page (a refresh, a file removed): a stale value must still be accepted
        # by the control; apply_settings checks it.
        return ComponentSpec("dropdown", {**kw, "choices": opts, "value": value, "multiselect": False,
                                          "allow_custom_value": dynamic or info.key in OPEN_CHOICES})
    if kind in (int, float):
        if info.minimum is not None and info.maximum is not None:
            step = info.step if info.step is not None else (1 if kind is int else 0.01)
            extra = {"precision": 0} if kind is int else {}
            return ComponentSpec("slider", {**kw, "minimum": info.minimum, "maximum": info.maximum, "step": step,
                                            "value": value, **extra})
        return ComponentSpec("number", {**kw, "value": value, "precision": 0 if kind is int else None})
    if isinstance(value, str) and isinstance(info.default, str) and _COLOR.match(info.default):
        return ComponentSpec("color", {**kw, "value": value})
    return ComponentSpec("textbox", {**kw, "value": "" if value is None else str(value), "lines": 1})


def from_component_value(info: OptionInfo, raw: Any) -> Any:
    """A control's value as the option's type; ValueError saying why not (range and choices: ``check_value``)."""
    kind = info.kind
    if kind is None:
        return None if raw is None or raw == "" else str(raw)
    if kind is bool:
        if not isinstance(raw, bool):
            raise ValueError(f"expected true or false, got {raw!r}")
        return raw
    if kind in (int, float):
        if raw is None or raw == "":
            raise ValueError("a number is required")
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {raw!r}") from None
        if kind is int:
            if not number.is_integer():
                raise ValueError(f"expected a whole number, got {raw!r}")
            return int(number)
        return number
    if kind is list:
        if raw is None:
            return []
        if isinstance(raw, str):
            return [part.strip() for part in raw.split(",") if part.strip()]
        return list(raw)
    if kind is str:
        return "" if raw is None else str(raw)
    return raw


# --- applying ---------------------------------------------------------------------------------------------


@dataclass
class ApplyResult:
    changed: list[str] = field(default_factory=list)  # keys, in the order given
    errors: dict[str, str] = field(default_factory=dict)  # key -> reason (not applied)
    needs_restart: list[str] = field(default_factory=list)  # changed keys that show only after a restart

    def text(self, labels: Mapping[str, str] | None = None) -> str:
        """``2 settings changed: a, b.`` then what needs a restart, then every error with its field."""
        labels = labels or {}
        n = len(self.changed)
        out = f"{n} setting{'' if n == 1 else 's'} changed{': ' if n else ''}{', '.join(self.changed)}."
        if self.needs_restart:
            out += f" Restart the web UI to see: {', '.join(self.needs_restart)}."
        if self.errors:
            out += " Not changed: " + "; ".join(
                f"{labels.get(k) or k} ({k}): {reason}" for k, reason in self.errors.items()) + "."
        return out

    def html(self, labels: Mapping[str, str] | None = None) -> str:
        cls = "sd-settings-result sd-settings-error" if self.errors else "sd-settings-result"
        return f'<div class="{cls}">{html.escape(self.text(labels))}</div>'


def error_text(exc: BaseException) -> str:
    """One readable line for the page: the reason without the Python noise."""
    text = exc.message if isinstance(exc, RequestError) else str(exc)
    text = _SETTING_PREFIX.sub("", text.strip()) or type(exc).__name__
    text = " ".join(text.split())
    return text if len(text) <= 400 else text[:399] + "…"


def apply_settings(engine: Engine, values: Mapping[str, Any], shown: Mapping[str, Any] | None = None) -> ApplyResult:
    """Apply the controls' ``values`` ({key: control value}); returns what changed and why others did not.

    ``shown`` holds the option values the page showed: a control still showing them is left alone, so a
    page that has been open for a while does not undo changes made meanwhile (API, another tab). Valid
    changes are applied even when others are refused; a checkpoint/VAE change is applied last, and if the
    model fails to load those settings go back and the reason is reported. The file is written atomically.
    """
    opts = engine.options
    result = ApplyResult()
    good: dict[str, Any] = {}
    for key, raw in values.items():
        try:
            info = opts.info(key)
            value = from_component_value(info, raw)
        except ValueError as e:
            result.errors[key] = error_text(e)
            continue
        if shown is not None and key in shown and value == shown[key]:
            continue
        if value == opts.get(key):
            continue
        try:
            value = settings_changes.check_change(engine, key, value, exact_checkpoint_name=True)
        except RequestError as e:
            result.errors[key] = error_text(e)
            continue
        good[key] = value

    plain = {k: v for k, v in good.items() if k not in MODEL_KEYS}
    model = {k: v for k, v in good.items() if k in MODEL_KEYS}
    for batch in (plain, model):
        if not batch:
            continue
        try:
            changed = settings_changes.apply_options(engine, batch, from_api=False)
        except Exception as e:  # a model that does not load, a file that cannot be written
            log.error("applying settings %s failed: %s", ", ".join(batch), e)
            for key in batch:
                result.errors[key] = error_text(e)
            continue
        result.changed.extend(changed)
    result.changed.sort(key=list(values).index)
    result.needs_restart = [k for k in result.changed if opts.info(k).needs_restart]
    return result


# --- which options the tab shows --------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "section"


def settings_sections(engine: Engine, exclude: Sequence[str] = ()) -> list[tuple[str, str, list[OptionInfo]]]:
    """[(elem id, section label, [infos])] of the tab, in table order: not the hidden section, not the keys in
    ``exclude`` (the quicksettings), not folder settings with ``--hide-ui-dir-config``; empty sections dropped."""
    opts = engine.options
    hide_dirs = bool(getattr(engine.args, "hide_ui_dir_config", False))
    out: list[tuple[str, str, list[OptionInfo]]] = []
    used: set[str] = set()
    for section_id, label, keys in opts.sections():
        if section_id is None:
            continue
        infos = [opts.info(k) for k in keys if k not in exclude]
        infos = [i for i in infos if not (hide_dirs and i.restricted)]
        if not infos:
            continue
        elem = base = f"settings_section_{_slug(label)}"
        n = 2
        while elem in used:
            elem, n = f"{base}_{n}", n + 1
        used.add(elem)
        out.append((elem, label, infos))
    return out


def quicksettings_keys(engine: Engine) -> list[str]:
    keys: list[str] = []
    for key in engine.options.get("quicksettings_list") or []:
        if key in keys:
            continue
        try:
            engine.options.info(key)
        except ValueError:
            log.warning("quicksettings_list: no setting named %r; left out of the top bar", key)
            continue
        keys.append(key)
    return keys


# --- Gradio -----------------------------------------------------------------------------------------------


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        log.error("could not read %s: %s", path, e)
        return ""


def head_html(*scripts: Path) -> str:
    """Inline ``<style>`` and ``<script>`` for ``gr.HTML(head=...)`` (Gradio deduplicates identical scripts)."""
    css = _read(SETTINGS_CSS)
    parts = [f"<style>{css}</style>"] if css else []
    parts += [f"<script>{_read(p)}</script>" for p in scripts]
    return "".join(parts)


def _make(spec: ComponentSpec, elem_id: str, elem_classes: list[str]) -> Any:
    import gradio as gr

    classes = {"checkbox": gr.Checkbox, "slider": gr.Slider, "number": gr.Number, "radio": gr.Radio,
               "dropdown": gr.Dropdown, "checkboxgroup": gr.CheckboxGroup, "color": gr.ColorPicker,
               "textbox": gr.Textbox}
    kwargs = {k: v for k, v in spec.kwargs.items() if v is not None or k in ("value",)}
    return classes[spec.kind](elem_id=elem_id, elem_classes=elem_classes, **kwargs)


def _spec_for(engine: Engine, key: str) -> ComponentSpec:
    info = engine.options.info(key)
    return component_spec(info, current_value(engine, key), option_choices(engine, info),
                          dynamic=key in DYNAMIC_CHOICES,
                          interactive=settings_changes.frozen_reason(engine, key) is None)


def _update_for(engine: Engine, key: str) -> Any:
    """A Gradio update bringing a control to the option's current value (and choices)."""
    import gradio as gr

    spec = _spec_for(engine, key)
    # Fixed choices never change; sending only the value keeps a page-load sync of ~250 controls small.
    extra = {"choices": spec.kwargs["choices"]} if "choices" in spec.kwargs and key in DYNAMIC_CHOICES else {}
    return gr.update(value=spec.kwargs.get("value"), **extra)


def _refresh(engine: Engine, key: str) -> None:
    if key == "sd_model_checkpoint":
        engine.refresh_checkpoints()
    elif key == "sd_vae":
        engine.vaes.refresh()


def _on_page_load(fn: Callable, outputs: list) -> None:
    """Run ``fn`` when a page opens, when the caller builds us inside a ``gr.Blocks``: the controls then show the
    settings as they are now, not as they were when the server started."""
    from gradio.context import Context

    root = Context.root_block
    if root is not None and hasattr(root, "load"):
        root.load(fn, inputs=None, outputs=outputs, show_progress="hidden", queue=False)


@dataclass
class SettingsTab:
    engine: Engine
    components: dict[str, Any]  # key -> control (elem_id setting_<key>)
    shown: Any  # gr.State: {key: value shown}
    submit: Any  # "Apply settings" (settings_submit)
    result: Any  # gr.HTML (settings_result)
    refresh_buttons: dict[str, Any]

    @property
    def outputs(self) -> list:
        return [self.shown, *self.components.values()]

    def sync(self) -> list:
        """Event fn (outputs ``self.outputs``): every control and the shown-values state from the options."""
        keys = list(self.components)
        return [{k: current_value(self.engine, k) for k in keys}, *(_update_for(self.engine, k) for k in keys)]

    def apply(self, shown: Mapping[str, Any] | None, *values: Any) -> list:
        """Event fn of "Apply settings": outputs ``[result, *self.outputs]``."""
        keys = list(self.components)
        result = apply_settings(self.engine, dict(zip(keys, values)), shown)
        return [result.html(self.engine.options.labels()), *self.sync()]


def create_settings_tab(engine: Engine, quicksettings: "Quicksettings | None" = None) -> SettingsTab:
    """Build the Settings tab's contents inside the caller's open ``gr.Tab`` (elem_id ``tab_settings``).

    With ``quicksettings`` (from :func:`create_quicksettings`), "Apply settings" also refreshes the top bar.
    """
    import gradio as gr

    quick = quicksettings_keys(engine)
    sections = settings_sections(engine, exclude=quick)
    components: dict[str, Any] = {}
    refresh_buttons: dict[str, Any] = {}
    labels = engine.options.labels()
    nav = [{"id": elem, "label": label, "keys": [[i.key, labels.get(i.key) or i.key] for i in infos]}
           for elem, label, infos in sections]
    with gr.Row(elem_id="settings_top"):
        submit = gr.Button("Apply settings", variant="primary", elem_id="settings_submit", scale=0, min_width=180)
        result = gr.HTML("", elem_id="settings_result")
    with gr.Row(elem_id="settings_body", equal_height=False):
        with gr.Column(scale=1, min_width=200, elem_id="settings_nav_column"):
            gr.HTML('<div class="sd-settings-placeholder">Sections…</div>', elem_id="settings_nav",
                    head=head_html(SETTINGS_JS), apply_default_css=False,
                    js_on_load=("if (window.sdSettings) { window.sdSettings.mount(element, "
                                + json.dumps({"sections": nav}) + "); }"))
        with gr.Column(scale=4, elem_id="settings_sections"):
            for elem, label, infos in sections:
                with gr.Column(elem_id=elem, elem_classes=["sd-settings-section"]):
                    gr.Markdown(f"### {label}", elem_classes=["sd-settings-section-title"])
                    for info in infos:
                        if info.key in REFRESHABLE:
                            with gr.Row(equal_height=True):
                                components[info.key] = _make(_spec_for(engine, info.key), f"setting_{info.key}",
                                                             ["sd-setting"])
                                refresh_buttons[info.key] = gr.Button("🔄", elem_id=f"refresh_{info.key}",
                                                                      scale=0, min_width=40, elem_classes=["tool"])
                        else:
                            components[info.key] = _make(_spec_for(engine, info.key), f"setting_{info.key}",
                                                         ["sd-setting"])
        shown = gr.State({k: current_value(engine, k) for k in components})
    tab = SettingsTab(engine, components, shown, submit, result, refresh_buttons)

    event = submit.click(tab.apply, inputs=[shown, *components.values()], outputs=[result, *tab.outputs])
    if quicksettings is not None and quicksettings.components:
        event.then(quicksettings.sync, inputs=None, outputs=quicksettings.outputs, show_progress="hidden")
    for key, button in refresh_buttons.items():
        button.click(_refresher(engine, key), inputs=None, outputs=[components[key]], show_progress="hidden")
    _on_page_load(tab.sync, tab.outputs)
    return tab


def _refresher(engine: Engine, key: str) -> Callable[[], Any]:
    def refresh() -> Any:
        _refresh(engine, key)
        return _update_for(engine, key)
    return refresh


# --- quicksettings ------------------------------------------------------------------------------------------


def _status_html(text: str, *, error: bool = False, busy: bool = False) -> str:
    if not text:
        return ""
    cls = "sd-quick-status" + (" sd-quick-error" if error else "") + (" sd-quick-busy" if busy else "")
    return f'<span class="{cls}">{html.escape(text)}</span>'


@dataclass
class Quicksettings:
    engine: Engine
    components: dict[str, Any]  # key -> control (elem_id setting_<key>)
    status: Any  # gr.HTML (quicksettings_status)
    refresh_buttons: dict[str, Any]  # refresh_sd_model_checkpoint, refresh_sd_vae
    sync_button: Any  # hidden (quicksettings_sync); javascript/quicksettings.js clicks it

    @property
    def outputs(self) -> list:
        return list(self.components.values())

    def sync(self) -> list:
        """Event fn (outputs ``self.outputs``): every quick control from the current options, e.g. after the
        extra-networks checkpoint card loaded another model."""
        return [_update_for(self.engine, key) for key in self.components]

    def change(self, key: str, value: Any) -> Iterator[tuple[Any, Any]]:
        """Event fn (outputs ``[control, status]``, a generator): apply one quick setting at once.

        A checkpoint or VAE first shows "Loading NAME…"; on failure the reason is shown and the control goes
        back to what is loaded."""
        import gradio as gr

        engine = self.engine
        info = engine.options.info(key)
        if key in MODEL_KEYS and value not in (None, ""):
            try:  # the name as it will be stored: a control may fire again with the value it was just given
                target = settings_changes.check_setting(engine, key, from_component_value(info, value), field=key,
                                                    exact_checkpoint_name=True)
            except ValueError:  # RequestError too; reported below
                target = value
            if target != engine.options.get(key):
                what = "VAE " if key == "sd_vae" else ""
                yield gr.update(), _status_html(f"Loading {what}{target}…", busy=True)
        result = apply_settings(engine, {key: value})
        if key in result.errors:
            reason = result.errors[key]
            text = f"Could not load {value}: {reason}" if key in MODEL_KEYS else f"{info.label or key}: {reason}"
            log.warning("quicksettings: %s", text)
            yield _update_for(engine, key), _status_html(text, error=True)
            return
        if key in result.changed and key == "sd_model_checkpoint":
            loaded = getattr(engine, "checkpoint_info", None)
            status = _status_html(f"Loaded {loaded.title if loaded is not None else value}")
        elif key in result.changed and key == "sd_vae":
            status = _status_html(f"VAE: {value}")
        elif key in result.needs_restart:
            status = _status_html(f"{info.label or key}: {RESTART_NOTE}")
        elif key in result.changed:
            status = ""
        else:  # nothing to do (the control also fires for the value it already had): keep the last message
            status = gr.update()
        yield _update_for(engine, key), status

    def refresh(self, key: str) -> Any:
        """Event fn of a 🔄 button: re-scan the files, return the control's update."""
        _refresh(self.engine, key)
        return _update_for(self.engine, key)


def _quick_handler(quick: Quicksettings, key: str) -> Callable[[Any], Iterator[tuple[Any, Any]]]:
    def handler(value: Any) -> Iterator[tuple[Any, Any]]:
        yield from quick.change(key, value)
    return handler


def create_quicksettings(engine: Engine) -> Quicksettings:
    """Build the top bar inside the caller's open ``gr.Row`` (elem_id ``quicksettings``)."""
    import gradio as gr

    components: dict[str, Any] = {}
    refresh_buttons: dict[str, Any] = {}
    for key in quicksettings_keys(engine):
        spec = _spec_for(engine, key)
        spec = ComponentSpec(spec.kind, {**spec.kwargs, "info": None})  # the bar stays one line high
        components[key] = _make(spec, f"setting_{key}", ["sd-quicksetting"])
        if key in REFRESHABLE:
            refresh_buttons[key] = gr.Button("🔄", elem_id=f"refresh_{key}", scale=0, min_width=40,
                                             elem_classes=["tool"])
    status = gr.HTML("", elem_id="quicksettings_status", head=head_html(QUICKSETTINGS_JS), apply_default_css=False)
    sync_button = gr.Button("sync", elem_id="quicksettings_sync", visible="hidden")
    quick = Quicksettings(engine, components, status, refresh_buttons, sync_button)

    for key, comp in components.items():
        spec = _spec_for(engine, key)
        kind = "single dropdown" if spec.kind == "dropdown" and not spec.kwargs.get("multiselect") else spec.kind
        handler = _quick_handler(quick, key)
        # Gradio 6's single-choice dropdown fires ``input`` twice for one pick (when the option is chosen, and
        # again on the blur that follows), which loaded a checkpoint twice. Its ``blur`` comes once per pick, by
        # mouse or keyboard, and a blur that changed nothing is a no-op in ``change``.
        triggers = ([comp.release] if kind == "slider" else [comp.submit, comp.blur] if kind in ("number", "textbox")
                    else [comp.blur] if kind == "single dropdown" else [comp.input])
        gr.on(triggers, handler, inputs=[comp], outputs=[comp, status], show_progress="minimal")
    for key, button in refresh_buttons.items():
        button.click(_refresher(engine, key), inputs=None, outputs=[components[key]], show_progress="hidden")
    if components:
        sync_button.click(quick.sync, inputs=None, outputs=quick.outputs, show_progress="hidden")
        _on_page_load(quick.sync, quick.outputs)
    return quick


__all__ = [
    "ApplyResult", "ComponentSpec", "DYNAMIC_CHOICES", "Quicksettings", "SettingsTab", "apply_settings",
    "component_spec", "create_quicksettings", "create_settings_tab", "current_value", "error_text",
    "from_component_value", "option_choices", "quicksettings_keys", "settings_sections",
]
