"""A1111's ``modules.timer``: ``Timer().record(name)`` and ``startup_timer``, which extensions use to time their
start-up. A thin facade; the code lives in ``modules.scripting.a1111_timer``."""
from modules.scripting.a1111_timer import Timer, startup_timer, startup_record  # noqa: F401
