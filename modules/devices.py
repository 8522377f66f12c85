"""A1111's ``modules.devices``: device and dtype of the running Engine (``device``, ``cpu``, ``dtype``,
``dtype_vae``, ``autocast()``...). A thin facade; the code lives in ``modules.engine.devices``,
``modules.scripting.a1111_shared`` and ``modules.scripting.a1111_misc``."""
from modules.engine.devices import DeviceConfig, torch_gc  # noqa: F401
from modules.scripting import runtime as _runtime
from modules.scripting.a1111_misc import (  # noqa: F401
    NansException, get_optimal_device, get_optimal_device_name, cond_cast_unet, cond_cast_float,
)
from modules.scripting.a1111_shared import autocast, without_autocast, resolve_device_attr as _resolve  # noqa: F401


def __getattr__(name):
    return _resolve(_runtime.current(), name)
