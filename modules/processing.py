"""A1111's ``modules.processing``: ``process_images``, ``p``, ``Processed(p, images, seed, info, ...)`` and
``fix_seed(p)``. A thin facade; the code lives in ``modules.scripting.processing`` (the script layer's side of a
generation), ``modules.scripting.processing_object`` (``p``), ``modules.scripting.a1111_processing`` (A1111's
``Processed`` and ``fix_seed`` forms) and ``modules.engine.pipeline`` (the generation itself)."""
from modules.engine.pipeline import APP_VERSION, hires_target_size  # noqa: F401
from modules.core.masking import apply_overlay  # noqa: F401
from modules.scripting.a1111_processing import (  # noqa: F401
    Processed, create_infotext, fix_seed, get_fixed_seed, opt_C, opt_f,
)
from modules.scripting.processing import combined_processed, process_images, save_grid  # noqa: F401
from modules.scripting.processing_object import (  # noqa: F401
    StableDiffusionProcessing, StableDiffusionProcessingImg2Img, StableDiffusionProcessingTxt2Img,
)
