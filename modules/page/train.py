"""The Train tab, as A1111's: "Create embedding", "Create hypernetwork", "Preprocess images" and "Train".

Only a door: creating goes through ``modules.training.create``, training through ``engine.train`` (one Engine
job), preparing pictures through ``modules.training.preprocess``. While a training runs, the handler streams
the Engine's job state (loss, step, learning rate, ETA) and the latest preview once a second; Interrupt ends
the run after its current step and the file is saved. The ``*_ui`` functions are the handlers without Gradio,
so tests drive them directly.
"""
from __future__ import annotations

import html
import threading
from typing import TYPE_CHECKING, Any, Iterator

import gradio as gr

from modules.core.request import RequestError
from modules.training import create
from modules.training.preprocess import PreprocessParams, preprocess_folder
from modules.training.templates import list_templates
from modules.training.trainer import CLIP_GRAD_MODES, TrainParams

if TYPE_CHECKING:
    from modules.engine.engine import Engine

ACTIVATIONS = ["linear", "relu", "leakyrelu", "elu", "swish", "tanh", "sigmoid", "celu", "gelu", "glu", "hardshrink",
               "hardsigmoid", "hardtanh", "logsigmoid", "logsoftmax", "mish", "prelu", "rrelu", "relu6", "selu",
               "silu", "softmax", "softmax2d", "softmin", "softplus", "softshrink", "softsign", "tanhshrink"]


def _error_html(message: str) -> str:
    return f'<div class="sd-train-error">Error: {html.escape(message)}</div>'


def embedding_names(engine: "Engine") -> list[str]:
    registered, _ = engine.networks.embeddings_report(engine.model is not None)
    return sorted({e.name for e in registered if e.source == "file"}, key=str.lower)


def hypernetwork_names(engine: "Engine") -> list[str]:
    engine.networks.refresh(["hypernet"])
    return sorted({e.name for e in engine.networks.hypernetworks.items()}, key=str.lower)


def template_names(engine: "Engine") -> list[str]:
    return list(list_templates(getattr(engine.args, "textual_inversion_templates_dir", None)))


def create_embedding_ui(engine: "Engine", name: str, init_text: str, nvpt: Any, overwrite: bool) -> str:
    try:
        path = create.create_embedding(engine, name, int(nvpt or 1), bool(overwrite), init_text or "")
    except RequestError as e:
        return _error_html(f"{e.field}: {e.message}")
    return f'<div class="sd-train-ok">Created: {html.escape(str(path))}</div>'


def create_hypernetwork_ui(engine: "Engine", name: str, sizes: list, layer_structure: str, activation: str,
                           weight_init: str, layer_norm: bool, use_dropout: bool, dropout_structure: str,
                           activate_output: bool, overwrite: bool) -> str:
    try:
        path = create.create_hypernetwork(engine, name, [int(s) for s in sizes or []], bool(overwrite), layer_structure,
                                          activation, weight_init, bool(layer_norm), bool(use_dropout),
                                          dropout_structure, bool(activate_output))
    except RequestError as e:
        return _error_html(f"{e.field}: {e.message}")
    return f'<div class="sd-train-ok">Created: {html.escape(str(path))}</div>'


def progress_html(engine: "Engine") -> str:
    state = engine.state
    if not state.active or not state.job.startswith("train_"):
        return ""
    progress, eta = state.progress()
    return (f'<div class="sd-train-progress">{html.escape(state.textinfo or "")}<br>'
            f'{progress * 100:.0f}% · ETA {eta:.0f}s</div>')


