"""A1111's ``modules.processing``: process_images, ``p`` and Processed. A thin facade; the code lives in
``modules.scripting.processing_object``, ``modules.scripting.a1111_processing`` and ``modules.engine.pipeline``."""
from modules.scripting.processing_object import (  # noqa: F401
    StableDiffusionProcessing, StableDiffusionProcessingTxt2Img, StableDiffusionProcessingImg2Img,
)
from modules.scripting.a1111_processing import Processed, fix_seed, get_fixed_seed, opt_C, opt_f  # noqa: F401
from modules.engine.pipeline import process_images  # noqa: F401
from modules.engine.pipeline import combined_processed, save_grid, create_infotext, generation_job  # noqa: F401
