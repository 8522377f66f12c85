"""The scripts part of the txt2img / img2img tabs: always-on scripts in accordions, the "Script" dropdown and
the selected script's controls (A1111's layout; ids ``<tab>_script_container`` and ``script_list``).

Call :func:`create_scripts_ui` inside an open ``gr.Column``; pass ``ScriptsUI.inputs`` to the Generate event
(after the tab's own inputs) and turn their values into request fields with ``ScriptsUI.request_fields``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gradio as gr

from modules.scripting.scripts import Script, ScriptRunner, title_of

if TYPE_CHECKING:
    from modules.scripting.host import ScriptHost

NONE = "None"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_]", "", text.lower().replace(" ", "_"))


@dataclass
class ScriptsUI:
    runner: ScriptRunner
    dropdown: Any
    inputs: list[Any]  # [Script dropdown, every script's controls...] in the runner's argument order
    groups: dict[str, Any] = field(default_factory=dict)  # selectable script title -> its gr.Group

    def request_fields(self, values: list[Any]) -> dict[str, Any]:
        """``{"script_name", "script_args", "alwayson_scripts"}`` for a GenerationRequest from ``inputs``' values."""
        return request_fields(self.runner, list(values))


def request_fields(runner: ScriptRunner, values: list[Any]) -> dict[str, Any]:
    """The request fields of the flat values list (index 0: the dropdown's title or "None")."""
    title = values[0] if values else None
    selected = runner.find(str(title), runner.selectable_scripts) if title and title != NONE else None
    alwayson = {title_of(s): {"args": list(values[s.args_from:s.args_to])}
                for s in runner.alwayson_scripts if s.args_from is not None}
    return {"script_name": title_of(selected) if selected is not None else None,
            "script_args": list(values[selected.args_from:selected.args_to]) if selected is not None else [],
            "alwayson_scripts": alwayson}


def visibility_updates(titles: list[str], selected: str | None) -> list[Any]:
    """One ``gr.update(visible=...)`` per selectable script: only the selected one shows."""
    return [gr.update(visible=(t == selected)) for t in titles]


def create_scripts_ui(host: "ScriptHost", is_img2img: bool, sections: dict[str, Any] | None = None) -> ScriptsUI:
    """``sections``: blocks of the tab where always-on scripts with that ``section`` go (A1111's "inpaint")."""
    runner = host.scripts.runner(is_img2img)
    sections = sections or {}
    tab = "img2img" if is_img2img else "txt2img"
    titles = runner.titles()
    groups: dict[str, Any] = {}
    made: dict[str, Any] = {}

    def build(script: Script) -> list | None:
        title = title_of(script)
        section = sections.get(getattr(script, "section", None)) if script.alwayson else None
        if section is not None:
            with section, gr.Group(elem_id=f"{tab}_script_{_slug(title)}") as box:
                controls = script.ui(is_img2img)
        elif script.alwayson:
            with gr.Accordion(title, open=False, elem_id=f"{tab}_script_{_slug(title)}") as box:
                controls = script.ui(is_img2img)
        else:
            with gr.Group(visible=False, elem_id=f"{tab}_script_{_slug(title)}") as box:
                controls = script.ui(is_img2img)
            groups[title] = box
        script.group = box
        return controls

    def dropdown() -> None:
        made["dropdown"] = gr.Dropdown(label="Script", choices=[NONE, *titles], value=NONE, elem_id="script_list",
                                       type="value")

    with gr.Column(elem_id=f"{tab}_script_container"):
        runner.layout(build, dropdown)
    menu = made["dropdown"]
    group_titles = list(groups)
    if group_titles:
        menu.change(lambda title: visibility_updates(group_titles, title), inputs=[menu],
                    outputs=[groups[t] for t in group_titles], queue=False, api_visibility="private")
    inputs = [menu, *runner.inputs[1:]]
    return ScriptsUI(runner, menu, inputs, groups)
