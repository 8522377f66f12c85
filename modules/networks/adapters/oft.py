"""OFT / BOFT: rotate the current weight's output rows by a learned orthogonal matrix; Δ = W' − W.

Cayley transform, per b×b block:  Q = B − Bᵀ (skew-symmetric), R = (I + Q)(I − Q)⁻¹.
Constraint (kohya and LyCORIS): alpha · out_dim bounds ‖Q‖ (Frobenius, over all blocks together); when
‖Q‖ exceeds it, Q is scaled down to that norm. No or zero alpha means no constraint (LyCORIS, A1111).

    kohya OFT / LyCORIS diag-oft   `oft_blocks` [n, b, b], n·b = out:  W'_k = R_kᵀ · W_k
        (W_k = rows k·b … k·b+b−1; kohya computes x·R on the output features, which is the same thing)
    old LyCORIS diag-oft           `oft_diag` [n, b, b], no constraint, no Cayley. Its versions saved either
        R itself (identity-initialised, the form A1111 reads) or the offset D with R = I + D (zero-initialised).
        The file says which: an R sits near I (‖X − I‖ < ‖X‖), an offset D near 0.  W'_k = R_kᵀ · W_k
    LyCORIS BOFT                   `oft_blocks` [m, n, b, b], b even: m butterfly stages. For stage i, with
        h = 2^i · b/2, the rows are grouped (c, g, j) with g ∈ {0, 1}, j < h and regrouped as (c, j, g); each
        run of b regrouped rows is multiplied by its block R_i,k (W' = R · W here, as LyCORIS and A1111),
        and the rows are put back.  Needs out divisible by 2^(m−1) · b.
    optional `rescale` [out, 1, ...]:  W' ← rescale ⊙ W' (per output row)

The multiplier scales Δ linearly (base.py), as A1111. For kohya OFT this equals kohya's own
R_m = I + m·(R − I). The scale is always 1: alpha is the constraint, not a LoRA alpha.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from .base import AdapterModule, f32, shape_str


def cayley(raw: torch.Tensor, constraint: float) -> torch.Tensor:
    """Orthogonal blocks: R = (I + Q)(I − Q)⁻¹ with Q = raw − rawᵀ, and ‖Q‖ ≤ constraint when that is > 0."""
    q = raw - raw.transpose(-1, -2)
    if constraint > 0:
        norm = torch.linalg.vector_norm(q)
        # clamp(c / ‖Q‖, max=1): leaves Q alone inside the bound; ‖Q‖ = 0 gives inf -> 1.
        q = q * torch.clamp(constraint / norm, max=1.0)
    eye = torch.eye(q.shape[-1], device=q.device, dtype=q.dtype)
    return (eye + q) @ torch.linalg.inv(eye - q)


def rotate_blocks(blocks: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Row block k of the result is blocks[k] @ (row block k of weight)."""
    n, b = blocks.shape[0], blocks.shape[1]
    return (blocks @ weight.reshape(n, b, -1)).reshape(weight.shape)


def butterfly_order(rows: int, half: int, device: torch.device) -> torch.Tensor:
    """Row order of one BOFT stage: position (c, j, g) takes row (c, g, j), g ∈ {0, 1}, j < half."""
    return torch.arange(rows, device=device).reshape(-1, 2, half).transpose(1, 2).reshape(-1)


class OFTModule(AdapterModule):
    kind = "oft"

    @classmethod
    def matches(cls, tensors: Mapping[str, torch.Tensor]) -> bool:
        return "oft_blocks" in tensors or "oft_diag" in tensors

    def __init__(self, key: str, tensors: Mapping[str, torch.Tensor]):
        super().__init__(key, tensors)
        blocks = self._get("oft_blocks")
        if blocks is not None:
            self._check_ndim("oft_blocks", blocks, (3, 4))
            self.variant = "boft" if blocks.dim() == 4 else "oft"
        else:
            blocks = self._need("oft_diag")
            self._check_ndim("oft_diag", blocks, (3,))
            self.variant = "diag"
        if blocks.shape[-1] != blocks.shape[-2]:
            raise self.fail(f"OFT blocks must be square, got {shape_str(blocks.shape)}")
        if self.variant == "boft" and blocks.shape[-1] % 2:
            raise self.fail(f"BOFT block size must be even, got {shape_str(blocks.shape)}")
        self.blocks = blocks
        self.rescale = self._get("rescale")
        # kohya's network_dim is the number of blocks; informative only, since the scale is 1.
        self.dim = int(blocks.shape[-3])

    def calc_scale(self) -> float:
        return 1.0

    def _rotation(self, dev: torch.device, out_dim: int) -> torch.Tensor:
        raw = f32(self.blocks, dev)
        if self.variant != "diag":
            return cayley(raw, (self.alpha or 0.0) * out_dim)
        eye = torch.eye(raw.shape[-1], device=dev)
        offset_form = torch.linalg.vector_norm(raw - eye) >= torch.linalg.vector_norm(raw)
        return raw + eye if bool(offset_form) else raw

    def _check_rows(self, weight: torch.Tensor) -> None:
        shape = tuple(self.blocks.shape)
        n, b = shape[-3], shape[-1]
        rows = weight.shape[0]
        if n * b != rows:
            raise self.fail(
                f"{n} blocks of {b} rows do not cover the target's {rows} output rows ({shape_str(weight.shape)})"
            )
        span = 2 ** (shape[0] - 1) * b  # rows one pair-group covers in the last butterfly stage
        if self.variant == "boft" and rows % span:
            raise self.fail(f"BOFT with {shape[0]} stages of block size {b} needs out divisible by {span}, got {rows}")

    def updown(self, weight: torch.Tensor, dyn_dim: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        self._check_rows(weight)
        rot = self._rotation(weight.device, weight.shape[0])
        if self.variant == "boft":
            new = weight
            half = rot.shape[-1] // 2
            for i in range(rot.shape[0]):
                order = butterfly_order(weight.shape[0], half * 2**i, weight.device)
                turned = rotate_blocks(rot[i], new[order])
                new = torch.empty_like(turned)
                new[order] = turned
        else:
            new = rotate_blocks(rot.transpose(-1, -2), weight)
        if self.rescale is not None:
            scale = f32(self.rescale, weight.device).flatten()
            if scale.numel() != weight.shape[0]:
                raise self.fail(f"rescale has {scale.numel()} values, the target has {weight.shape[0]} output rows")
            new = new * scale.reshape(-1, *([1] * (weight.dim() - 1)))
        return new - weight, None
