"""A1111's ``modules.sd_samplers``: sampler and schedule names. A thin facade; the code lives in ``modules.core.samplers``."""
from modules.core.samplers import (  # noqa: F401
    SamplerInfo, ScheduleInfo, SAMPLERS, SCHEDULES, SCHEDULERS, DEFAULT_SAMPLER, AUTOMATIC, SCHEDULE_IGNORED,
    find_sampler, find_schedule, split_combined_name, resolve_sampler,
    infotext_schedule_label, is_second_order, total_denoiser_calls, samplers_for_api, schedulers_for_api,
)
