"""A1111's ``modules.rng``: seeds and noise. A thin facade; the code lives in ``modules.engine.rng``."""
from modules.engine.rng import (  # noqa: F401
    RNG_SOURCES, MAX_SEED, fix_seed, generator_device, make_generator, randn, slerp, paste_centered, ImageRNG,
)
