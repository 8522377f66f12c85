"""A1111's ``modules.sd_samplers_cfg_denoiser`` (where ``CFGDenoiser`` lives since A1111 1.6). A thin facade;
the code lives in ``modules.engine.denoiser``."""
from modules.engine.denoiser import CFGDenoiser  # noqa: F401
