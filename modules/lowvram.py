"""A1111's ``modules.lowvram``: this app offloads with accelerate (``--medvram``/``--lowvram``); extensions
only ask whether it is on and may ask to move everything to the CPU. A thin facade."""
from modules.scripting import runtime as _runtime


def is_enabled(sd_model=None):
    engine = _runtime.current(required=False)
    return bool(engine is not None and engine.devices.offload != "none")


def send_everything_to_cpu():
    """Nothing to do: offloaded models are moved by accelerate's hooks."""


def setup_for_low_vram(sd_model, use_medvram):
    """Done at load time here (``--medvram``/``--lowvram``)."""
