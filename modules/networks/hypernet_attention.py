"""A1111 hypernetworks inside diffusers attention.

:class:`HypernetworkAttnProcessor` is diffusers' ``AttnProcessor2_0`` computation (SDPA, same
handling of masks, group/spatial norm, 4-D inputs, ``norm_cross``, residual and rescale) with one
change, as in the reference: the attention context (``encoder_hidden_states``, or the hidden states
for self-attention) goes through the active hypernetworks separately for the key and the value
before ``to_k`` / ``to_v``. The query is untouched. Calling ``to_k``/``to_v`` here (not a hook on an
inner Linear) keeps PEFT LoRA working on the transformed context, as in the reference.

What does not change is not recomputed: the text context's transforms are cached (:class:`ContextCache`), and in
self-attention affine hypernetworks (A1111's default) are folded into ``to_k``/``to_v`` (``hypernet_fold``).

:class:`HypernetworkPatch` installs one such processor on every attention module of a UNet
(``attn1`` and ``attn2``) and puts the exact original processor objects back when none is active.
It is not thread-safe: the caller holds the model lock while generating and switching.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from modules.networks.hypernet_fold import FoldedProjections
from modules.networks.hypernetwork import Hypernetwork, apply_hypernetworks, weights_version

__all__ = ["HypernetworkAttnProcessor", "HypernetworkPatch", "apply_hypernetworks"]


def _normalize(active: Sequence[tuple[Hypernetwork, float]]) -> list[tuple[Hypernetwork, float]]:
    out = []
    for item in active:
        hypernetwork, multiplier = item
        if not isinstance(hypernetwork, Hypernetwork):
            raise TypeError(f"expected (Hypernetwork, multiplier) pairs, got {type(hypernetwork).__name__}")
        out.append((hypernetwork, float(multiplier)))
    return out


class ContextCache:
    """The hypernetworks' (k, v) contexts for the last few cross-attention contexts.

    The text conditioning is the same in every cross-attention layer and at every step (a prompt schedule changes
    it at a step, AND and batch sizes change its shape), so its transforms are computed once and reused: looked up
    by the tensor itself when it is the same object, unmodified (its version counter), else by equal contents.
    Self-attention contexts (the image features) change at every call and are never cached. Nothing is cached while
    gradients are recorded (hypernetwork training) or while Dynamo traces (the compiled graph computes them)."""

    SIZE = 4

    def __init__(self) -> None:
        self._entries: list[tuple[torch.Tensor, int, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]] = []

    def get(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        for i, (obj, version, copy, pair) in enumerate(self._entries):
            if (obj is context and context._version == version) or (
                    copy.shape == context.shape and copy.dtype == context.dtype and copy.device == context.device
                    and torch.equal(copy, context)):
                if i:
                    self._entries.insert(0, self._entries.pop(i))
                return pair
        return None

    def put(self, context: torch.Tensor, pair: tuple[torch.Tensor, torch.Tensor]) -> None:
        self._entries.insert(0, (context, context._version, context.detach().clone(), pair))
        del self._entries[self.SIZE:]

    def clear(self) -> None:
        self._entries.clear()


def _caching_allowed() -> bool:
    return not torch.is_grad_enabled() and not torch.compiler.is_compiling()


class HypernetworkAttnProcessor:
    """Drop-in processor for diffusers ``Attention`` (self- and cross-attention)."""

    def __init__(self, active: Sequence[tuple[Hypernetwork, float]]):
        self.active: tuple[tuple[Hypernetwork, float], ...] = tuple(_normalize(active))
        self.cache = ContextCache()  # one per processor: shared by all its attention modules, as the context is
        self.folds = FoldedProjections(self.active)
        self._cached_weights: tuple[int, ...] = ()

    def _context_pair(self, context: torch.Tensor, cross: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.active:
            return context, context
        self._follow(context)
        if not (cross and _caching_allowed()):
            return apply_hypernetworks(self.active, context)
        weights = weights_version(self.active)
        if weights != self._cached_weights:  # trained (or loaded into) since: the cached transforms are stale
            self.cache.clear()
            self._cached_weights = weights
        pair = self.cache.get(context)
        if pair is None:
            pair = apply_hypernetworks(self.active, context)
            self.cache.put(context, pair)
        return pair

    def _folded(self, attn, context: torch.Tensor) -> tuple[torch.Tensor, ...] | None:
        """Self-attention's projections with affine hypernetworks folded in (see hypernet_fold), or None."""
        if not self.active or not _caching_allowed():
            return None
        self._follow(context)
        return self.folds.get(attn, context)

    def _follow(self, context: torch.Tensor) -> None:
        # Model offloading can move the UNet after HypernetworkPatch.set(): the hypernetworks follow the context.
        for hypernetwork, _ in self.active:
            if hypernetwork.device != context.device:
                hypernetwork.to(context.device)

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 *args: Any, **kwargs: Any) -> torch.Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)

        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)

        batch_size, sequence_length, _ = (
            hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape)

        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
            # SDPA wants (batch, heads, query length, key length)
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])

        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)

        cross = encoder_hidden_states is not None
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)

        # The one difference from AttnProcessor2_0: the hypernetworks see what to_k/to_v would see.
        folded = self._folded(attn, encoder_hidden_states) if not cross else None
        if folded is not None:
            key = F.linear(encoder_hidden_states, folded[0], folded[1])
            value = F.linear(encoder_hidden_states, folded[2], folded[3])
        else:
            context_k, context_v = self._context_pair(encoder_hidden_states, cross)
            key = attn.to_k(context_k)
            value = attn.to_v(context_v)

        inner_dim = key.shape[-1]
        head_dim = inner_dim // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)

        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        hidden_states = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)

        hidden_states = attn.to_out[0](hidden_states)  # linear projection
        hidden_states = attn.to_out[1](hidden_states)  # dropout

        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def _same_active(a: Sequence[tuple[Hypernetwork, float]], b: Sequence[tuple[Hypernetwork, float]]) -> bool:
    return len(a) == len(b) and all(x[0] is y[0] and x[1] == y[1] for x, y in zip(a, b))


