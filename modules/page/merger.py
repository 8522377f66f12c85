"""The Checkpoint Merger tab, laid out as A1111's (element ids too); the work is ``engine.merge_checkpoints``."""
from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from modules.models import merge

if TYPE_CHECKING:
    from modules.engine.engine import Engine

log = logging.getLogger(__name__)


@dataclass
class MergerTab:
    models: list[gr.Dropdown]  # A, B, C
    merge_button: gr.Button
    result: gr.HTML


def _checkpoint_titles(engine: "Engine") -> list[str]:
    return [info.title for info in engine.available_checkpoints()]


def _vae_choices(engine: "Engine") -> list[str]:
    return ["None", *engine.vaes.names()]


def result_html(message: str, *, error: bool = False) -> str:
    cls = "sd-error" if error else "sd-merge-done"
    return f'<div class="{cls}">{html.escape(message)}</div>'


def run_merge(engine: "Engine", values: dict[str, Any]) -> tuple[str, str]:
    """(result HTML, new checkpoint title or "") for the form's values."""
    recipe = merge.Recipe(
        primary=values.get("primary") or "", secondary=values.get("secondary") or "",
        tertiary=values.get("tertiary") or "", interp_method=values.get("interp_method") or "Weighted sum",
        multiplier=float(values.get("multiplier") or 0.0), save_as_half=bool(values.get("save_as_half")),
        custom_name=values.get("custom_name") or "", checkpoint_format=values.get("checkpoint_format") or "safetensors",
        config_source=values.get("config_source") or "A, B or C", bake_in_vae=values.get("bake_in_vae") or "None",
        discard_weights=values.get("discard_weights") or "", save_metadata=bool(values.get("save_metadata", True)),
        add_merge_recipe=bool(values.get("add_merge_recipe", True)),
        copy_metadata_fields=bool(values.get("copy_metadata_fields", True)),
        metadata_json=values.get("metadata_json") or "{}")
    try:
        done = engine.merge_checkpoints(recipe)
    except merge.MergeError as exc:
        return result_html(f"{exc.field}: {exc.reason}", error=True), ""
    except (OSError, ValueError, RuntimeError) as exc:  # a file that cannot be read, no space left ...
        log.exception("checkpoint merge failed")
        return result_html(f"Merge failed: {type(exc).__name__}: {exc}", error=True), ""
    extra = f" (config copied: {done.config.name})" if done.config else ""
    return result_html(f"Checkpoint saved to {done.path}{extra}"), done.title


def selected_metadata(engine: "Engine", names: Any) -> str:
    """The chosen checkpoints' metadata, A then B then C over it, as JSON (A1111's "Read metadata" button)."""
    metadata: dict[str, Any] = {}
    for name in names:
        info = next((i for i in engine.available_checkpoints() if name and name == i.title), None)
        if info is not None:
            metadata.update(info.metadata or {})
    return json.dumps(metadata, indent=4, ensure_ascii=False)


