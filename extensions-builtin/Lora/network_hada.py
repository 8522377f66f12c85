"""A1111's ``network_hada`` module (built-in Lora extension). A thin facade; the code lives in
``modules.scripting.a1111_lora``."""
from modules.scripting.a1111_lora import NetworkModuleHada  # noqa: F401
