"""A1111's ``network_oft`` module (built-in Lora extension). A thin facade; the code lives in
``modules.scripting.a1111_lora``."""
from modules.scripting.a1111_lora import NetworkModuleOFT  # noqa: F401