def create_merger_tab(engine: "Engine", quicksettings: Any = None) -> MergerTab:
    """``quicksettings``: the top bar (``.outputs``, ``.sync()``), whose checkpoint list then shows the new file."""
    titles = _checkpoint_titles(engine)
    with gr.Row(equal_height=False, elem_id="modelmerger_row"):
        with gr.Column(variant="compact", elem_id="modelmerger_settings"):
            gr.HTML("<p>A merger of the two checkpoints will be generated in your <b>checkpoint</b> directory.</p>",
                    elem_id="modelmerger_help")
            with gr.Row():
                primary = gr.Dropdown(titles, value=None, label="Primary model (A)", elem_id="modelmerger_primary_model_name")
                secondary = gr.Dropdown(titles, value=None, label="Secondary model (B)", elem_id="modelmerger_secondary_model_name")
                tertiary = gr.Dropdown(titles, value=None, label="Tertiary model (C)", elem_id="modelmerger_tertiary_model_name")
                refresh = gr.Button("🔄", elem_id="modelmerger_refresh_checkpoints", elem_classes=["sd-tool"], scale=0,
                                    min_width=40)
            custom_name = gr.Textbox(label="Custom Name (Optional)", elem_id="modelmerger_custom_name")
            multiplier = gr.Slider(0.0, 1.0, value=0.3, step=0.05, label="Multiplier (M) - set to 0 to get model A",
                                   elem_id="modelmerger_interp_amount")
            interp_method = gr.Radio(list(merge.METHODS), value="Weighted sum", label="Interpolation Method",
                                     elem_id="modelmerger_interp_method")
            with gr.Row():
                checkpoint_format = gr.Radio(["ckpt", "safetensors"], value="safetensors", label="Checkpoint format",
                                             elem_id="modelmerger_checkpoint_format")
                save_as_half = gr.Checkbox(value=False, label="Save as float16", elem_id="modelmerger_save_as_half")
            config_source = gr.Radio(list(merge.CONFIG_SOURCES), value="A, B or C", label="Copy config from",
                                     elem_id="modelmerger_config_method")
            with gr.Accordion("Metadata", open=False, elem_id="modelmerger_metadata_editor"):
                with gr.Row():
                    save_metadata = gr.Checkbox(value=True, label="Save metadata", elem_id="modelmerger_save_metadata")
                    add_merge_recipe = gr.Checkbox(value=True, label="Add merge recipe metadata",
                                                   elem_id="modelmerger_add_recipe")
                    copy_metadata_fields = gr.Checkbox(value=True, label="Copy metadata from merged models",
                                                       elem_id="modelmerger_copy_metadata")
                metadata_json = gr.TextArea("{}", label="Metadata in JSON format", elem_id="modelmerger_metadata_json")
                read_metadata = gr.Button("Read metadata from selected checkpoints", elem_id="modelmerger_read_metadata")
            with gr.Row():
                bake_in_vae = gr.Dropdown(_vae_choices(engine), value="None", label="Bake in VAE",
                                          elem_id="modelmerger_bake_in_vae")
                refresh_vae = gr.Button("🔄", elem_id="modelmerger_refresh_bake_in_vae", elem_classes=["sd-tool"],
                                        scale=0, min_width=40)
            discard_weights = gr.Textbox(label="Discard weights with matching name",
                                         elem_id="modelmerger_discard_weights")
            merge_button = gr.Button("Merge", variant="primary", elem_id="modelmerger_merge")
        with gr.Column(variant="compact", elem_id="modelmerger_results_container"):
            result = gr.HTML(elem_id="modelmerger_result")

    models = [primary, secondary, tertiary]

    def refreshed():
        engine.refresh_checkpoints()
        return [gr.update(choices=_checkpoint_titles(engine)) for _ in models]

    refresh.click(refreshed, outputs=models, queue=False, api_visibility="private")
    refresh_vae.click(lambda: (engine.vaes.refresh(), gr.update(choices=_vae_choices(engine)))[1],
                      outputs=bake_in_vae, queue=False, api_visibility="private")

    names = ["primary", "secondary", "tertiary", "interp_method", "multiplier", "save_as_half", "custom_name",
             "checkpoint_format", "config_source", "bake_in_vae", "discard_weights", "save_metadata", "add_merge_recipe",
             "copy_metadata_fields", "metadata_json"]
    inputs = [primary, secondary, tertiary, interp_method, multiplier, save_as_half, custom_name, checkpoint_format,
              config_source, bake_in_vae, discard_weights, save_metadata, add_merge_recipe, copy_metadata_fields,
              metadata_json]
    read_metadata.click(lambda *names: selected_metadata(engine, names), inputs=models, outputs=metadata_json,
                        queue=False, api_visibility="private")

    top = list(quicksettings.outputs) if quicksettings is not None else []

    def on_merge(*values):
        message, _ = run_merge(engine, dict(zip(names, values)))
        choices = _checkpoint_titles(engine)
        synced = quicksettings.sync() if quicksettings is not None else []
        return [message, *[gr.update(choices=choices) for _ in models], *synced]

    merge_button.click(lambda: result_html("Merging…"), outputs=result, queue=False, api_visibility="private").then(
        on_merge, inputs=inputs, outputs=[result, *models, *top], api_visibility="private")
    return MergerTab(models, merge_button, result)
