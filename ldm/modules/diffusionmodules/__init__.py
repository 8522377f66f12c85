"""``ldm.modules.diffusionmodules``: facades only."""
