"""A1111's ``modules.hashes``: file hashes, cached in the running app's hash cache (``sha256(filename, title)``,
``sha256_from_cache``, ``calculate_sha256``). A thin facade; the code lives in ``modules.models.hashes``."""
from modules.models.hashes import (  # noqa: F401
    BLOCK, CACHE_VERSION, sha256_file, old_model_hash, addnet_hash_safetensors, HashCache,
)
from modules.scripting import runtime as _runtime

calculate_sha256 = sha256_file


def sha256(filename, title, use_addnet_hash=False):
    cache = _runtime.current().hash_cache
    return cache.get_addnet(filename, title) if use_addnet_hash else cache.get_sha256(filename, title)


def sha256_from_cache(filename, title, use_addnet_hash=False):
    return _runtime.current().hash_cache.cached(filename, title, "addnet" if use_addnet_hash else "sha256")
