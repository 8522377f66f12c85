"""Text conditioning computed as the reference web UI computes it, on transformers CLIP text encoders.

A prompt is parsed for attention (unless the emphasis mode is "None"), cut into 75-token chunks
(`modules.text_chunks`), and every 77-token chunk is encoded on its own; textual-inversion vectors replace the
token embeddings of their placeholders, clip skip picks the hidden layer, the emphasis mode applies the weights,
and the chunks are concatenated along the token axis: [B, 77*k, C]. See spec §2.4, §4.3, §4.4, §4.6, §13.5.

Layers per family (spec §13.5):
- SD1: `last_hidden_state`; with clip skip N > 1, `hidden_states[-N]` through the final layer norm.
- SD2: the converted encoder already stops at the penultimate layer, so `last_hidden_state`; no clip skip.
- SDXL: CLIP-L `hidden_states[-2]` without final layer norm (with `sdxl_clip_l_skip`: `hidden_states[-N]`,
  still without it); OpenCLIP-G `hidden_states[-2]` without final layer norm; the pooled vector is the
  projected `text_embeds` of OpenCLIP-G on the first chunk. Outputs are concatenated as [CLIP-L, CLIP-G].
- SDXL refiner: OpenCLIP-G alone, as in SDXL (context 1280 wide, pooled); its micro-conditioning row (original
  height, width; crop top, left; aesthetic score) is part of each prompt's conditioning, as in A1111's "vector":
  the aesthetic score differs between prompts (`sdxl_refiner_high_aesthetic_score`) and negative prompts
  (`sdxl_refiner_low_aesthetic_score`), so cond and uncond rows carry different values.

Nothing here caches encodings; the caller does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from modules.core import request_bounds
from modules.core.request import RequestError

from modules.engine import emphasis as emphasis_modes
from modules.engine.text_chunks import (
    CHUNK_LENGTH,
    EmbeddingLookup,
    PromptChunk,
    empty_chunk,
    target_token_count,
    tokenize_fragments,
)

LAYERS = ("last", "penultimate", "hidden")
FAMILIES = ("sd1", "sd2", "sdxl", "sdxl-refiner")
# OpenCLIP pads with token 0 after the first EOS, whatever the tokenizer's own pad token is.
OPENCLIP_PAD_ID = 0


@dataclass
class ConditioningOptions:
    comma_padding_backtrack: int = 20  # "Prompt word wrap length limit"; 0 disables
    emphasis: str = emphasis_modes.DEFAULT  # one of modules.emphasis.names
    clip_skip: int = 1  # "Clip skip" (CLIP_stop_at_last_layers), 1 = last layer
    sdxl_clip_l_skip: bool = False  # apply clip skip to SDXL's CLIP-L too
    # the SDXL refiner's micro-conditioning (A1111's sdxl_crop_top/left, sdxl_refiner_high/low_aesthetic_score)
    crop_top: int = 0
    crop_left: int = 0
    high_aesthetic_score: float = 6.0
    low_aesthetic_score: float = 2.5


def parse_fragments(text: str, emphasis: str) -> list[list]:
    """`[[text, weight], ...]` of one prompt, as the emphasis mode wants it parsed."""
    if not emphasis_modes.get(emphasis).parses_attention:
        return [[text, 1.0]]
    from modules.core.prompt_parser import parse_prompt_attention

    return parse_prompt_attention(text)


def _text_core(text_encoder) -> Any:
    """The module that owns `final_layer_norm` (CLIPTextModel itself, or `.text_model` of the projection model)."""
    return text_encoder if hasattr(text_encoder, "final_layer_norm") else text_encoder.text_model


def _encoder_device(text_encoder) -> torch.device:
    """Where the encoder computes: the execution device of an accelerate offload hook (its weights may sit on the
    CPU or the meta device meanwhile), else the device of its weights."""
    for module in text_encoder.modules():
        device = getattr(getattr(module, "_hf_hook", None), "execution_device", None)
        if device is not None:
            return torch.device(device)
    return next(text_encoder.parameters()).device


class ClipEncoderChunked:
    """One tokenizer + CLIP text encoder pair, encoding prompts chunk by chunk.

    `layer`: "last" (SD1/SD2 rule: `last_hidden_state`, or `hidden_states[-N]` + final layer norm for clip
    skip N > 1), "penultimate" (`hidden_states[-2]`, no final layer norm), "hidden" (`hidden_states[-N]`, no
    final layer norm). `pad_with_zero_after_eos`: OpenCLIP padding. `returns_pooled`: also return the pooled
    (projected, where the model has a projection) output of the first chunk. `embedding_key`: which entry of a
    dict-valued embedding `.vec` this encoder takes ("clip_l" / "clip_g"); None picks the entry whose width
    matches the encoder.
    """

    def __init__(self, tokenizer, text_encoder, *, layer: str = "last", pad_with_zero_after_eos: bool = False,
                 returns_pooled: bool = False, embedding_key: str | None = None):
        if layer not in LAYERS:
            raise ValueError(f"layer must be one of {LAYERS}, not {layer!r}")
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self.layer = layer
        self.pad_with_zero_after_eos = pad_with_zero_after_eos
        self.returns_pooled = returns_pooled
        self.embedding_key = embedding_key
        self.bos = tokenizer.bos_token_id
        self.eos = tokenizer.eos_token_id
        self.comma_token = tokenizer.get_vocab().get(",</w>")

    # --- tokens -------------------------------------------------------------------------------------------

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, truncation=False, add_special_tokens=False, verbose=False)["input_ids"]

    def _padding(self) -> dict:
        return dict(bos=self.bos, eos=self.eos, pad_id=OPENCLIP_PAD_ID,
                    pad_with_zero_after_eos=self.pad_with_zero_after_eos)

    def chunks(self, fragments: Sequence[Sequence], *, comma_padding_backtrack: int = 20,
               embeddings: EmbeddingLookup | None = None) -> tuple[list[PromptChunk], int]:
        return tokenize_fragments(fragments, self.tokenize, comma_token=self.comma_token,
                                  comma_padding_backtrack=comma_padding_backtrack, embeddings=embeddings,
                                  **self._padding())

    def empty_chunk(self) -> PromptChunk:
        return empty_chunk(**self._padding())

    # --- encoding -----------------------------------------------------------------------------------------

    def _embedding_vectors(self, embedding, width: int) -> torch.Tensor:
        vec = embedding.vec
        if isinstance(vec, dict):
            if self.embedding_key is not None:
                vec = vec[self.embedding_key]
            else:
                matching = [v for v in vec.values() if v.shape[-1] == width]
                if len(matching) != 1:
                    raise ValueError(f"embedding {getattr(embedding, 'name', '?')!r}: no single entry of width {width}")
                vec = matching[0]
        return vec.reshape(-1, vec.shape[-1])

    def _run_encoder(self, ids: torch.Tensor, fixes: list[list]) -> Any:
        """Runs the encoder on [B, 77] ids with hidden states; embedding vectors replace the token embeddings
        at their fixes through a forward hook that exists only during this call."""
        handle = None
        if any(fixes):
            def put_vectors(module, args, output):
                output = output.clone()
                for row, row_fixes in enumerate(fixes):
                    for fix in row_fixes:
                        vec = self._embedding_vectors(fix.embedding, output.shape[-1])
                        count = min(output.shape[1] - fix.offset - 1, vec.shape[0])
                        output[row, fix.offset + 1:fix.offset + 1 + count] = vec[:count].to(output.device, output.dtype)
                return output

            handle = self.text_encoder.get_input_embeddings().register_forward_hook(put_vectors)
        try:
            return self.text_encoder(input_ids=ids, output_hidden_states=True)
        finally:
            if handle is not None:
                handle.remove()

    def _select_layer(self, outputs, layer: str, clip_skip: int) -> torch.Tensor:
        if layer == "penultimate":
            return outputs.hidden_states[-2]
        if layer == "hidden":
            return outputs.hidden_states[-max(clip_skip, 1)]
        if clip_skip > 1:
            return _text_core(self.text_encoder).final_layer_norm(outputs.hidden_states[-clip_skip])
        return outputs.last_hidden_state

    @staticmethod
    def _pooled(outputs) -> torch.Tensor:
        pooled = getattr(outputs, "text_embeds", None)
        return outputs.pooler_output if pooled is None else pooled

    # Training an embedding (modules.training) needs gradients through the encoder to the embedding's vectors.
    track_grad = False

    def encode_chunk(self, chunks: list[PromptChunk], *, emphasis: str = emphasis_modes.DEFAULT, clip_skip: int = 1,
                     layer: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One chunk of every prompt in the batch -> ([B, 77, C], pooled [B, P] or None)."""
        with torch.set_grad_enabled(self.track_grad and torch.is_grad_enabled()):
            return self._encode_chunk(chunks, emphasis=emphasis, clip_skip=clip_skip, layer=layer)

    def _encode_chunk(self, chunks: list[PromptChunk], *, emphasis: str, clip_skip: int,
                      layer: str | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        ids = torch.tensor([c.tokens for c in chunks], dtype=torch.long, device=_encoder_device(self.text_encoder))
        outputs = self._run_encoder(ids, [c.fixes for c in chunks])
        z = self._select_layer(outputs, layer or self.layer, clip_skip)
        multipliers = torch.tensor([c.multipliers for c in chunks], dtype=torch.float32, device=z.device)
        z = emphasis_modes.get(emphasis).apply(z, multipliers)
        return z, (self._pooled(outputs) if self.returns_pooled else None)

    def encode(self, batch_chunks: list[list[PromptChunk]], *, emphasis: str = emphasis_modes.DEFAULT,
               clip_skip: int = 1, layer: str | None = None,
               chunk_count: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Chunks of every prompt -> ([B, 77*k, C], pooled of the first chunk or None). Prompts with fewer
        chunks than `chunk_count` (default: the most any prompt has) get empty-prompt chunks."""
        count = max([len(c) for c in batch_chunks] + [chunk_count or 0])
        zs, pooled = [], None
        for index in range(count):
            column = [c[index] if index < len(c) else self.empty_chunk() for c in batch_chunks]
            z, chunk_pooled = self.encode_chunk(column, emphasis=emphasis, clip_skip=clip_skip, layer=layer)
            zs.append(z)
            if index == 0:
                pooled = chunk_pooled
        return torch.cat(zs, dim=1), pooled


def _check_chunk_bound(texts: Sequence[str], per_encoder: list[list[list[PromptChunk]]]) -> None:
    """A prompt of more chunks than ``--max-prompt-chunks`` is the client's mistake (the encoder would run once
    per chunk and every UNet step attend to all of them)."""
    count = max((len(chunks) for batch in per_encoder for chunks in batch), default=0)
    try:
        request_bounds.check_chunk_count(count)
    except request_bounds.BoundError as exc:
        field = "negative_prompt" if getattr(texts, "is_negative_prompt", False) else "prompt"
        raise RequestError(field, str(exc)) from None


class TextConditioner:
    """Prompts -> conditioning tensors for one model family, with the reference web UI's options."""

    def __init__(self, family: str, tokenizers: list, text_encoders: list, options: ConditioningOptions | None = None,
                 embeddings: EmbeddingLookup | None = None):
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
        expected = 2 if family == "sdxl" else 1
        if len(tokenizers) < expected or len(text_encoders) < expected:
            raise ValueError(f"{family} needs {expected} tokenizer(s) and text encoder(s)")
        self.family = family
        self.options = options or ConditioningOptions()
        self.embeddings = embeddings
        if family == "sdxl":
            self.encoders = [
                ClipEncoderChunked(tokenizers[0], text_encoders[0], layer="penultimate", embedding_key="clip_l"),
                ClipEncoderChunked(tokenizers[1], text_encoders[1], layer="penultimate", pad_with_zero_after_eos=True,
                                   returns_pooled=True, embedding_key="clip_g"),
            ]
        elif family == "sdxl-refiner":
            self.encoders = [ClipEncoderChunked(tokenizers[0], text_encoders[0], layer="penultimate",
                                                pad_with_zero_after_eos=True, returns_pooled=True, embedding_key="clip_g")]
        else:
            self.encoders = [ClipEncoderChunked(tokenizers[0], text_encoders[0], layer="last",
                                                pad_with_zero_after_eos=family == "sd2")]
        # Embeddings found in the prompts of the last get_learned_conditioning call, by name (for "TI hashes").
        self.last_used_embeddings: dict[str, Any] = {}

    def _layer_and_skip(self, encoder_index: int) -> tuple[str | None, int]:
        clip_skip = max(int(self.options.clip_skip or 1), 1)
        if self.family in ("sd2", "sdxl-refiner"):
            return None, 1
        if self.family == "sdxl":
            if encoder_index == 0 and self.options.sdxl_clip_l_skip:
                return "hidden", clip_skip
            return None, 1
        return None, clip_skip

    def _batch_chunks(self, texts: Sequence[str]) -> list[list[list[PromptChunk]]]:
        """Per encoder, per prompt: the chunk list."""
        fragments = [parse_fragments(text, self.options.emphasis) for text in texts]
        return [[encoder.chunks(f, comma_padding_backtrack=self.options.comma_padding_backtrack,
                                embeddings=self.embeddings)[0] for f in fragments]
                for encoder in self.encoders]

    def _encode(self, per_encoder: list[list[list[PromptChunk]]]) -> tuple[torch.Tensor, torch.Tensor | None]:
        # Both SDXL encoders must give the same number of chunks to be concatenated channel-wise.
        chunk_count = max(len(chunks) for batch in per_encoder for chunks in batch)
        zs, pooled = [], None
        for index, (encoder, batch) in enumerate(zip(self.encoders, per_encoder)):
            layer, clip_skip = self._layer_and_skip(index)
            z, encoder_pooled = encoder.encode(batch, emphasis=self.options.emphasis, clip_skip=clip_skip, layer=layer,
                                               chunk_count=chunk_count)
            zs.append(z)
            pooled = encoder_pooled if encoder_pooled is not None else pooled
        return (zs[0] if len(zs) == 1 else torch.cat(zs, dim=-1)), pooled

    def get_learned_conditioning(self, texts: Sequence[str]) -> torch.Tensor | dict[str, torch.Tensor]:
        """[B, 77*k, C] for sd1/sd2; {"crossattn": [B, 77*k, 2048], "pooled": [B, 1280]} for sdxl;
        {"crossattn": [B, 77*k, 1280], "pooled": [B, 1280], "time_ids": [B, 5]} for sdxl-refiner (the size comes
        from `texts.width` / `texts.height`).

        For sdxl and its refiner, a batch marked `is_negative_prompt` whose texts are all empty gives zeros (the
        reference's `force_zero_embeddings`, which zeroes the text embedder's outputs only)."""
        per_encoder = self._batch_chunks(texts)
        _check_chunk_bound(texts, per_encoder)
        self.last_used_embeddings = {
            getattr(fix.embedding, "name", str(id(fix.embedding))): fix.embedding
            for chunks in per_encoder[0] for chunk in chunks for fix in chunk.fixes
        }
        z, pooled = self._encode(per_encoder)
        if self.family not in ("sdxl", "sdxl-refiner"):
            return z
        negative = getattr(texts, "is_negative_prompt", False)
        if negative and all(text == "" for text in texts):
            z, pooled = torch.zeros_like(z), torch.zeros_like(pooled)
        if self.family == "sdxl":
            return {"crossattn": z, "pooled": pooled}
        return {"crossattn": z, "pooled": pooled, "time_ids": self._refiner_time_ids(texts, negative, z.shape[0], z.device)}

    def _refiner_time_ids(self, texts: Sequence[str], negative: bool, rows: int, device: torch.device) -> torch.Tensor:
        """The refiner's (original height, width, crop top, left, aesthetic score) for each row, as A1111's
        sd_models_xl builds them from the SdConditioning (the image size defaults to the native 1024)."""
        opts = self.options
        height = getattr(texts, "height", None) or 1024
        width = getattr(texts, "width", None) or 1024
        score = opts.low_aesthetic_score if negative else opts.high_aesthetic_score
        row = torch.tensor([height, width, opts.crop_top, opts.crop_left, score], dtype=torch.float32, device=device)
        return row.unsqueeze(0).repeat(rows, 1)

    def empty_chunk(self) -> torch.Tensor:
        """Cross-attention conditioning of the empty prompt, [1, 77, C] (for sdxl the crossattn part)."""
        z, _ = self._encode([[[encoder.empty_chunk()]] for encoder in self.encoders])
        return z

    def count_tokens(self, text: str) -> tuple[int, int]:
        """(tokens used, target) as the token counter shows them; `text` is free of extra-network tags and
        schedules (the caller removes them)."""
        _, count = self.encoders[0].chunks(parse_fragments(text, self.options.emphasis),
                                           comma_padding_backtrack=self.options.comma_padding_backtrack,
                                           embeddings=self.embeddings)
        return count, target_token_count(count, CHUNK_LENGTH)