def train_ui(engine: "Engine", params: TrainParams, poll: float = 1.0) -> Iterator[tuple[str, Any]]:
    """Runs the training in a thread and yields (status HTML, preview image) while it runs, then the outcome."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = engine.train(params)
        except RequestError as e:
            box["error"] = f"{e.field}: {e.message}"
        except Exception as e:  # noqa: BLE001 - shown to the user; the log has the trace
            import logging

            logging.getLogger(__name__).exception("training failed")
            box["error"] = f"{type(e).__name__}: {e}"

    thread = threading.Thread(target=run, name="train", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(poll)
        if thread.is_alive():
            yield progress_html(engine), engine.state.current_preview
    if "error" in box:
        yield _error_html(box["error"]), None
        return
    result = box["result"]
    last = f"<br>Last loss: {result.last_loss:.6f}" if result.last_loss is not None else ""
    lines = html.escape(result.message).replace("\n", "<br>")
    yield f'<div class="sd-train-ok">{lines}{last}</div>', engine.state.current_preview


def preprocess_ui(engine: "Engine", *args: Any) -> str:
    try:
        report = preprocess_folder(PreprocessParams(*args))
    except RequestError as e:
        return _error_html(f"{e.field}: {e.message}")
    return f'<div class="sd-train-ok">{html.escape(report)}</div>'


def create_train_tab(engine: "Engine") -> dict[str, Any]:
    """Build the tab's contents inside an open ``gr.Tab("Train")``; returns the components by name."""
    c: dict[str, Any] = {}
    width, height = engine.native_size()
    widths = [str(w) for w in create.model_widths(engine)]
    gr.HTML('<p class="sd-train-intro">Train an embedding or hypernetwork against the loaded checkpoint. '
            'The model itself is never changed; only the embedding\'s vectors or the hypernetwork learn.</p>')
    with gr.Tabs(elem_id="train_tabs"):
        with gr.Tab("Create embedding", id="train_create_embedding", elem_id="train_create_embedding_tab"):
            c["new_embedding_name"] = gr.Textbox(label="Name", elem_id="train_new_embedding_name")
            c["initialization_text"] = gr.Textbox(label="Initialization text", value="*", elem_id="train_initialization_text")
            c["nvpt"] = gr.Slider(1, 75, value=1, step=1, label="Number of vectors per token", elem_id="train_nvpt")
            c["overwrite_old_embedding"] = gr.Checkbox(label="Overwrite Old Embedding", elem_id="train_overwrite_old_embedding")
            c["create_embedding"] = gr.Button("Create embedding", variant="primary", elem_id="train_create_embedding")
            c["create_embedding_out"] = gr.HTML(elem_id="train_create_embedding_out")
        with gr.Tab("Create hypernetwork", id="train_create_hypernetwork", elem_id="train_create_hypernetwork_tab"):
            c["new_hypernetwork_name"] = gr.Textbox(label="Name", elem_id="train_new_hypernetwork_name")
            c["new_hypernetwork_sizes"] = gr.CheckboxGroup(widths, value=widths, label="Modules",
                                                           elem_id="train_new_hypernetwork_sizes")
            c["new_hypernetwork_layer_structure"] = gr.Textbox(
                "1, 2, 1", label="Enter hypernetwork layer structure", placeholder="1st and last digit must be 1. ex:'1, 2, 1'",
                elem_id="train_new_hypernetwork_layer_structure")
            c["new_hypernetwork_activation_func"] = gr.Dropdown(ACTIVATIONS, value="linear", label="Select activation function of hypernetwork. Recommended : Swish / Linear(none)",
                                                                elem_id="train_new_hypernetwork_activation_func")
            c["new_hypernetwork_initialization_option"] = gr.Dropdown(
                ["Normal", "KaimingUniform", "KaimingNormal", "XavierUniform", "XavierNormal"], value="Normal",
                label="Select Layer weights initialization. Recommended: Kaiming for relu-like, Xavier for sigmoid-like, Normal otherwise",
                elem_id="train_new_hypernetwork_initialization_option")
            c["new_hypernetwork_add_layer_norm"] = gr.Checkbox(label="Add layer normalization", elem_id="train_new_hypernetwork_add_layer_norm")
            c["new_hypernetwork_use_dropout"] = gr.Checkbox(label="Use dropout", elem_id="train_new_hypernetwork_use_dropout")
            c["new_hypernetwork_dropout_structure"] = gr.Textbox(
                "0, 0, 0", label="Enter hypernetwork Dropout structure (or empty). Recommended : 0~0.35 incrementing sequence: 0, 0.05, 0.15",
                elem_id="train_new_hypernetwork_dropout_structure")
            c["new_hypernetwork_activate_output"] = gr.Checkbox(label="Activate output", elem_id="train_new_hypernetwork_activate_output")
            c["overwrite_old_hypernetwork"] = gr.Checkbox(label="Overwrite Old Hypernetwork", elem_id="train_overwrite_old_hypernetwork")
            c["create_hypernetwork"] = gr.Button("Create hypernetwork", variant="primary", elem_id="train_create_hypernetwork")
            c["create_hypernetwork_out"] = gr.HTML(elem_id="train_create_hypernetwork_out")
        with gr.Tab("Preprocess images", id="train_preprocess", elem_id="train_preprocess_tab"):
            gr.Markdown("Prepare a training folder: pictures are cropped or split to the size, optionally flipped, "
                        "and get a `.txt` caption from their file name or their own `.txt` file. Offline; no captioning model.")
            c["process_src"] = gr.Textbox(label="Source directory", elem_id="train_process_src")
            c["process_dst"] = gr.Textbox(label="Destination directory", elem_id="train_process_dst")
            with gr.Row():
                c["process_width"] = gr.Slider(64, 2048, value=width, step=8, label="Width", elem_id="train_process_width")
                c["process_height"] = gr.Slider(64, 2048, value=height, step=8, label="Height", elem_id="train_process_height")
            c["process_mode"] = gr.Radio(["Auto-sized crop", "Center crop", "Split oversized images", "Resize"],
                                         value="Auto-sized crop", label="Cropping", elem_id="train_process_mode")
            c["process_split_threshold"] = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Split image threshold",
                                                     elem_id="train_process_split_threshold")
            c["process_overlap_ratio"] = gr.Slider(0.0, 0.9, value=0.2, step=0.05, label="Split image overlap ratio",
                                                   elem_id="train_process_overlap_ratio")
            c["process_flip"] = gr.Checkbox(label="Create flipped copies", elem_id="train_process_flip")
            c["process_caption"] = gr.Radio(["Keep .txt captions, else file name", "File name", "None"],
                                            value="Keep .txt captions, else file name", label="Captions",
                                            elem_id="train_process_caption")
            c["run_preprocess"] = gr.Button("Preprocess", variant="primary", elem_id="train_run_preprocess")
            c["preprocess_out"] = gr.HTML(elem_id="train_preprocess_out")
        with gr.Tab("Train", id="train_train", elem_id="train_train_tab"):
            gr.HTML('<p>Train an embedding or Hypernetwork; you must specify a directory with a set of 1:1 ratio '
                    'images (or any size with "Do not resize images" and batch size 1).</p>')
            with gr.Row():
                c["train_embedding_name"] = gr.Dropdown(embedding_names(engine), label="Embedding",
                                                        elem_id="train_embedding", allow_custom_value=True)
                c["train_hypernetwork_name"] = gr.Dropdown(hypernetwork_names(engine), label="Hypernetwork",
                                                           elem_id="train_hypernetwork", allow_custom_value=True)
                c["refresh_lists"] = gr.Button("🔄", elem_id="train_refresh_lists", scale=0, min_width=40)
            with gr.Row():
                c["embedding_learn_rate"] = gr.Textbox("0.005", label="Embedding Learning rate", placeholder="Embedding Learning rate",
                                                       elem_id="train_embedding_learn_rate")
                c["hypernetwork_learn_rate"] = gr.Textbox("0.00001", label="Hypernetwork Learning rate",
                                                          elem_id="train_hypernetwork_learn_rate")
            with gr.Row():
                c["clip_grad_mode"] = gr.Dropdown(list(CLIP_GRAD_MODES), value="disabled", label="Gradient Clipping",
                                                  elem_id="train_clip_grad_mode")
                c["clip_grad_value"] = gr.Textbox("0.1", label="Clip value", elem_id="train_clip_grad_value")
            with gr.Row():
                c["batch_size"] = gr.Number(value=1, precision=0, label="Batch size", elem_id="train_batch_size")
                c["gradient_step"] = gr.Number(value=1, precision=0, label="Gradient accumulation steps", elem_id="train_gradient_step")
            c["dataset_directory"] = gr.Textbox(label="Dataset directory", placeholder="Path to directory with input images",
                                                elem_id="train_dataset_directory")
            c["log_directory"] = gr.Textbox("textual_inversion", label="Log directory", elem_id="train_log_directory")
            templates = template_names(engine)
            c["template_file"] = gr.Dropdown(templates, value="style_filewords.txt" if "style_filewords.txt" in templates else None,
                                             label="Prompt template", elem_id="train_template_file")
            with gr.Row():
                c["training_width"] = gr.Slider(64, 2048, value=width, step=8, label="Width", elem_id="train_training_width")
                c["training_height"] = gr.Slider(64, 2048, value=height, step=8, label="Height", elem_id="train_training_height")
            c["varsize"] = gr.Checkbox(label="Do not resize images", elem_id="train_varsize")
            c["steps"] = gr.Number(value=100000, precision=0, label="Max steps", elem_id="train_steps")
            with gr.Row():
                c["create_image_every"] = gr.Number(value=500, precision=0, label="Save an image to log directory every N steps, 0 to disable",
                                                    elem_id="train_create_image_every")
                c["save_every"] = gr.Number(value=500, precision=0, label="Save a copy of embedding to log directory every N steps, 0 to disable",
                                            elem_id="train_save_embedding_every")
            c["use_weight"] = gr.Checkbox(label="Use PNG alpha channel as loss weight", elem_id="train_use_weight")
            c["save_image_with_stored_embedding"] = gr.Checkbox(True, label="Save images with embedding in PNG chunks",
                                                                elem_id="train_save_image_with_stored_embedding")
            c["preview_from_txt2img"] = gr.Checkbox(label="Make previews from the preview prompt below (instead of the training prompt)",
                                                    elem_id="train_preview_from_txt2img")
            with gr.Row():
                c["preview_prompt"] = gr.Textbox(label="Preview prompt", elem_id="train_preview_prompt")
                c["preview_negative_prompt"] = gr.Textbox(label="Preview negative prompt", elem_id="train_preview_negative_prompt")
            with gr.Row():
                c["shuffle_tags"] = gr.Checkbox(label="Shuffle tags by ',' when creating prompts.", elem_id="train_shuffle_tags")
                c["tag_drop_out"] = gr.Slider(0, 0.95, value=0, step=0.05, label="Drop out tags when creating prompts.",
                                              elem_id="train_tag_drop_out")
            c["latent_sampling_method"] = gr.Radio(["once", "deterministic", "random"], value="once",
                                                   label="Choose latent sampling method", elem_id="train_latent_sampling_method")
            with gr.Row():
                c["interrupt"] = gr.Button("Interrupt", elem_id="train_interrupt_training")
                c["train_hypernetwork"] = gr.Button("Train Hypernetwork", variant="primary", elem_id="train_train_hypernetwork")
                c["train_embedding"] = gr.Button("Train Embedding", variant="primary", elem_id="train_train_embedding")
            with gr.Row():
                c["train_status"] = gr.HTML(elem_id="ti_progress")
                c["train_preview"] = gr.Image(label="Preview", type="pil", interactive=False, elem_id="ti_preview", height=256)
    _connect(engine, c)
    return c


