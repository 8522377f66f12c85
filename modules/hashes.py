"""A1111's ``modules.hashes``: file hashes. A thin facade; the code lives in ``modules.models.hashes``."""
from modules.models.hashes import (  # noqa: F401
    BLOCK, CACHE_VERSION, sha256_file, old_model_hash, addnet_hash_safetensors, HashCache,
)
