"""A1111's ``modules.sd_samplers_cfg_denoiser`` (where ``CFGDenoiser`` lives since A1111 1.6). A thin facade;
the code lives in ``modules.engine.sampling``."""
from modules.engine.sampling import CFGDenoiser  # noqa: F401
