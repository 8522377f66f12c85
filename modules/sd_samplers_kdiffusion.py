"""A1111's ``modules.sd_samplers_kdiffusion``: the CFG denoiser of the sampling loop. A thin facade; the code
lives in ``modules.engine.denoiser``."""
from modules.engine.denoiser import CFGDenoiser  # noqa: F401
from modules.scripting.a1111_samplers import samplers_k_diffusion, sampler_extra_params  # noqa: F401