_TRAIN_FIELDS = ("clip_grad_mode", "clip_grad_value", "batch_size", "gradient_step", "dataset_directory", "log_directory",
                 "template_file", "training_width", "training_height", "varsize", "steps", "create_image_every",
                 "save_every", "use_weight", "save_image_with_stored_embedding", "preview_from_txt2img",
                 "preview_prompt", "preview_negative_prompt", "shuffle_tags", "tag_drop_out", "latent_sampling_method")


def params_from_fields(kind: str, name: Any, learn_rate: Any, values: dict[str, Any], native: tuple[int, int]) -> TrainParams:
    def whole(key: str) -> Any:
        v = values[key]
        return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer() else v

    return TrainParams(
        kind=kind, name=str(name or ""), learn_rate=str(learn_rate or ""), batch_size=whole("batch_size"),
        gradient_step=whole("gradient_step"), data_root=str(values["dataset_directory"] or ""),
        log_directory=str(values["log_directory"] or "textual_inversion"),
        training_width=whole("training_width"), training_height=whole("training_height"),
        varsize=bool(values["varsize"]), steps=whole("steps"), clip_grad_mode=values["clip_grad_mode"],
        clip_grad_value=str(values["clip_grad_value"] or ""), shuffle_tags=bool(values["shuffle_tags"]),
        tag_drop_out=float(values["tag_drop_out"] or 0), latent_sampling_method=values["latent_sampling_method"],
        use_weight=bool(values["use_weight"]), create_image_every=whole("create_image_every"),
        save_every=whole("save_every"), template_filename=str(values["template_file"] or ""),
        save_image_with_stored_embedding=bool(values["save_image_with_stored_embedding"]),
        preview_from_txt2img=bool(values["preview_from_txt2img"]), preview_prompt=str(values["preview_prompt"] or ""),
        preview_negative_prompt=str(values["preview_negative_prompt"] or ""),
        preview_width=native[0], preview_height=native[1])


