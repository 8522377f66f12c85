"""A1111's ``modules.infotext_utils``: reading and writing infotexts. A thin facade; the code lives in ``modules.core.infotext``."""
from modules.core.infotext import (  # noqa: F401
    INFOTEXT_KEY_ORDER, re_param_code, re_param, re_imagesize, quote, unquote, build_generation_params,
    create_infotext, InfotextVersion, parse_version, version_less_than, V160, V170_TSNR, V180, V180_HR_STYLES,
    uses_emphasis, extract_styles_from_prompt, parse_generation_parameters,
)
