"""``ldm.models.diffusion.ddim``: ``DDIMSampler``. A thin facade; the code lives in ``modules.scripting.a1111_ldm``."""
from modules.scripting.a1111_ldm import DDIMSampler  # noqa: F401
from modules.scripting.a1111_ldm import make_ddim_sampling_parameters, make_ddim_timesteps, noise_like  # noqa: F401
