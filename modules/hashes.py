"""A1111's ``modules.hashes``: file hashes, cached in the running app's hash cache (``sha256(filename, title)``,
``sha256_from_cache``, ``calculate_sha256``). A thin facade; the code lives in ``modules.models.hashes`` and
``modules.scripting.a1111_misc``."""
from modules.models.hashes import (  # noqa: F401
    BLOCK, CACHE_VERSION, sha256_file, old_model_hash, addnet_hash_safetensors, HashCache,
)
from modules.scripting.a1111_misc import calculate_sha256, sha256, sha256_from_cache  # noqa: F401