def _connect(engine: "Engine", c: dict[str, Any]) -> None:
    c["create_embedding"].click(
        lambda *a: create_embedding_ui(engine, *a),
        inputs=[c["new_embedding_name"], c["initialization_text"], c["nvpt"], c["overwrite_old_embedding"]],
        outputs=c["create_embedding_out"], api_visibility="private").then(
        lambda: gr.update(choices=embedding_names(engine)), outputs=c["train_embedding_name"], api_visibility="private")
    c["create_hypernetwork"].click(
        lambda *a: create_hypernetwork_ui(engine, *a),
        inputs=[c[k] for k in ("new_hypernetwork_name", "new_hypernetwork_sizes", "new_hypernetwork_layer_structure",
                               "new_hypernetwork_activation_func", "new_hypernetwork_initialization_option",
                               "new_hypernetwork_add_layer_norm", "new_hypernetwork_use_dropout",
                               "new_hypernetwork_dropout_structure", "new_hypernetwork_activate_output",
                               "overwrite_old_hypernetwork")],
        outputs=c["create_hypernetwork_out"], api_visibility="private").then(
        lambda: gr.update(choices=hypernetwork_names(engine)), outputs=c["train_hypernetwork_name"], api_visibility="private")
    c["refresh_lists"].click(
        lambda: (gr.update(choices=embedding_names(engine)), gr.update(choices=hypernetwork_names(engine))),
        outputs=[c["train_embedding_name"], c["train_hypernetwork_name"]], queue=False, api_visibility="private")
    c["run_preprocess"].click(
        lambda *a: preprocess_ui(engine, *a),
        inputs=[c[k] for k in ("process_src", "process_dst", "process_width", "process_height", "process_mode",
                               "process_split_threshold", "process_overlap_ratio", "process_flip", "process_caption")],
        outputs=c["preprocess_out"], api_visibility="private")

    fields = [c[k] for k in _TRAIN_FIELDS]

    def start(kind: str, name: Any, rate: Any, *values: Any) -> Iterator[tuple[str, Any]]:
        params = params_from_fields(kind, name, rate, dict(zip(_TRAIN_FIELDS, values)), engine.native_size())
        yield from train_ui(engine, params)

    c["train_embedding"].click(
        lambda *a: (yield from start("embedding", *a)),
        inputs=[c["train_embedding_name"], c["embedding_learn_rate"], *fields],
        outputs=[c["train_status"], c["train_preview"]], api_visibility="private")
    c["train_hypernetwork"].click(
        lambda *a: (yield from start("hypernetwork", *a)),
        inputs=[c["train_hypernetwork_name"], c["hypernetwork_learn_rate"], *fields],
        outputs=[c["train_status"], c["train_preview"]], api_visibility="private")
    c["interrupt"].click(lambda: engine.state.interrupt(), queue=False, api_visibility="private")
