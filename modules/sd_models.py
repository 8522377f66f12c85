"""A1111's ``modules.sd_models``: the checkpoints and the loaded model of the running Engine. A thin facade;
the code lives in ``modules.models.checkpoints`` and ``modules.scripting.a1111_shared``."""
from modules.models.checkpoints import CheckpointInfo  # noqa: F401
from modules.models.hashes import old_model_hash as model_hash  # noqa: F401
from modules.scripting import runtime as _runtime
from modules.scripting.a1111_shared import SD_MODELS_RESOLVERS as _RESOLVERS


def __getattr__(name):
    resolver = _RESOLVERS.get(name)
    if resolver is None:
        raise AttributeError(f"module 'modules.sd_models' has no attribute {name!r}")
    return resolver(_runtime.current())
