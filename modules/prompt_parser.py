"""A1111's ``modules.prompt_parser``: the prompt language. A thin facade; the code lives in ``modules.core.prompt_parser``."""
from modules.core.prompt_parser import (  # noqa: F401
    get_learned_conditioning_prompt_schedules, parse_prompt_attention, SdConditioning,
    ScheduledPromptConditioning, DictWithShape, get_learned_conditioning, re_AND, re_weight,
    get_multicond_prompt_list, ComposableScheduledPromptConditioning, MulticondLearnedConditioning,
    get_multicond_learned_conditioning, reconstruct_cond_batch, reconstruct_multicond_batch,
)
