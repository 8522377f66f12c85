"""A1111's ``modules.ui``: helpers extensions use to build their UIs (``create_refresh_button``, ``gr_show``,
the tool-button symbols). A thin facade; the code lives in ``modules.scripting.a1111_ui``."""
from modules.scripting.a1111_ui import (  # noqa: F401
    gr_show, create_refresh_button, setup_dialog, refresh_symbol, save_style_symbol, apply_style_symbol,
    clear_prompt_symbol, extra_networks_symbol, switch_values_symbol, restore_progress_symbol,
    detect_image_size_symbol,
)
from modules.engine.postprocessing import plaintext_to_html  # noqa: F401
