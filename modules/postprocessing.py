"""A1111's ``modules.postprocessing``: Extras. A thin facade; the code lives in ``modules.engine.postprocessing``."""
from modules.engine.postprocessing import (  # noqa: F401
    MAX_FACTOR, MAX_SIDE, FACE_RESTORATION_MISSING, ExtrasParams, ExtrasResult, plaintext_to_html,
    format_info, run_postprocessing,
)
