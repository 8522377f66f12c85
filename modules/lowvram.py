"""A1111's ``modules.lowvram``: whether offloading (``--medvram``/``--lowvram``) is on. A thin facade; the code
lives in ``modules.scripting.a1111_misc``."""
from modules.scripting.a1111_misc import (  # noqa: F401
    lowvram_is_enabled as is_enabled, send_everything_to_cpu, setup_for_low_vram,
)
