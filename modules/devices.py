"""A1111's ``modules.devices``: device and dtype of the running Engine. A thin facade; the code lives in
``modules.engine.devices`` and ``modules.scripting.a1111_shared``."""
from modules.engine.devices import DeviceConfig, torch_gc  # noqa: F401
from modules.scripting import runtime as _runtime
from modules.scripting.a1111_shared import autocast, without_autocast, resolve_device_attr as _resolve  # noqa: F401


def get_optimal_device():
    return _resolve(_runtime.current(), "device")


def get_optimal_device_name():
    return str(get_optimal_device())


def cond_cast_unet(tensor):
    return tensor


def cond_cast_float(tensor):
    return tensor.float() if getattr(tensor, "dtype", None) is not None and tensor.dtype.is_floating_point else tensor


def __getattr__(name):
    return _resolve(_runtime.current(), name)
