"""Settings (A1111's ``config.json``): typed option definitions, validation, atomic storage.

``OPTION_TABLE`` lists the built-in options with A1111 v1.10.1's keys, defaults, labels and
sections. An ``Options`` object holds the values of one settings file; there is no
module-level instance. Extensions add their own options with :meth:`Options.add_option`.

Loading is forgiving: a value of the wrong type (or out of range, or not among the choices)
falls back to the default with a warning naming the key; keys nobody registered are kept
and written back unchanged. Setting is strict: a bad value raises ``ValueError`` naming the
key and the reason.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import threading
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping, Sequence

from modules.core import fileio

log = logging.getLogger(__name__)

Choices = Sequence[Any] | Callable[[], Sequence[Any]] | None
_MISSING = object()


@dataclass(frozen=True)
class OptionInfo:
    key: str
    default: Any
    label: str = ""
    section: tuple[str | None, str] = (None, "Hidden options")
    choices: Choices = None  # a list, or a callable giving the current list (not checked when loading)
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    infotext: str | None = None  # infotext field that maps to this setting
    comment: str = ""  # a line of help under the control
    multiselect: bool = False  # the value is a list of choices
    restricted: bool = False  # a folder/filename setting (A1111 hides these with --hide-ui-dir-config)
    # Read only while the page is built or the program starts: a change shows after a restart
    # (A1111's needs_reload_ui / needs_restart; here the page is built once per start).
    needs_restart: bool = False

    @property
    def kind(self) -> type | None:
        """The value type, from the default (None: any string or None)."""
        return None if self.default is None else type(self.default)

    def current_choices(self) -> list | None:
        if self.choices is None:
            return None
        return list(self.choices() if callable(self.choices) else self.choices)


def _o(key: str, default: Any, label: str, **kw) -> OptionInfo:
    return OptionInfo(key, default, label, **kw)


def _section(section_id: str | None, label: str, *infos: OptionInfo) -> list[OptionInfo]:
    return [dataclasses.replace(i, section=(section_id, label)) for i in infos]


# What modules/images.py writes (A1111 takes any extension PIL knows; AVIF would need a plugin here).
_IMAGE_FORMATS = ["png", "jpg", "jpeg", "webp"]
_OUTPUTS = "outputs"

OPTION_TABLE: tuple[OptionInfo, ...] = tuple([
    *_section("saving-images", "Saving images/grids",
        _o("samples_save", True, "Always save all generated images"),
        _o("samples_format", "png", "File format for images", choices=_IMAGE_FORMATS),
        _o("samples_filename_pattern", "", "Images filename pattern", restricted=True),
        _o("save_images_add_number", True, "Add number to filename when saving"),
        _o("save_images_replace_action", "Replace", "Saving the image to an existing file",
           choices=["Replace", "Add number suffix"]),
        _o("grid_save", True, "Always save all generated image grids"),
        _o("grid_format", "png", "File format for grids", choices=_IMAGE_FORMATS),
        _o("grid_extended_filename", False, "Add extended info (seed, prompt) to filename when saving grid"),
        _o("grid_only_if_multiple", True, "Do not save grids consisting of one picture"),
        _o("grid_prevent_empty_spots", False, "Prevent empty spots in grid (when set to autodetect)"),
        _o("grid_zip_filename_pattern", "", "Archive filename pattern"),
        _o("n_rows", -1, "Grid row count; use -1 for autodetect and 0 for it to be same as batch size",
           minimum=-1, maximum=16, step=1),
        _o("font", "", "Font for image grids that have text"),
        _o("grid_text_active_color", "#000000", "Text color for image grids"),
        _o("grid_text_inactive_color", "#999999", "Inactive text color for image grids"),
        _o("grid_background_color", "#ffffff", "Background color for image grids"),
        _o("save_images_before_face_restoration", False, "Save a copy of image before doing face restoration."),
        _o("save_images_before_highres_fix", False, "Save a copy of image before applying highres fix."),
        _o("save_images_before_color_correction", False, "Save a copy of image before applying color correction to img2img results"),
        _o("save_mask", False, "For inpainting, save a copy of the greyscale mask"),
        _o("save_mask_composite", False, "For inpainting, save a masked composite"),
        _o("jpeg_quality", 80, "Quality for saved jpeg and avif images", minimum=1, maximum=100, step=1),
        _o("webp_lossless", False, "Use lossless compression for webp images"),
        _o("export_for_4chan", True, "Save copy of large images as JPG"),
        _o("img_downscale_threshold", 4.0, "File size limit for the above option, MB"),
        _o("target_side_length", 4000.0, "Width/height limit for the above option, in pixels"),
        _o("img_max_size_mp", 200.0, "Maximum image size", comment="in megapixels"),
        _o("use_original_name_batch", True, "Use original name for output filename during batch process in extras tab"),
        _o("use_upscaler_name_as_suffix", False, "Use upscaler name as filename suffix in the extras tab"),
        _o("save_selected_only", True, "When using 'Save' button, only save a single selected image"),
        _o("save_write_log_csv", True, "Write log.csv when saving images using 'Save' button"),
        _o("save_init_img", False, "Save init images when using img2img"),
        _o("temp_dir", "", "Directory for temporary images; leave empty for default", restricted=True),
        _o("clean_temp_dir_at_start", False, "Cleanup non-default temporary directory when starting webui", restricted=True),
        _o("save_incomplete_images", False, "Save incomplete images"),
        _o("notification_audio", True, "Play notification sound after image generation"),
        _o("notification_volume", 100, "Notification sound volume", minimum=0, maximum=100, step=1),
    ),
    *_section("saving-paths", "Paths for saving",
        _o("outdir_samples", "", "Output directory for images; if empty, defaults to three directories below", restricted=True),
        _o("outdir_txt2img_samples", f"{_OUTPUTS}/txt2img-images", "Output directory for txt2img images", restricted=True),
        _o("outdir_img2img_samples", f"{_OUTPUTS}/img2img-images", "Output directory for img2img images", restricted=True),
        _o("outdir_extras_samples", f"{_OUTPUTS}/extras-images", "Output directory for images from extras tab", restricted=True),
        _o("outdir_grids", "", "Output directory for grids; if empty, defaults to two directories below", restricted=True),
        _o("outdir_txt2img_grids", f"{_OUTPUTS}/txt2img-grids", "Output directory for txt2img grids", restricted=True),
        _o("outdir_img2img_grids", f"{_OUTPUTS}/img2img-grids", "Output directory for img2img grids", restricted=True),
        _o("outdir_save", "log/images", "Directory for saving images using the Save button", restricted=True),
        _o("outdir_init_images", f"{_OUTPUTS}/init-images", "Directory for saving init images when using img2img", restricted=True),
    ),
    *_section("saving-to-dirs", "Saving to a directory",
        _o("save_to_dirs", True, "Save images to a subdirectory"),
        _o("grid_save_to_dirs", True, "Save grids to a subdirectory"),
        _o("use_save_to_dirs_for_ui", False, "When using \"Save\" button, save images to a subdirectory"),
        _o("directories_filename_pattern", "[date]", "Directory name pattern", restricted=True),
        _o("directories_max_prompt_words", 8, "Max prompt words for [prompt_words] pattern", minimum=1, maximum=20, step=1),
    ),
    *_section("sd", "Stable Diffusion",
        _o("sd_model_checkpoint", None, "Stable Diffusion checkpoint", infotext="Model hash"),
        _o("sd_checkpoints_limit", 1, "Maximum number of checkpoints loaded at the same time", minimum=1, maximum=10, step=1),
        _o("sd_checkpoints_keep_in_cpu", True, "Only keep one model on device"),
        _o("sd_checkpoint_cache", 0, "Checkpoints to cache in RAM", minimum=0, maximum=10, step=1),
        _o("sd_unet", "Automatic", "SD Unet"),
        _o("enable_quantization", False, "Enable quantization in K samplers for sharper and cleaner results. This may change existing seeds"),
        _o("emphasis", "Original", "Emphasis mode", choices=["None", "Ignore", "Original", "No norm"], infotext="Emphasis"),
        _o("enable_batch_seeds", True, "Make K-diffusion samplers produce same images in a batch as when making a single image"),
        _o("comma_padding_backtrack", 20, "Prompt word wrap length limit", minimum=0, maximum=74, step=1),
        _o("sdxl_clip_l_skip", False, "Clip skip SDXL", comment="Enable Clip skip for the secondary clip model in sdxl"),
        _o("CLIP_stop_at_last_layers", 1, "Clip skip", minimum=1, maximum=12, step=1, infotext="Clip skip"),
        _o("upcast_attn", False, "Upcast cross attention layer to float32"),
        _o("randn_source", "GPU", "Random number generator source.", choices=["GPU", "CPU", "NV"], infotext="RNG"),
        _o("tiling", False, "Tiling", infotext="Tiling"),
        _o("hires_fix_refiner_pass", "second pass", "Hires fix: which pass to enable refiner for",
           choices=["first pass", "second pass", "both passes"], infotext="Hires refiner"),
        _o("enable_prompt_comments", True, "Enable comments",
           comment="Use # anywhere in the prompt to hide the text between # and the end of the line from the generation."),
    ),
    *_section("sdxl", "Stable Diffusion XL",
        _o("sdxl_crop_top", 0, "crop top coordinate"),
        _o("sdxl_crop_left", 0, "crop left coordinate"),
        _o("sdxl_refiner_low_aesthetic_score", 2.5, "SDXL low aesthetic score", comment="used for refiner model negative prompt"),
        _o("sdxl_refiner_high_aesthetic_score", 6.0, "SDXL high aesthetic score", comment="used for refiner model prompt"),
    ),
    *_section("vae", "VAE",
        _o("sd_vae_checkpoint_cache", 0, "VAE Checkpoints to cache in RAM", minimum=0, maximum=10, step=1),
        _o("sd_vae", "Automatic", "SD VAE", infotext="VAE"),
        _o("sd_vae_overrides_per_model_preferences", True, "Selected VAE overrides per-model preferences"),
        _o("auto_vae_precision_bfloat16", False, "Automatically convert VAE to bfloat16"),
        _o("auto_vae_precision", True, "Automatically revert VAE to 32-bit floats"),
        _o("sd_vae_encode_method", "Full", "VAE type for encode", choices=["Full", "TAESD"], infotext="VAE Encoder"),
        _o("sd_vae_decode_method", "Full", "VAE type for decode", choices=["Full", "TAESD"], infotext="VAE Decoder"),
    ),
    *_section("img2img", "img2img",
        _o("inpainting_mask_weight", 1.0, "Inpainting conditioning mask strength", minimum=0.0, maximum=1.0, step=0.01,
           infotext="Conditional mask weight"),
        _o("initial_noise_multiplier", 1.0, "Noise multiplier for img2img", minimum=0.0, maximum=1.5, step=0.001,
           infotext="Noise multiplier"),
        _o("img2img_extra_noise", 0.0, "Extra noise multiplier for img2img and hires fix", minimum=0.0, maximum=1.0, step=0.01,
           infotext="Extra noise"),
        _o("img2img_color_correction", False, "Apply color correction to img2img results to match original colors."),
        _o("img2img_fix_steps", False, "With img2img, do exactly the amount of steps the slider specifies."),
        _o("img2img_background_color", "#ffffff", "With img2img, fill transparent parts of the input image with this color."),
        _o("img2img_editor_height", 720, "Height of the image editor", minimum=80, maximum=1600, step=1, needs_restart=True),
        _o("img2img_sketch_default_brush_color", "#ffffff", "Sketch initial brush color"),
        _o("img2img_inpaint_mask_brush_color", "#ffffff", "Inpaint mask brush color"),
        _o("img2img_inpaint_sketch_default_brush_color", "#ffffff", "Inpaint sketch initial brush color"),
        _o("return_mask", False, "For inpainting, include the greyscale mask in results for web"),
        _o("return_mask_composite", False, "For inpainting, include masked composite in results for web"),
        _o("img2img_batch_show_results_limit", 32, "Show the first N batch img2img results in UI", minimum=-1, maximum=1000, step=1),
        _o("overlay_inpaint", True, "Overlay original for inpaint"),
    ),
    *_section("optimizations", "Optimizations",
        _o("cross_attention_optimization", "Automatic", "Cross attention optimization"),
        _o("s_min_uncond", 0.0, "Negative Guidance minimum sigma", minimum=0.0, maximum=15.0, step=0.01, infotext="NGMS"),
        _o("s_min_uncond_all", False, "Negative Guidance minimum sigma all steps", infotext="NGMS all steps"),
        _o("token_merging_ratio", 0.0, "Token merging ratio", minimum=0.0, maximum=0.9, step=0.1, infotext="Token merging ratio"),
        _o("token_merging_ratio_img2img", 0.0, "Token merging ratio for img2img", minimum=0.0, maximum=0.9, step=0.1),
        _o("token_merging_ratio_hr", 0.0, "Token merging ratio for high-res pass", minimum=0.0, maximum=0.9, step=0.1,
           infotext="Token merging ratio hr"),
        _o("pad_cond_uncond", False, "Pad prompt/negative prompt", infotext="Pad conds"),
        _o("pad_cond_uncond_v0", False, "Pad prompt/negative prompt (v0)", infotext="Pad conds v0"),
        _o("persistent_cond_cache", True, "Persistent cond cache"),
        _o("batch_cond_uncond", True, "Batch cond/uncond"),
        _o("fp8_storage", "Disable", "FP8 weight", choices=["Disable", "Enable for SDXL", "Enable"]),
        _o("cache_fp16_weight", False, "Cache FP16 weight for LoRA"),
    ),
    *_section("compatibility", "Compatibility",
        _o("auto_backcompat", True, "Automatic backward compatibility"),
        _o("use_old_emphasis_implementation", False, "Use old emphasis implementation. Can be useful to reproduce old seeds."),
        _o("use_old_karras_scheduler_sigmas", False, "Use old karras scheduler sigmas (0.1 to 10)."),
        _o("no_dpmpp_sde_batch_determinism", False, "Do not make DPM++ SDE deterministic across different batch sizes."),
        _o("use_old_hires_fix_width_height", False, "For hires fix, use width/height sliders to set final resolution rather than first pass"),
        _o("hires_fix_use_firstpass_conds", False, "For hires fix, calculate conds of second pass using extra networks of first pass."),
        _o("use_old_scheduling", False, "Use old prompt editing timelines.", infotext="Old prompt editing timelines"),
        _o("use_downcasted_alpha_bar", False, "Downcast model alphas_cumprod to fp16 before sampling. For reproducing old seeds.",
           infotext="Downcast alphas_cumprod"),
        _o("refiner_switch_by_sample_steps", False, "Switch to refiner by sampling steps instead of model timesteps.",
           infotext="Refiner switch by sampling steps"),
    ),
    *_section("extra_networks", "Extra Networks",
        _o("extra_networks_show_hidden_directories", True, "Show hidden directories"),
        _o("extra_networks_dir_button_function", False, "Add a '/' to the beginning of directory buttons"),
        _o("extra_networks_hidden_models", "When searched", "Show cards for models in hidden directories",
           choices=["Always", "When searched", "Never"]),
        _o("extra_networks_default_multiplier", 1.0, "Default multiplier for extra networks", minimum=0.0, maximum=2.0, step=0.01),
        _o("extra_networks_card_width", 0, "Card width for Extra Networks"),
        _o("extra_networks_card_height", 0, "Card height for Extra Networks"),
        _o("extra_networks_card_text_scale", 1.0, "Card text scale", minimum=0.0, maximum=2.0, step=0.01),
        _o("extra_networks_card_show_desc", True, "Show description on card"),
        _o("extra_networks_card_description_is_html", False, "Treat card description as HTML"),
        _o("extra_networks_card_order_field", "Path", "Default order field for Extra Networks cards",
           choices=["Path", "Name", "Date Created", "Date Modified"]),
        _o("extra_networks_card_order", "Ascending", "Default order for Extra Networks cards", choices=["Ascending", "Descending"]),
        _o("extra_networks_tree_view_style", "Dirs", "Extra Networks directory view style", choices=["Tree", "Dirs"]),
        _o("extra_networks_tree_view_default_enabled", True, "Show the Extra Networks directory view by default"),
        _o("extra_networks_tree_view_default_width", 180.0, "Default width for the Extra Networks directory tree view"),
        _o("extra_networks_add_text_separator", " ", "Extra networks separator"),
        _o("ui_extra_networks_tab_reorder", "", "Extra networks tab order", needs_restart=True),
        _o("textual_inversion_print_at_load", False, "Print a list of Textual Inversion embeddings when loading model"),
        _o("textual_inversion_add_hashes_to_infotext", True, "Add Textual Inversion hashes to infotext"),
        _o("sd_hypernetwork", "None", "Add hypernetwork to prompt"),
        _o("sd_lora", "None", "Add network to prompt"),
        _o("lora_preferred_name", "Alias from file", "When adding to prompt, refer to Lora by",
           choices=["Alias from file", "Filename"]),
        _o("lora_add_hashes_to_infotext", True, "Add Lora hashes to infotext"),
        _o("lora_bundled_ti_to_infotext", True, "Add Lora name as TI hashes for bundled Textual Inversion"),
        _o("lora_show_all", False, "Always show all networks on the Lora page"),
        _o("lora_hide_unknown_for_versions", [], "Hide networks of unknown versions for model versions",
           choices=["SD1", "SD2", "SDXL"], multiselect=True),
        _o("lora_in_memory_limit", 0, "Number of Lora networks to keep cached in memory", minimum=0, maximum=20, step=1),
        _o("lora_not_found_warning_console", False, "Lora not found warning in console"),
        _o("lora_not_found_gradio_warning", False, "Lora not found warning popup in webui"),
    ),
    *_section("ui_prompt_editing", "Prompt editing",
        _o("keyedit_precision_attention", 0.1, "Precision for (attention:1.1) when editing the prompt with Ctrl+up/down",
           minimum=0.01, maximum=0.2, step=0.001),
        _o("keyedit_precision_extra", 0.05, "Precision for <extra networks:0.9> when editing the prompt with Ctrl+up/down",
           minimum=0.01, maximum=0.2, step=0.001),
        _o("keyedit_delimiters", r".,\/!?%^*;:{}=`~() ", "Word delimiters when editing the prompt with Ctrl+up/down"),
        _o("keyedit_delimiters_whitespace", ["Tab", "Carriage Return", "Line Feed"],
           "Ctrl+up/down whitespace delimiters", choices=["Tab", "Carriage Return", "Line Feed"], multiselect=True),
        _o("keyedit_move", True, "Alt+left/right moves prompt elements"),
        _o("disable_token_counters", False, "Disable prompt token counters"),
        _o("include_styles_into_token_counters", True, "Count tokens of enabled styles"),
    ),
    *_section("ui_gallery", "Gallery",
        _o("return_grid", True, "Show grid in gallery"),
        _o("do_not_show_images", False, "Do not show any images in gallery"),
        _o("js_modal_lightbox", True, "Full page image viewer: enable"),
        _o("js_modal_lightbox_initially_zoomed", True, "Full page image viewer: show images zoomed in by default"),
        _o("js_modal_lightbox_gamepad", False, "Full page image viewer: navigate with gamepad"),
        _o("js_modal_lightbox_gamepad_repeat", 250.0, "Full page image viewer: gamepad repeat period"),
        _o("sd_webui_modal_lightbox_icon_opacity", 1.0, "Full page image viewer: control icon unfocused opacity",
           minimum=0.0, maximum=1.0, step=0.01),
        _o("sd_webui_modal_lightbox_toolbar_opacity", 0.9, "Full page image viewer: tool bar opacity",
           minimum=0.0, maximum=1.0, step=0.01),
        _o("gallery_height", "", "Gallery height"),
        _o("open_dir_button_choice", "Subdirectory", "What directory the [📂] button opens",
           choices=["Output Root", "Subdirectory", "Subdirectory (even temp dir)"]),
    ),
    *_section("ui_alternatives", "UI alternatives",
        _o("compact_prompt_box", False, "Compact prompt layout", needs_restart=True),
        _o("samplers_in_dropdown", True, "Use dropdown for sampler selection instead of radio group", needs_restart=True),
        _o("dimensions_and_batch_together", True, "Show Width/Height and Batch sliders in same row", needs_restart=True),
        _o("sd_checkpoint_dropdown_use_short", False, "Checkpoint dropdown: use filenames without paths", needs_restart=True),
        _o("hires_fix_show_sampler", False, "Hires fix: show hires checkpoint and sampler selection", needs_restart=True),
        _o("hires_fix_show_prompts", False, "Hires fix: show hires prompt and negative prompt", needs_restart=True),
        _o("txt2img_settings_accordion", False, "Settings in txt2img hidden under Accordion", needs_restart=True),
        _o("img2img_settings_accordion", False, "Settings in img2img hidden under Accordion", needs_restart=True),
        _o("interrupt_after_current", True, "Don't Interrupt in the middle"),
    ),
    *_section("ui", "User interface",
        _o("localization", "None", "Localization", needs_restart=True),
        _o("quicksettings_list", ["sd_model_checkpoint", "sd_vae"], "Quicksettings list",
           comment="settings shown in the bar at the top of the page instead of the Settings tab", needs_restart=True),
        _o("ui_tab_order", [], "UI tab order", needs_restart=True),
        _o("hidden_tabs", [], "Hidden UI tabs", needs_restart=True),
        _o("ui_reorder_list", [], "UI item order for txt2img/img2img tabs", needs_restart=True),
        _o("gradio_theme", "Default", "Gradio theme", needs_restart=True),
        _o("gradio_themes_cache", True, "Cache gradio themes locally", needs_restart=True),
        _o("show_progress_in_title", True, "Show generation progress in window title."),
        _o("send_seed", True, "Send seed when sending prompt or image to other interface"),
        _o("send_size", True, "Send size when sending prompt or image to another interface"),
        _o("enable_reloading_ui_scripts", False, "Reload UI scripts when using Reload UI option", needs_restart=True),
    ),
    *_section("infotext", "Infotext",
        _o("enable_pnginfo", True, "Write infotext to metadata of the generated image"),
        _o("save_txt", False, "Create a text file with infotext next to every generated image"),
        _o("add_model_name_to_info", True, "Add model name to infotext"),
        _o("add_model_hash_to_info", True, "Add model hash to infotext"),
        _o("add_vae_name_to_info", True, "Add VAE name to infotext"),
        _o("add_vae_hash_to_info", True, "Add VAE hash to infotext"),
        _o("add_user_name_to_info", False, "Add user name to infotext when authenticated"),
        _o("add_version_to_infotext", True, "Add program version to infotext"),
        _o("disable_weights_auto_swap", True, "Disregard checkpoint information from pasted infotext"),
        _o("infotext_skip_pasting", [], "Disregard fields from pasted infotext"),
        _o("infotext_styles", "Apply if any", "Infer styles from prompts of pasted infotext",
           choices=["Ignore", "Apply", "Discard", "Apply if any"]),
    ),
    *_section("ui", "Live previews",
        _o("show_progressbar", True, "Show progressbar"),
        _o("live_previews_enable", True, "Show live previews of the created image"),
        _o("live_previews_image_format", "png", "Live preview file format", choices=["jpeg", "png", "webp"]),
        _o("show_progress_grid", True, "Show previews of all images generated in a batch as a grid"),
        _o("show_progress_every_n_steps", 10, "Live preview display period", minimum=-1, maximum=32, step=1,
           comment="in sampling steps - set to 0 to disable"),
        # A1111's "Approx NN" and "TAESD" need extra model files that this web UI does not ship; their
        # saved values read as "Approx cheap" (_migrate).
        _o("show_progress_type", "Approx cheap", "Live preview method", choices=["Approx cheap", "Full"],
           comment="Approx cheap: a linear latent-to-RGB estimate, nearly free; Full: the VAE decodes each preview"),
        _o("live_preview_allow_lowvram_full", False, "Allow Full live preview method with lowvram/medvram"),
        _o("live_preview_content", "Prompt", "Live preview subject", choices=["Combined", "Prompt", "Negative prompt"]),
        _o("live_preview_refresh_period", 1000.0, "Progressbar and preview update period", comment="in milliseconds"),
        _o("live_preview_fast_interrupt", False, "Return image with chosen live preview method on interrupt"),
        _o("js_live_preview_in_modal_lightbox", False, "Show Live preview in full page image viewer"),
        _o("prevent_screen_sleep_during_generation", True, "Prevent screen sleep during generation"),
    ),
    *_section("sampler-params", "Sampler parameters",
        _o("hide_samplers", [], "Hide samplers in user interface", needs_restart=True),
        _o("eta_ddim", 0.0, "Eta for DDIM", minimum=0.0, maximum=1.0, step=0.01, infotext="Eta DDIM"),
        _o("eta_ancestral", 1.0, "Eta for k-diffusion samplers", minimum=0.0, maximum=1.0, step=0.01, infotext="Eta"),
        _o("ddim_discretize", "uniform", "img2img DDIM discretize", choices=["uniform", "quad"]),
        _o("s_churn", 0.0, "sigma churn", minimum=0.0, maximum=100.0, step=0.01, infotext="Sigma churn"),
        _o("s_tmin", 0.0, "sigma tmin", minimum=0.0, maximum=10.0, step=0.01, infotext="Sigma tmin"),
        _o("s_tmax", 0.0, "sigma tmax", minimum=0.0, maximum=999.0, step=0.01, infotext="Sigma tmax"),
        _o("s_noise", 1.0, "sigma noise", minimum=0.0, maximum=1.1, step=0.001, infotext="Sigma noise"),
        _o("sigma_min", 0.0, "sigma min", infotext="Schedule min sigma"),
        _o("sigma_max", 0.0, "sigma max", infotext="Schedule max sigma"),
        _o("rho", 0.0, "rho", infotext="Schedule rho"),
        _o("eta_noise_seed_delta", 0, "Eta noise seed delta", infotext="ENSD"),
        _o("always_discard_next_to_last_sigma", False, "Always discard next-to-last sigma",
           infotext="Discard penultimate sigma"),
        _o("sgm_noise_multiplier", False, "SGM noise multiplier", infotext="SGM noise multiplier"),
        _o("uni_pc_variant", "bh1", "UniPC variant", choices=["bh1", "bh2", "vary_coeff"], infotext="UniPC variant"),
        _o("uni_pc_skip_type", "time_uniform", "UniPC skip type", choices=["time_uniform", "time_quadratic", "logSNR"],
           infotext="UniPC skip type"),
        _o("uni_pc_order", 3, "UniPC order", minimum=1, maximum=50, step=1, infotext="UniPC order"),
        _o("uni_pc_lower_order_final", True, "UniPC lower order final", infotext="UniPC lower order final"),
        _o("sd_noise_schedule", "Default", "Noise schedule for sampling", choices=["Default", "Zero Terminal SNR"],
           infotext="Noise Schedule"),
        _o("skip_early_cond", 0.0, "Ignore negative prompt during early sampling", minimum=0.0, maximum=1.0, step=0.01,
           infotext="Skip Early CFG"),
        _o("beta_dist_alpha", 0.6, "Beta scheduler - alpha", minimum=0.01, maximum=1.0, step=0.01,
           infotext="Beta schedule alpha"),
        _o("beta_dist_beta", 0.6, "Beta scheduler - beta", minimum=0.01, maximum=1.0, step=0.01,
           infotext="Beta schedule beta"),
    ),
    *_section("postprocessing", "Postprocessing",
        _o("postprocessing_enable_in_main_ui", [], "Enable postprocessing operations in txt2img and img2img tabs"),
        _o("postprocessing_disable_in_extras", [], "Disable postprocessing operations in extras tab"),
        _o("postprocessing_operation_order", [], "Postprocessing operation order"),
        _o("upscaling_max_images_in_cache", 5, "Maximum number of images in upscaling cache", minimum=0, maximum=10, step=1),
        _o("postprocessing_existing_caption_action", "Ignore", "Action for existing captions",
           choices=["Ignore", "Keep", "Prepend", "Append"]),
    ),
    *_section("system", "System",
        _o("auto_launch_browser", "Local", "Automatically open webui in browser on startup",
           choices=["Disable", "Local", "Remote"]),
        _o("enable_console_prompts", False, "Print prompts to console when generating with txt2img and img2img."),
        _o("show_warnings", False, "Show warnings in console."),
        _o("show_gradio_deprecation_warnings", True, "Show gradio deprecation warnings in console.", needs_restart=True),
        _o("memmon_poll_rate", 8.0, "VRAM usage polls per second during generation.", minimum=0.0, maximum=40.0, step=1.0),
        _o("samples_log_stdout", False, "Always print all generation info to standard output"),
        _o("multiple_tqdm", True, "Add a second progress bar to the console that shows progress for an entire job."),
        _o("enable_upscale_progressbar", True, "Show a progress bar in the console for tiled upscaling."),
        _o("print_hypernet_extra", False, "Print extra hypernetwork information to console."),
        _o("list_hidden_files", True, "Load models/files in hidden directories"),
        _o("disable_mmap_load_safetensors", False, "Disable memmapping for loading .safetensors files."),
        _o("hide_ldm_prints", True, "Prevent Stability-AI's ldm/sgm modules from printing noise to console."),
        _o("dump_stacks_on_signal", False, "Print stack traces before exiting the program with ctrl+c.", needs_restart=True),
        _o("override_settings_restore_afterwards", True, "Restore settings overridden by a request after it finishes"),
    ),
    *_section("training", "Training",
        _o("unload_models_when_training", False, "Move VAE and CLIP to RAM when training if possible. Saves VRAM."),
        _o("pin_memory", False, "Turn on pin_memory for DataLoader. Makes training slightly faster but can increase memory usage."),
        # A1111 defaults this to False; here resuming with the optimizer state is what the Train tab promises.
        _o("save_optimizer_state", True, "Saves Optimizer state as separate *.optim file. Training of embedding or HN can be resumed with the matching optim file."),
        _o("save_training_settings_to_txt", True, "Save textual inversion and hypernet settings to a text file whenever training starts."),
        _o("dataset_filename_word_regex", "", "Filename word regex"),
        _o("dataset_filename_join_string", " ", "Filename join string"),
        _o("training_image_repeats_per_epoch", 1, "Number of repeats for a single input image per epoch; used only for displaying epoch number", minimum=1, maximum=1000, step=1),
        _o("training_write_csv_every", 500, "Save an csv containing the loss to log directory every N steps, 0 to disable"),
        _o("training_xattention_optimizations", False, "Use cross attention optimizations while training"),
    ),
    *_section("api", "API",
        _o("api_enable_requests", True, "Allow http:// and https:// URLs for input images in API"),
        _o("api_forbid_local_requests", True, "Forbid URLs to local resources"),
        _o("api_useragent", "", "User agent for requests"),
    ),
    *_section(None, "Hidden options",
        _o("disabled_extensions", [], "Disable these extensions"),
        _o("disable_all_extensions", "none", "Disable all extensions (preserves the list of disabled extensions)",
           choices=["none", "extra", "all"]),
        _o("restore_config_state_file", "", "Config state file to restore from, under 'config-states/' folder"),
        _o("sd_checkpoint_hash", "", "SHA256 hash of the current checkpoint"),
    ),
])


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_value(info: OptionInfo, value: Any, check_dynamic_choices: bool = True) -> Any:
    """``value`` converted to the option's type, or ValueError saying why it is not acceptable."""
    key, kind = info.key, info.kind
    if kind is None:
        if value is not None and not isinstance(value, str):
            raise ValueError(f"setting {key!r}: expected a string or null, got {type(value).__name__} {value!r}")
    elif kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"setting {key!r}: expected true or false, got {type(value).__name__} {value!r}")
    elif kind is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"setting {key!r}: expected an integer, got {type(value).__name__} {value!r}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"setting {key!r}: expected a number, got {type(value).__name__} {value!r}")
        value = float(value)
    elif kind is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ValueError(f"setting {key!r}: expected a list, got {type(value).__name__} {value!r}")
        value = list(value)
    elif not isinstance(value, kind):
        raise ValueError(f"setting {key!r}: expected {kind.__name__}, got {type(value).__name__} {value!r}")

    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"setting {key!r}: expected a finite number, got {value}")
    for text in (value if isinstance(value, list) else [value]):
        if isinstance(text, str) and not _encodable(text):
            raise ValueError(f"setting {key!r}: the text holds an invalid character (a lone UTF-16 surrogate)")
    if info.minimum is not None and value < info.minimum:
        raise ValueError(f"setting {key!r}: {value!r} is below the minimum {info.minimum}")
    if info.maximum is not None and value > info.maximum:
        raise ValueError(f"setting {key!r}: {value!r} is above the maximum {info.maximum}")
    if info.choices is not None and (check_dynamic_choices or not callable(info.choices)):
        choices = info.current_choices()
        items = value if info.multiselect else [value]
        bad = [v for v in items if v not in choices]
        if bad:
            raise ValueError(f"setting {key!r}: {bad[0]!r} is not one of {choices}")
    return value


