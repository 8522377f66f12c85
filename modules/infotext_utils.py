"""A1111's ``modules.infotext_utils``: reading and writing infotexts, and the "send to" paste buttons. A thin
facade; the code lives in ``modules.core.infotext`` and ``modules.scripting.a1111_ui`` (loaded only when a
paste-button name is used: it needs Gradio)."""
from modules.core.infotext import (  # noqa: F401
    INFOTEXT_KEY_ORDER, re_param_code, re_param, re_imagesize, quote, unquote, build_generation_params,
    create_infotext, InfotextVersion, parse_version, version_less_than, V160, V170_TSNR, V180, V180_HR_STYLES,
    uses_emphasis, extract_styles_from_prompt, parse_generation_parameters,
)
from modules.scripting.a1111_misc import infotext_to_setting_name_mapping, PASTE_UI_NAMES as _UI_NAMES  # noqa: F401


def __getattr__(name):
    if name in _UI_NAMES:
        from modules.scripting import a1111_ui

        value = getattr(a1111_ui, name)
        return value() if name == "paste_fields" else value
    raise AttributeError(f"module 'modules.infotext_utils' has no attribute {name!r}")
