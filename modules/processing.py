"""A1111's ``modules.processing``: ``process_images``, ``p`` and ``Processed``. A thin facade; the code lives in
``modules.scripting.processing`` (the script layer's side of a generation), ``modules.scripting.processing_object``
(``p``) and ``modules.engine.pipeline`` (the generation itself)."""
from modules.core.request import Processed  # noqa: F401
from modules.engine.pipeline import (  # noqa: F401
    APP_VERSION, create_infotext, hires_target_size,
)
from modules.engine.rng import fix_seed  # noqa: F401
from modules.scripting.processing import combined_processed, process_images, save_grid  # noqa: F401
from modules.scripting.processing_object import (  # noqa: F401
    StableDiffusionProcessing, StableDiffusionProcessingImg2Img, StableDiffusionProcessingTxt2Img,
)
