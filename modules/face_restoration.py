"""A1111's ``modules.face_restoration``: ``FaceRestoration`` and ``restore_faces`` (the picture unchanged while no
extension registered a restorer in ``shared.face_restorers``). A thin facade; the code lives in
``modules.scripting.a1111_upscaler``."""
from modules.scripting.a1111_upscaler import FaceRestoration, restore_faces  # noqa: F401
