"""A1111's ``modules.sd_samplers``: sampler and schedule names (``all_samplers``, ``samplers``,
``samplers_for_img2img``, ``find_sampler_config``...). A thin facade; the code lives in ``modules.core.samplers``
and ``modules.scripting.a1111_samplers``."""
from modules.core.samplers import (  # noqa: F401
    SamplerInfo, ScheduleInfo, SAMPLERS, SCHEDULES, SCHEDULERS, DEFAULT_SAMPLER, AUTOMATIC, SCHEDULE_IGNORED,
    find_sampler, find_schedule, split_combined_name, resolve_sampler,
    infotext_schedule_label, is_second_order, total_denoiser_calls, samplers_for_api, schedulers_for_api,
)
from modules.scripting.a1111_samplers import (  # noqa: F401
    SamplerData, all_samplers, all_samplers_map, samplers, samplers_for_img2img, samplers_map, find_sampler_config,
    visible_sampler_names, sample_to_image, samples_to_image_grid, set_samplers,
)
