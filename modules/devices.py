"""A1111's ``modules.devices``: device and dtype. A thin facade; the code lives in ``modules.engine.devices``."""
from modules.engine.devices import (  # noqa: F401
    DeviceConfig, torch_gc,
)
