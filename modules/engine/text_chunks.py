"""Prompt fragments -> 75-token chunks, as the reference web UI builds them (spec §4.6, §2.4).

Pure: no torch, no model. Input is the output of the attention parser, a list of `[text, weight]` fragments
(`["BREAK", -1]` closes a chunk). Each fragment is tokenized on its own, without special tokens; its tokens
are appended to the current chunk with the fragment's weight. A chunk holds `chunk_length` (75) prompt tokens
and is wrapped `[BOS] + 75 + [EOS]` = 77 tokens, padded with EOS (SD1, SDXL CLIP-L) or, with
`pad_with_zero_after_eos` (SD2, SDXL OpenCLIP-G), with `pad_id` after the first EOS.

Rules, in the order they are checked for every token:
- a comma token remembers its position in the chunk;
- when the chunk is full and the last comma is at most `comma_padding_backtrack` tokens from its end, the
  tokens after that comma move to the next chunk ("Prompt word wrap length limit"; 0 disables it);
- a full chunk is closed;
- a textual-inversion embedding whose token ids start here is replaced by `vectors` placeholder tokens (id 0)
  carrying the fragment's weight and an `EmbeddingFix`; an embedding never straddles two chunks: if it does
  not fit in the rest of the current chunk, that chunk is closed first.

The token count follows the reference counter: every chunk closed before the last one counts as a full
`chunk_length` (so `a BREAK b` counts 76, and the UI shows 76/150), the last chunk counts its real tokens;
an embedding counts as its number of vectors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

CHUNK_LENGTH = 75
EMBEDDING_PLACEHOLDER_ID = 0


@dataclass
class EmbeddingFix:
    """Embedding vectors to put into a chunk at encode time.

    `offset` counts prompt tokens inside the chunk, BOS excluded: the vectors replace the token embeddings at
    positions `offset + 1 ... offset + vectors` of the 77-token sequence.
    """

    offset: int
    embedding: Any


@dataclass
class PromptChunk:
    """One encoder pass: 77 token ids (after `tokenize_fragments`), one weight per token, embedding fixes."""

    tokens: list[int] = field(default_factory=list)
    multipliers: list[float] = field(default_factory=list)
    fixes: list[EmbeddingFix] = field(default_factory=list)


class EmbeddingLookup(Protocol):
    def find_embedding_at_position(self, tokens: list[int], offset: int) -> tuple[Any | None, int]:
        """The embedding whose trigger token ids start at `tokens[offset]` (longest match first) and how many
        prompt tokens that trigger covers; `(None, 0)` when none matches. The embedding has `.vectors`
        (int), `.vec` (Tensor [n, dim] or a dict such as {"clip_l": ..., "clip_g": ...}) and `.name`."""
        ...


def target_token_count(token_count: int, chunk_length: int = CHUNK_LENGTH) -> int:
    """What the token counter shows after the slash: whole chunks, at least one."""
    return -(-max(token_count, 1) // chunk_length) * chunk_length


def is_break(text: str, weight: float) -> bool:
    """`BREAK` closes a chunk only with weight exactly -1 (one inside brackets has another weight: plain text)."""
    return text == "BREAK" and weight == -1


def empty_chunk(*, bos: int, eos: int, pad_id: int = 0, pad_with_zero_after_eos: bool = False,
                chunk_length: int = CHUNK_LENGTH) -> PromptChunk:
    """The chunk of the empty prompt: `[BOS, EOS, EOS...]` (or `[BOS, EOS, pad...]`)."""
    chunk = PromptChunk()
    _wrap(chunk, bos=bos, eos=eos, pad_id=pad_id, pad_with_zero_after_eos=pad_with_zero_after_eos,
          chunk_length=chunk_length)
    return chunk


def _wrap(chunk: PromptChunk, *, bos: int, eos: int, pad_id: int, pad_with_zero_after_eos: bool,
          chunk_length: int) -> None:
    """Pads `chunk` to `chunk_length` with EOS and adds BOS/EOS around it, in place."""
    missing = chunk_length - len(chunk.tokens)
    tokens = [bos] + chunk.tokens + [eos] * missing + [eos]
    if pad_with_zero_after_eos:
        first_eos = tokens.index(eos)
        tokens[first_eos + 1:] = [pad_id] * (len(tokens) - first_eos - 1)
    chunk.tokens = tokens
    chunk.multipliers = [1.0] + chunk.multipliers + [1.0] * missing + [1.0]


def tokenize_fragments(
    fragments: Sequence[Sequence],
    tokenize: Callable[[list[str]], list[list[int]]],
    *,
    comma_token: int | None,
    chunk_length: int = CHUNK_LENGTH,
    comma_padding_backtrack: int = 20,
    embeddings: EmbeddingLookup | None = None,
    bos: int,
    eos: int,
    pad_id: int = 0,
    pad_with_zero_after_eos: bool = False,
) -> tuple[list[PromptChunk], int]:
    """Builds the chunks of one prompt. Returns `(chunks, token_count)`; see the module docstring."""
    wrap = dict(bos=bos, eos=eos, pad_id=pad_id, pad_with_zero_after_eos=pad_with_zero_after_eos,
                chunk_length=chunk_length)
    chunks: list[PromptChunk] = []
    chunk = PromptChunk()
    last_comma = -1
    token_count = 0

    def close(is_last: bool = False) -> None:
        nonlocal chunk, last_comma, token_count
        token_count += len(chunk.tokens) if is_last else chunk_length
        _wrap(chunk, **wrap)
        chunks.append(chunk)
        chunk = PromptChunk()
        last_comma = -1

    texts = [text for text, weight in fragments if not is_break(text, weight)]
    token_lists = iter(tokenize(texts) if texts else [])

    for text, weight in fragments:
        if is_break(text, weight):
            close()
            continue
        tokens = list(next(token_lists))
        position = 0
        while position < len(tokens):
            token = tokens[position]
            if token == comma_token:
                last_comma = len(chunk.tokens)
            elif (comma_padding_backtrack and len(chunk.tokens) == chunk_length and last_comma != -1
                  and chunk_length - last_comma <= comma_padding_backtrack):
                # Move what follows the last comma (with any embedding inside it) to the next chunk.
                cut = last_comma + 1
                moved = PromptChunk(chunk.tokens[cut:], chunk.multipliers[cut:],
                                    [EmbeddingFix(f.offset - cut, f.embedding) for f in chunk.fixes if f.offset >= cut])
                chunk.tokens, chunk.multipliers = chunk.tokens[:cut], chunk.multipliers[:cut]
                chunk.fixes = [f for f in chunk.fixes if f.offset < cut]
                close()
                chunk = moved

            if len(chunk.tokens) == chunk_length:
                close()

            embedding, covered = (None, 0) if embeddings is None else embeddings.find_embedding_at_position(tokens, position)
            if embedding is None:
                chunk.tokens.append(token)
                chunk.multipliers.append(weight)
                position += 1
                continue

            vectors = int(embedding.vectors)
            if vectors > chunk_length:
                raise ValueError(f"embedding {getattr(embedding, 'name', '?')!r} has {vectors} vectors; "
                                 f"at most {chunk_length} fit in one chunk")
            if len(chunk.tokens) + vectors > chunk_length:
                close()
            chunk.fixes.append(EmbeddingFix(len(chunk.tokens), embedding))
            chunk.tokens += [EMBEDDING_PLACEHOLDER_ID] * vectors
            chunk.multipliers += [weight] * vectors
            position += max(int(covered), 1)

    if chunk.tokens or not chunks:
        close(is_last=True)
    return chunks, token_count
