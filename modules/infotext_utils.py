"""A1111's ``modules.infotext_utils``: reading and writing infotexts, and the "send to" paste buttons. A thin
facade; the code lives in ``modules.core.infotext`` and ``modules.scripting.a1111_ui`` (loaded only when a
paste-button name is used: it needs Gradio)."""
from modules.core.infotext import (  # noqa: F401
    INFOTEXT_KEY_ORDER, re_param_code, re_param, re_imagesize, quote, unquote, build_generation_params,
    create_infotext, InfotextVersion, parse_version, version_less_than, V160, V170_TSNR, V180, V180_HR_STYLES,
    uses_emphasis, extract_styles_from_prompt, parse_generation_parameters,
)

infotext_to_setting_name_mapping = [
    ("Clip skip", "CLIP_stop_at_last_layers"), ("Conditional mask weight", "inpainting_mask_weight"),
    ("Model hash", "sd_model_checkpoint"), ("ENSD", "eta_noise_seed_delta"), ("Schedule type", "k_sched_type"),
    ("Schedule max sigma", "sigma_max"), ("Schedule min sigma", "sigma_min"), ("Schedule rho", "rho"),
    ("Noise multiplier", "initial_noise_multiplier"), ("Eta", "eta_ancestral"), ("Eta DDIM", "eta_ddim"),
    ("Sigma churn", "s_churn"), ("Sigma tmin", "s_tmin"), ("Sigma tmax", "s_tmax"), ("Sigma noise", "s_noise"),
    ("Discard penultimate sigma", "always_discard_next_to_last_sigma"), ("UniPC variant", "uni_pc_variant"),
    ("UniPC skip type", "uni_pc_skip_type"), ("UniPC order", "uni_pc_order"), ("UniPC lower order final", "uni_pc_lower_order_final"),
    ("Token merging ratio", "token_merging_ratio"), ("Token merging ratio hr", "token_merging_ratio_hr"),
    ("RNG", "randn_source"), ("NGMS", "s_min_uncond"), ("Pad conds", "pad_cond_uncond"), ("VAE", "sd_vae"),
    ("Emphasis", "emphasis"), ("Tiling", "tiling"),
]

_UI_NAMES = ("ParamBinding", "register_paste_params_button", "create_buttons", "bind_buttons", "paste_fields",
             "add_paste_fields", "image_from_url_text", "connect_paste_params_buttons", "paste_bindings")


def __getattr__(name):
    if name in _UI_NAMES:
        from modules.scripting import a1111_ui

        value = getattr(a1111_ui, name)
        return value() if name == "paste_fields" else value
    raise AttributeError(f"module 'modules.infotext_utils' has no attribute {name!r}")
