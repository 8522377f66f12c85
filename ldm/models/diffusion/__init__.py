"""``ldm.models.diffusion``: facades only (``ddim``)."""
from ldm.models.diffusion import ddim  # noqa: F401
