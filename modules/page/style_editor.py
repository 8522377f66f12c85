"""A1111's style editor (🖌️ by the Styles dropdown): pick or name a style, edit its prompt pair, save or delete it.

``styles.csv`` is written atomically by ``engine.styles``; every tab's Styles dropdown gets the new list, the
editor closes on a save and the tab's log line says what happened.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import gradio as gr

if TYPE_CHECKING:
    from modules.engine.engine import Engine


@dataclass
class StyleEditor:
    group: gr.Group
    name: gr.Dropdown
    prompt: gr.Textbox
    negative: gr.Textbox
    copy: gr.Button  # ↙️ main prompts into the editor
    apply: gr.Button  # ↗️ the editor's prompts into the main prompts
    save: gr.Button
    delete: gr.Button
    close: gr.Button


def create(engine: "Engine", tab: str) -> StyleEditor:
    """The editor's controls, hidden until 🖌️ opens it (inside the prompt row's tools column)."""
    with gr.Group(visible=False, elem_id=f"{tab}_style_editor", elem_classes=["sd-style-editor"]) as group:
        with gr.Row():
            name = gr.Dropdown(label="Style", choices=list(engine.styles.styles), value="", allow_custom_value=True,
                               elem_id=f"{tab}_style_name", scale=3)
            copy = gr.Button("↙️", elem_id=f"{tab}_style_copy", elem_classes=["sd-tool"], scale=0, min_width=40)
            apply = gr.Button("↗️", elem_id=f"{tab}_style_apply_to_prompt", elem_classes=["sd-tool"], scale=0,
                              min_width=40)
        prompt = gr.Textbox(label="Prompt", lines=2, elem_id=f"{tab}_edit_style_prompt")
        negative = gr.Textbox(label="Negative prompt", lines=2, elem_id=f"{tab}_edit_style_neg_prompt")
        with gr.Row():
            delete = gr.Button("🗑️ Delete", elem_id=f"{tab}_style_delete", variant="stop", size="sm")
            save = gr.Button("Save", elem_id=f"{tab}_style_save", variant="primary", size="sm")
            close = gr.Button("Close", elem_id=f"{tab}_style_close", size="sm")
    return StyleEditor(group, name, prompt, negative, copy, apply, save, delete, close)


def save_style(engine: "Engine", name: str, prompt: str, negative: str) -> tuple[list[str], str, bool]:
    """Save the prompt pair as style ``name``: (style names, message, saved)."""
    name = (name or "").strip()
    if not name:
        return list(engine.styles.styles), "Style: give it a name first", False
    try:
        engine.styles.set_style(name, prompt or "", negative or "")
        engine.styles.save_styles()
    except (ValueError, OSError) as exc:
        return list(engine.styles.styles), f"Style {name!r} not saved: {exc}", False
    return list(engine.styles.styles), f"Saved style {name!r}", True


def delete_style(engine: "Engine", name: str) -> tuple[list[str], str, bool]:
    name = (name or "").strip()
    if name not in engine.styles.styles:
        return list(engine.styles.styles), f"Style {name!r} does not exist", False
    try:
        engine.styles.delete_style(name)
        engine.styles.save_styles()
    except (ValueError, OSError) as exc:
        return list(engine.styles.styles), f"Style {name!r} not deleted: {exc}", False
    return list(engine.styles.styles), f"Deleted style {name!r}", True


def connect(engine: "Engine", tabs: Sequence[Any], log_html: Any) -> None:
    """Wire each tab's editor; ``tabs``: GenerationTabs (``.styles``, ``.prompt``, ``.style_editor`` ...);
    ``log_html(messages)`` renders the tab's log line."""
    dropdowns = [t.styles for t in tabs]
    names = [t.style_editor.name for t in tabs]

    def style_of(name):
        style = engine.styles.styles.get((name or "").strip())
        return (style.prompt, style.negative_prompt) if style is not None else None

    for tab in tabs:
        ed: StyleEditor = tab.style_editor

        def open_editor(selected, prompt, negative):
            first = (selected or [None])[0]
            found = style_of(first)
            if found is not None:
                return gr.update(visible=True), gr.update(value=first, choices=list(engine.styles.styles)), *found
            return gr.update(visible=True), gr.update(value="", choices=list(engine.styles.styles)), prompt, negative

        tab.style_edit_button.click(open_editor, inputs=[tab.styles, tab.prompt, tab.negative_prompt],
                                    outputs=[ed.group, ed.name, ed.prompt, ed.negative], queue=False,
                                    api_visibility="private")

        def pick(name):
            found = style_of(name)
            return (gr.update(), gr.update()) if found is None else found

        ed.name.input(pick, inputs=ed.name, outputs=[ed.prompt, ed.negative], queue=False, show_progress="hidden",
                      api_visibility="private")
        ed.copy.click(lambda p, n: (p, n), inputs=[tab.prompt, tab.negative_prompt], outputs=[ed.prompt, ed.negative],
                      queue=False, api_visibility="private")
        ed.apply.click(lambda p, n: (p, n), inputs=[ed.prompt, ed.negative], outputs=[tab.prompt, tab.negative_prompt],
                       queue=False, api_visibility="private")
        ed.close.click(lambda: gr.update(visible=False), outputs=ed.group, queue=False, api_visibility="private")

        def after(result, current_selection):
            choices, message, done = result
            kept = [s for s in (current_selection or []) if s in choices]
            return ([gr.update(choices=choices, value=kept) for _ in dropdowns]
                    + [gr.update(choices=choices) for _ in names]
                    + [gr.update(visible=not done), log_html([message])])

        outputs = [*dropdowns, *names, ed.group, tab.results.log_html]
        ed.save.click(lambda n, p, ng, sel: after(save_style(engine, n, p, ng), sel),
                      inputs=[ed.name, ed.prompt, ed.negative, tab.styles], outputs=outputs, queue=False,
                      api_visibility="private")
        ed.delete.click(lambda n, sel: after(delete_style(engine, n), sel), inputs=[ed.name, tab.styles],
                        outputs=outputs, queue=False, api_visibility="private")
