"""A1111's ``network_ia3`` module (built-in Lora extension). A thin facade; the code lives in
``modules.scripting.a1111_lora``."""
from modules.scripting.a1111_lora import NetworkModuleIa3  # noqa: F401
