"""A1111's ``network_lokr`` module (built-in Lora extension). A thin facade; the code lives in
``modules.scripting.a1111_lora``."""
from modules.scripting.a1111_lora import NetworkModuleLokr  # noqa: F401
