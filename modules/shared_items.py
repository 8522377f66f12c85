"""A1111's ``modules.shared_items``: the lists behind the quick settings (VAEs, checkpoints, UNets). A thin facade;
the code lives in ``modules.scripting.a1111_misc``."""
from modules.scripting.a1111_misc import (  # noqa: F401
    list_checkpoint_tiles, refresh_checkpoints, refresh_vae_list, sd_unet_items, sd_vae_items,
)