class HypernetworkPatch:
    """Switches a UNet between its own attention processors and a hypernetwork processor."""

    def __init__(self, unet: torch.nn.Module):
        self.unet = unet
        self.active: list[tuple[Hypernetwork, float]] = []
        self._processor: HypernetworkAttnProcessor | None = None
        self._saved: dict[str, Any] = {}  # module name -> the processor it had before ours
        self._attention: list[tuple[str, torch.nn.Module]] | None = None

    def _attention_modules(self) -> list[tuple[str, torch.nn.Module]]:
        if self._attention is None:
            # Same test diffusers' attn_processors uses: anything with a settable processor.
            self._attention = [(name, m) for name, m in self.unet.named_modules()
                               if hasattr(m, "set_processor") and hasattr(m, "processor")]
        return self._attention

    def _installed(self) -> bool:
        return self._processor is not None and all(
            m.processor is self._processor for _, m in self._attention_modules())

    def _unet_device_dtype(self) -> tuple[torch.device, torch.dtype]:
        p = next(self.unet.parameters())
        return p.device, p.dtype

    def set(self, active: Sequence[tuple[Hypernetwork, float]]) -> None:
        """Activate these (hypernetwork, multiplier) pairs in order; an empty list restores the
        UNet's original processors. Cheap when nothing changed."""
        new = _normalize(active)
        if not new:
            self._restore()
            return
        device, dtype = self._unet_device_dtype()
        for hypernetwork, _ in new:
            hypernetwork.to(device, dtype)
        if _same_active(new, self.active) and self._installed():
            return
        processor = HypernetworkAttnProcessor(new)
        for name, module in self._attention_modules():
            current = module.processor
            # Anything not ours is the module's own processor (also one somebody installed since).
            if self._processor is None or current is not self._processor:
                self._saved[name] = current
            module.set_processor(processor)
        self._processor = processor
        self.active = new

    def clear_cache(self) -> None:
        """Forget the cached context transforms (at the end of a generation: they are not needed again)."""
        if self._processor is not None:
            self._processor.cache.clear()

    def _restore(self) -> None:
        if self._processor is not None:
            for name, module in self._attention_modules():
                # A module whose processor was replaced by someone else since keeps that one.
                if module.processor is self._processor and name in self._saved:
                    module.set_processor(self._saved[name])
        self._saved.clear()
        self._processor = None
        self.active = []
