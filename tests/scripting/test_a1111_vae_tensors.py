"""A1111's ``sd_samplers_common.images_tensor_to_samples`` / ``samples_to_images_tensor`` (extensions encode and
decode with the loaded VAE) give what the Engine's own VAE encode and decode give."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from modules.scripting import runtime


def test_encode_and_decode_tensors_match_the_engines_vae(tiny_engine):
    from modules import sd_samplers_common

    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    pixels = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    with runtime.using(tiny_engine):
        latents = sd_samplers_common.images_tensor_to_samples(pixels)
        assert latents.shape == (1, 4, 8, 8)
        assert torch.allclose(latents, tiny_engine.encode([picture]), atol=1e-5)
        decoded = sd_samplers_common.samples_to_images_tensor(latents)
    assert decoded.shape == (1, 3, 64, 64)
    as_bytes = (torch.clamp((decoded + 1.0) / 2.0, 0, 1) * 255.0).permute(0, 2, 3, 1).numpy().astype(np.uint8)[0]
    reference = np.asarray(tiny_engine.decode(latents)[0])
    assert np.abs(as_bytes.astype(int) - reference.astype(int)).max() <= 1
