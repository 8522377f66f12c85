"""A1111's ``ldm`` package (Stability's latent-diffusion code), as far as extensions import it at their top level
without needing an ldm model: facades only; the code lives in ``modules.scripting.a1111_ldm``."""
