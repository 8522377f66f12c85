"""Emphasis modes: how the `(word:1.2)` weights are applied to the text encoder output.

The four modes of the reference web UI (setting `emphasis`, infotext `Emphasis`), see spec §4.4:

- "None": the prompt is not parsed for attention at all; brackets stay literal text.
- "Ignore": the prompt is parsed (brackets removed) but the weights are not applied.
- "Original" (default): each token's vector is multiplied by its weight, then the whole chunk tensor
  (all batch rows, tokens and channels) is rescaled so that its mean is what it was before.
- "No norm": multiplied, not rescaled.

Each mode works on one encoded 77-token chunk at a time, after clip skip / final layer norm.
"""
from __future__ import annotations

import torch

DEFAULT = "Original"


class Emphasis:
    """Base mode: leaves the encoder output as it is."""

    name = "Base"
    description = ""
    parses_attention = True  # whether `( ) [ ] (x:w)` and BREAK are parsed out of the prompt

    def apply(self, z: torch.Tensor, multipliers: torch.Tensor) -> torch.Tensor:
        """`z`: encoder output of one chunk, [B, 77, C]; `multipliers`: per-token weights, [B, 77]."""
        return z


class EmphasisNone(Emphasis):
    name = "None"
    description = "no attention parsing: brackets and (text:1.1) are kept as literal characters"
    parses_attention = False


class EmphasisIgnore(Emphasis):
    name = "Ignore"
    description = "brackets are parsed and removed, but every token keeps weight 1"


class EmphasisOriginal(Emphasis):
    name = "Original"
    description = "weights multiply the token vectors, then the chunk's mean is restored (A1111 default)"
    renormalize = True

    def apply(self, z: torch.Tensor, multipliers: torch.Tensor) -> torch.Tensor:
        if bool((multipliers == 1).all()):
            return z  # what the formula gives exactly (x*1, mean/mean = 1), without a 0/0 on a zero-mean tensor
        # Computed in float32 whatever the encoder dtype is, returned in the encoder's dtype.
        zf = z.float()
        weighted = zf * multipliers.to(device=z.device, dtype=torch.float32).unsqueeze(-1)
        if self.renormalize:
            weighted = weighted * (zf.mean() / weighted.mean())
        return weighted.to(z.dtype)


class EmphasisNoNorm(EmphasisOriginal):
    name = "No norm"
    description = "weights multiply the token vectors without restoring the mean (often better for SDXL)"
    renormalize = False


options: list[type[Emphasis]] = [EmphasisNone, EmphasisIgnore, EmphasisOriginal, EmphasisNoNorm]
names: list[str] = [cls.name for cls in options]


def get(name: str | None) -> Emphasis:
    """The mode called `name`; an unknown or missing name gives "Original", as in the reference."""
    for cls in options:
        if cls.name == name:
            return cls()
    return EmphasisOriginal()


def options_description() -> str:
    """One line for the settings UI."""
    return "; ".join(f"{cls.name}: {cls.description}" for cls in options)
