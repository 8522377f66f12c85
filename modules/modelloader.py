"""A1111's ``modules.modelloader``: ``load_models``, ``load_file_from_url`` (no downloads here), ``friendly_name``,
``load_upscalers``, ``load_spandrel_model``. A thin facade; the code lives in ``modules.scripting.a1111_modelloader``."""
from modules.scripting.a1111_modelloader import (  # noqa: F401
    friendly_name, load_file_from_url, load_models, load_upscalers, load_spandrel_model,
)
