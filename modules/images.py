"""A1111's ``modules.images``: save_image, image_grid, resize_image, flatten with A1111's signatures. A thin
facade; the code lives in ``modules.scripting.a1111_images`` and ``modules.core.image_files``."""
from modules.core.image_files import (  # noqa: F401
    read_info_from_image, next_sequence_number as get_next_sequence_number,
)
from modules.core.grid_drawing import GridAnnotation, draw_grid_annotations  # noqa: F401
from modules.scripting.a1111_images import save_image, resize_image, image_grid, flatten  # noqa: F401
from modules.scripting.a1111_misc import LANCZOS, NEAREST  # noqa: F401
