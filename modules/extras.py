"""A1111's ``modules.extras``: ``run_pnginfo(image)``. A thin facade; the code lives in ``modules.scripting.a1111_extras``."""
from modules.scripting.a1111_extras import run_pnginfo  # noqa: F401
