"""A1111's ``network`` module (built-in Lora extension): ``Network``, ``NetworkOnDisk``, ``NetworkModule``,
``SdVersion``. A thin facade; the code lives in ``modules.scripting.a1111_lora``."""
from modules.scripting.a1111_lora import Network, NetworkModule, NetworkOnDisk, SdVersion  # noqa: F401
