"""A1111's ``modules.masking``: inpainting masks. A thin facade; the code lives in ``modules.core.masking``."""
from modules.core.masking import (  # noqa: F401
    INPAINTING_FILL_NAMES, CropRegion, create_binary_mask, blur_kernel_size, blur_mask, prepare_mask,
    get_crop_region, expand_crop_region, fill, mask_for_overlay, create_overlay, uncrop, apply_overlay,
    mask_to_latent, fill_latent, InpaintInputs, prepare_inpaint,
)