class Options:
    """The values of one settings file.

    ``Options(path)`` loads ``path`` if it exists. ``get``/``set``/``data``/``save`` are
    thread-safe. Attribute access (``opts.samples_save``) reads a value, as A1111 code expects.
    """

    def __init__(self, path: str | os.PathLike | None = None, table: Sequence[OptionInfo] = OPTION_TABLE):
        self.path = Path(path) if path is not None else None
        self._lock = threading.RLock()
        self._infos: dict[str, OptionInfo] = {}
        self._values: dict[str, Any] = {}
        self._extra: dict[str, Any] = {}  # keys nobody registered, kept and written back
        self._callbacks: dict[str, list[Callable[[], None]]] = {}
        # Values one request overrides (``scoped``): seen only by code running in that request's context.
        self._scope: ContextVar[Mapping[str, Any]] = ContextVar(f"options_scope_{id(self)}", default=MappingProxyType({}))
        for info in table:
            self._register(info)
        if self.path is not None:
            self.load()

    # -- definitions -------------------------------------------------------------------------

    def _register(self, info: OptionInfo) -> None:
        key = info.key
        if key in self._extra:  # loaded before the option was known (an extension's setting)
            value = self._checked_or_default(info, self._extra.pop(key))
        elif key in self._values:  # re-registered: keep the value if the new definition accepts it
            value = self._checked_or_default(info, self._values[key])
        else:
            value = _copy(info.default)
        self._infos[key] = info
        self._values[key] = value

    def add_option(self, info: OptionInfo) -> None:
        """Register an option (extensions' ``on_ui_settings``); replaces one with the same key."""
        with self._lock:
            self._register(info)

    def info(self, key: str) -> OptionInfo:
        try:
            return self._infos[key]
        except KeyError:
            raise ValueError(f"unknown setting {key!r}") from None

    def infos(self) -> list[OptionInfo]:
        with self._lock:
            return list(self._infos.values())

    def labels(self) -> dict[str, str]:
        with self._lock:
            return {k: i.label for k, i in self._infos.items()}

    def sections(self) -> list[tuple[str | None, str, list[str]]]:
        """[(section id, section label, [keys])] in table order, for the settings page.

        As in A1111, two sections may share an id ("ui": "User interface" and "Live previews").
        """
        out: dict[tuple[str | None, str], list[str]] = {}
        with self._lock:
            for key, info in self._infos.items():
                out.setdefault(info.section, []).append(key)
        return [(sid, label, keys) for (sid, label), keys in out.items()]

    # -- values --------------------------------------------------------------------------------

    def __contains__(self, key: str) -> bool:
        return key in self._infos or key in self._extra

    def get(self, key: str, default: Any = _MISSING) -> Any:
        layer = self._scope.get()
        if key in layer:
            return layer[key]
        with self._lock:
            if key in self._values:
                return self._values[key]
            if key in self._extra:
                return self._extra[key]
        if default is _MISSING:
            raise KeyError(key)
        return default

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.get(name)
        except KeyError:
            raise AttributeError(f"no setting named {name!r}") from None

    def set(self, key: str, value: Any, run_callbacks: bool = True) -> bool:
        """Validate and store a value; True if it changed. ValueError names the key and the reason."""
        info = self.info(key)
        value = check_value(info, value)
        with self._lock:
            if self._values.get(key, _MISSING) == value:
                return False
            self._values[key] = value
            callbacks = list(self._callbacks.get(key, ())) if run_callbacks else []
        for callback in callbacks:
            callback()
        return True

    def set_unregistered(self, key: str, value: Any) -> None:
        """Store a value under a key no option describes (A1111 extensions write ``opts.<their key>`` freely);
        it is kept and saved like an unknown key read from the file."""
        with self._lock:
            if key in self._infos:
                raise ValueError(f"setting {key!r} is registered: use set()")
            self._extra[key] = value

    def remove_unregistered(self, key: str) -> Any:
        """Forget an unregistered key's value (None if there was none)."""
        with self._lock:
            return self._extra.pop(key, None)

    def on_change(self, key: str, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after ``set`` changes ``key``."""
        self.info(key)
        with self._lock:
            self._callbacks.setdefault(key, []).append(callback)

    def data(self) -> dict[str, Any]:
        """Every value (registered options in table order, then unknown keys), for the API and for saving."""
        with self._lock:
            return {**{k: _copy(v) for k, v in self._values.items()}, **{k: _copy(v) for k, v in self._extra.items()}}

    @contextlib.contextmanager
    def scoped(self, values: Mapping[str, Any]) -> Iterator["Options"]:
        """``values`` (checked) in force for code running in this context until the block ends, for one
        request's ``override_settings``. Other threads and requests keep seeing the stored values, nothing is
        written, no change callback runs, and the values are gone afterwards whatever happens in the block."""
        if not values:
            yield self
            return
        checked = {key: check_value(self.info(key), value) for key, value in values.items()}
        token = self._scope.set(MappingProxyType({**self._scope.get(), **checked}))
        try:
            yield self
        finally:
            self._scope.reset(token)

    # A1111's name for the same thing.
    def override(self, **values: Any) -> contextlib.AbstractContextManager["Options"]:
        return self.scoped(values)

    def is_scoped(self, key: str) -> bool:
        """True while this context runs under an override of ``key``."""
        return key in self._scope.get()

    # -- storage --------------------------------------------------------------------------------

    def _checked_or_default(self, info: OptionInfo, raw: Any) -> Any:
        try:
            return check_value(info, raw, check_dynamic_choices=False)
        except ValueError as e:
            log.warning("%s; using the default %r", e, info.default)
            return _copy(info.default)

    def load(self) -> None:
        """(Re)read the settings file; values not in it take their defaults."""
        assert self.path is not None
        try:
            raw = fileio.read_json(self.path, {})
            if not isinstance(raw, dict):
                raise ValueError("the file does not hold a JSON object")
        except (ValueError, OSError) as e:
            backup = self.path.with_name(self.path.name + ".corrupt")
            log.warning("settings file %s is unreadable (%s); using defaults; a copy is kept as %s", self.path, e, backup)
            try:
                shutil.copy2(self.path, backup)
            except OSError:
                pass
            raw = {}
        _migrate(raw)
        with self._lock:
            self._extra = {}
            for key, info in self._infos.items():
                self._values[key] = self._checked_or_default(info, raw[key]) if key in raw else _copy(info.default)
            for key, value in raw.items():
                if key not in self._infos:
                    self._extra[key] = value

    def save(self, path: str | os.PathLike | None = None) -> None:
        """Write every value atomically (UTF-8, indent 4, like A1111's config.json)."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("these settings have no file to save to")
        fileio.atomic_write_json(target, self.data(), indent=4)


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value


def _migrate(raw: dict) -> None:
    """Renames A1111 made to its settings over time."""
    if raw.get("sd_vae_as_default") is not None and raw.get("sd_vae_overrides_per_model_preferences") is None:
        raw["sd_vae_overrides_per_model_preferences"] = not raw["sd_vae_as_default"]
    if isinstance(raw.get("quicksettings"), str) and raw.get("quicksettings_list") is None:
        raw["quicksettings_list"] = [i.strip() for i in raw["quicksettings"].split(",") if i.strip()]
    if raw.get("show_progress_type") in ("Approx NN", "TAESD"):
        raw["show_progress_type"] = "Approx cheap"
    if isinstance(raw.get("ui_reorder"), str) and raw.get("ui_reorder") and "ui_reorder_list" not in raw:
        raw["ui_reorder_list"] = [i.strip() for i in raw["ui_reorder"].split(",")]
