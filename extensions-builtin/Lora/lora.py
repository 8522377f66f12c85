"""A1111's ``lora`` module (the built-in Lora extension's old names): ``loaded_loras`` is
``networks.loaded_networks``. A thin facade; the code lives in ``modules.scripting.a1111_lora``."""
from modules.scripting import runtime as _runtime
from modules.scripting.a1111_lora import list_available_networks as list_available_loras  # noqa: F401
from modules.scripting.a1111_lora import LORA_RESOLVERS as _RESOLVERS


def __getattr__(name):
    resolver = _RESOLVERS.get(name)
    if resolver is None:
        raise AttributeError(f"module 'lora' has no attribute {name!r}")
    return resolver(_runtime.current())
