"""Example extension script (A1111 style): an always-on "Example note" and an "Example" tab.

- ``ExampleNote`` shows in txt2img and img2img as an accordion; when enabled, ``process`` writes
  ``Example note: <text>`` into the infotext of every image (``p.extra_generation_params``).
- ``on_ui_tabs`` adds a top-level "Example" tab; ``on_ui_settings`` adds a setting to the Settings page.
"""
import gradio as gr

from modules import script_callbacks, scripts, shared

INFOTEXT_KEY = "Example note"


class ExampleNote(scripts.Script):
    def title(self):
        return "Example note"

    def show(self, is_img2img):
        return scripts.AlwaysVisible  # always on: rendered in an accordion, hooks run in every generation

    def ui(self, is_img2img):
        # --example-note-default comes from this extension's preload.py.
        default = getattr(getattr(self.engine, "args", None), "example_note_default", None) or ""
        enabled = gr.Checkbox(label="Write a note into the infotext", value=False, elem_id=self.elem_id("enabled"))
        note = gr.Textbox(label="Note", value=default, placeholder="what this picture is for",
                          elem_id=self.elem_id("note"), elem_classes=["example-note"])
        return [enabled, note]  # their values come back as process(p, enabled, note)

    def process(self, p, enabled, note):
        if not enabled or not str(note).strip():
            return
        prefix = p.opts.get("example_note_prefix", "") if p.opts is not None else ""
        p.extra_generation_params[INFOTEXT_KEY] = f"{prefix}{str(note).strip()}"


def on_ui_tabs():
    with gr.Blocks(analytics_enabled=False) as tab:
        gr.Markdown("### Example extension\nThis tab comes from `extensions/sd-webui-example`.",
                    elem_classes=["example-tab-intro"])
        with gr.Row():
            text = gr.Textbox(label="Text", elem_id="example_tab_text")
            reversed_text = gr.Textbox(label="Reversed", elem_id="example_tab_reversed")
        gr.Button("Reverse", elem_id="example_tab_button").click(lambda s: s[::-1], inputs=text, outputs=reversed_text)
    return [(tab, "Example", "example_tab")]


def on_ui_settings():
    # A1111's form: the key, then OptionInfo(default, label, component, component_args, section=(id, title)).
    shared.opts.add_option("example_note_prefix", shared.OptionInfo(
        "", "Example extension: text put before every note", section=("example", "Example extension")))


script_callbacks.on_ui_tabs(on_ui_tabs)
script_callbacks.on_ui_settings(on_ui_settings)
