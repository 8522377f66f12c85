"""A1111's ``modules.sd_vae``: the VAE files of the running Engine. A thin facade; the code lives in
``modules.models.vae_list`` and ``modules.scripting.a1111_shared``."""
from modules.scripting import runtime as _runtime
from modules.scripting.a1111_misc import unspecified  # noqa: F401
from modules.scripting.a1111_shared import SD_VAE_RESOLVERS as _RESOLVERS


def __getattr__(name):
    resolver = _RESOLVERS.get(name)
    if resolver is None:
        raise AttributeError(f"module 'modules.sd_vae' has no attribute {name!r}")
    return resolver(_runtime.current())
