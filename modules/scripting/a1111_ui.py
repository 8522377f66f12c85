"""A1111's page helpers for extension UIs: ``ui.create_refresh_button``, ``gr_show``, and the paste-parameters
registry of ``generation_parameters_copypaste`` / ``infotext_utils``.

"Send to" buttons that extensions make are real buttons; the bindings they register are recorded per Engine
(``paste_bindings``) for the page. Imported only while a page is built."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger(__name__)

refresh_symbol = "\U0001f504"  # 🔄
save_style_symbol = "\U0001f4be"  # 💾
apply_style_symbol = "\U0001f4cb"  # 📋
clear_prompt_symbol = "\U0001f5d1\ufe0f"  # 🗑️
extra_networks_symbol = "\U0001F3B4"  # 🎴
switch_values_symbol = "\U000021C5"  # ⇅
restore_progress_symbol = "\U0001F300"  # 🌀
detect_image_size_symbol = "\U0001F4D0"  # 📐


def gr_show(visible: bool = True) -> dict[str, Any]:
    return {"visible": visible, "__type__": "update"}


def create_refresh_button(refresh_component: Any, refresh_method: Callable[[], Any],
                          refreshed_args: Any, elem_id: str) -> Any:
    """A 🔄 button that calls ``refresh_method()`` and then updates ``refresh_component`` with
    ``refreshed_args`` (a dict, or a function returning one: new choices, value...)."""
    import gradio as gr

    from modules.scripting.a1111_ui_components import ToolButton

    components = refresh_component if isinstance(refresh_component, list) else [refresh_component]
    label = None
    for comp in components:
        label = getattr(comp, "label", None) or label

    def refresh() -> Any:
        refresh_method()
        args = refreshed_args() if callable(refreshed_args) else refreshed_args
        updates = [gr.update(**(args or {})) for _ in components]
        return updates if len(updates) > 1 else updates[0]

    button = ToolButton(value=refresh_symbol, elem_id=elem_id, tooltip=f"{label}: refresh" if label else "Refresh")
    button.click(fn=refresh, inputs=[], outputs=components)
    return button


def setup_dialog(button_show: Any, dialog: Any, *, button_close: Any = None) -> None:
    """A1111 turns ``dialog`` into a popup; here it is shown in place when the button is pressed."""
    import gradio as gr

    button_show.click(fn=lambda: gr.update(visible=True), inputs=[], outputs=[dialog])
    if button_close is not None:
        button_close.click(fn=lambda: gr.update(visible=False), inputs=[], outputs=[dialog])


# --- paste parameters (generation_parameters_copypaste) ------------------------------------------------

@dataclass
class ParamBinding:
    paste_button: Any
    tabname: str
    source_text_component: Any = None
    source_image_component: Any = None
    source_tabname: str | None = None
    override_settings_component: Any = None
    paste_field_names: list[str] = field(default_factory=list)


def _registry() -> dict[str, Any]:
    from modules.scripting import runtime

    engine = runtime.current(required=False)
    if engine is None:
        return {"bindings": [], "paste_fields": {}}
    state = runtime.engine_state(engine)
    return state.setdefault("paste", {"bindings": [], "paste_fields": {}})


def register_paste_params_button(binding: ParamBinding) -> None:
    _registry()["bindings"].append(binding)


def paste_bindings() -> list[ParamBinding]:
    return list(_registry()["bindings"])


def paste_fields() -> dict[str, Any]:
    return _registry()["paste_fields"]


def add_paste_fields(tabname: str, init_img: Any, fields: Any, override_settings_component: Any = None) -> None:
    paste_fields()[tabname] = {"init_img": init_img, "fields": fields,
                               "override_settings_component": override_settings_component}


def create_buttons(tabs_list: list[str]) -> dict[str, Any]:
    """A "Send to <tab>" button per tab name (A1111's ``create_buttons``), made in the current Blocks."""
    import gradio as gr

    buttons = {}
    for tab in tabs_list:
        buttons[tab] = gr.Button(f"Send to {tab}", elem_id=f"{tab}_tab")
    return buttons


def bind_buttons(buttons: dict[str, Any], send_image: Any, send_generate_info: Any) -> None:
    for tabname, button in buttons.items():
        source_text = send_generate_info if not isinstance(send_generate_info, str) else None
        source_tab = send_generate_info if isinstance(send_generate_info, str) else None
        register_paste_params_button(ParamBinding(paste_button=button, tabname=tabname,
                                                  source_text_component=source_text,
                                                  source_image_component=send_image, source_tabname=source_tab))


def image_from_url_text(filedata: Any) -> Any:
    """The image a gallery or file value names (a path, a ``{"name"|"path": ...}`` dict or a data URL)."""
    from PIL import Image

    from modules.core import image_files

    if filedata is None:
        return None
    if isinstance(filedata, list):
        if not filedata:
            return None
        filedata = filedata[0]
    if isinstance(filedata, Image.Image):
        return filedata
    if isinstance(filedata, dict):
        filedata = filedata.get("path") or filedata.get("name") or (filedata.get("image") or {}).get("path")
    if isinstance(filedata, str) and filedata.startswith("data:image/"):
        return image_files.decode_base64_image(filedata)
    if isinstance(filedata, str):
        with Image.open(filedata) as im:
            im.load()
            return im.copy()
    return None


def connect_paste_params_buttons() -> None:
    """A1111 wires the registered bindings once the page is built; this page's own paste buttons do that job,
    so the extensions' ones are recorded only (see module docstring)."""


def save_files(js_data: Any, images: Any, do_make_zip: bool, index: int) -> tuple:
    """A1111's "Save" button: copy the gallery's images (all, or the one at ``index`` >= 0) into the
    ``outdir_save`` folder; answers (the saved files for a gr.File, an HTML line naming the first one)."""
    import shutil
    from pathlib import Path

    import gradio as gr

    from modules.engine.postprocessing import plaintext_to_html
    from modules.scripting import runtime

    engine = runtime.current()
    folder = Path(engine.options.get("outdir_save") or "log/images")
    if not folder.is_absolute():
        folder = Path(engine.paths.data_dir) / folder
    folder.mkdir(parents=True, exist_ok=True)
    items = list(images or [])
    if index is not None and index >= 0 and items:
        items = [items[min(index, len(items) - 1)]]
    saved = []
    for item in items:
        source = item.get("name") or item.get("path") if isinstance(item, dict) else item
        if isinstance(source, (list, tuple)):
            source = source[0]
        if isinstance(source, dict):
            source = source.get("path") or source.get("name")
        if not source or not Path(str(source)).is_file():
            continue
        target = folder / Path(str(source)).name
        shutil.copy2(str(source), target)
        saved.append(str(target))
    message = f"Saved: {Path(saved[0]).name}" if saved else "Nothing saved"
    return gr.update(value=saved or None, visible=bool(saved)), plaintext_to_html(message)
