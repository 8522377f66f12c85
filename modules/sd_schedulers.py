"""A1111's ``modules.sd_schedulers`` (1.9+): the schedule types (``schedulers``, ``schedulers_map`` by name and
label), with ``name``, ``label``, ``aliases``, ``default_rho``, ``need_inner_model``. A thin facade; the code lives
in ``modules.core.samplers``."""
from modules.core.samplers import SCHEDULES as schedulers, ScheduleInfo as Scheduler  # noqa: F401
from modules.scripting.a1111_samplers import schedulers_map  # noqa: F401
