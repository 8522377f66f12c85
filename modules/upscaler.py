"""A1111's ``modules.upscaler``: ``Upscaler`` (subclass it to add an upscaler) and ``UpscalerData``. A thin facade;
the code lives in ``modules.scripting.a1111_upscaler``."""
from modules.scripting.a1111_upscaler import Upscaler, UpscalerData, LANCZOS, NEAREST  # noqa: F401
