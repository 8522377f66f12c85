"""A1111's ``modules.api.api``: the base64 image helpers extensions' own routes use. A thin facade; the code lives
in ``modules.core.image_files``."""
from modules.scripting.a1111_api import decode_base64_to_image, encode_pil_to_base64, verify_url  # noqa: F401
from modules.server.api.api import create_router, mount_api  # noqa: F401
