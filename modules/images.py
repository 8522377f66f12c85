"""A1111's ``modules.images``: image files: save_image, image_grid, resize_image. A thin facade; the code lives in ``modules.core.image_files``."""
from modules.core.image_files import (  # noqa: F401
    IGNORED_INFO_KEYS, next_sequence_number, write_params_txt, dated_output_dir, exif_user_comment,
    decode_user_comment, read_info_from_image, save_image, image_grid, encode_image_base64,
    decode_base64_image,
)
