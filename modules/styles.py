"""A1111's ``modules.styles``: prompt styles. A thin facade; the code lives in ``modules.core.styles``."""
from modules.core.styles import (  # noqa: F401
    FIELDS, PLACEHOLDER, PromptStyle, StyleFileError, merge_prompts, apply_styles_to_prompt,
    extract_style_text_from_prompt, extract_original_prompts, read_styles_csv, styles_to_csv, StyleDatabase,
)
