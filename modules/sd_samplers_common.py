"""A1111's ``modules.sd_samplers_common``: ``SamplerData`` and the preview helpers. A thin facade; the code
lives in ``modules.scripting.a1111_samplers``."""
from modules.scripting.a1111_samplers import (  # noqa: F401
    SamplerData, samples_to_image_grid, sample_to_image, approximation_indexes, samples_to_images_tensor,
    images_tensor_to_samples,
)
