"""A1111's ``modules.processing``: process_images, ``p`` and Processed. A thin facade; the code lives in ``modules.scripting.processing_object``, ``modules.engine.pipeline``."""
from modules.scripting.processing_object import (  # noqa: F401
    REQUEST_FIELDS, StableDiffusionProcessing, StableDiffusionProcessingTxt2Img,
    StableDiffusionProcessingImg2Img, as_processing,
)
from modules.engine.pipeline import (  # noqa: F401
    APP_VERSION, Batch, Plan, process_images, generation_job, hires_target_size,
    Img2ImgInit, create_infotext, save_grid, combined_processed, processed_js,
)
