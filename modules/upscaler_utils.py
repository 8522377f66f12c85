"""A1111's ``modules.upscaler_utils``: ``upscale_with_model`` (tiled). A thin facade; the code lives in
``modules.scripting.a1111_modelloader`` over ``modules.models.upscalers``."""
from modules.scripting.a1111_modelloader import upscale_with_model  # noqa: F401
