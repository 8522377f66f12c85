"""75-token chunking of prompt fragments (spec §4.6, §2.4), with the real CLIP tokenizer."""
from types import SimpleNamespace

import pytest

from modules.engine.text_chunks import (
    EmbeddingFix,
    PromptChunk,
    empty_chunk,
    target_token_count,
    tokenize_fragments,
)

BOS, EOS, COMMA = 49406, 49407, 267
A, B_, C = 320, 321, 322  # "a</w>", "b</w>", "c</w>"


@pytest.fixture(scope="module")
def tokenizer(real_fixtures):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(real_fixtures / "tokenizer" / "sd15"))


@pytest.fixture(scope="module")
def tokenize(tokenizer):
    def run(texts):
        return tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]

    return run


def chunk(fragments, tokenize, **kw):
    kw.setdefault("comma_token", COMMA)
    return tokenize_fragments(fragments, tokenize, bos=BOS, eos=EOS, **kw)


class Lookup:
    """A minimal EmbeddingLookup: trigger token sequences, longest match first."""

    def __init__(self, tokenize, embeddings):
        self.by_ids = {tuple(tokenize([e.name])[0]): e for e in embeddings}

    def find_embedding_at_position(self, tokens, offset):
        for ids in sorted(self.by_ids, key=len, reverse=True):
            if tuple(tokens[offset:offset + len(ids)]) == ids:
                return self.by_ids[ids], len(ids)
        return None, 0


def emb(name, vectors):
    return SimpleNamespace(name=name, vectors=vectors, vec=None)


def test_tokenizer_is_the_real_clip_one(tokenize):
    assert tokenize(["a", "b", "c", ","]) == [[A], [B_], [C], [COMMA]]


def test_empty_prompt_is_one_padded_chunk(tokenize):
    chunks, count = chunk([["", 1.0]], tokenize)
    assert count == 0 and len(chunks) == 1
    assert chunks[0].tokens == [BOS] + [EOS] * 76
    assert chunks[0].multipliers == [1.0] * 77 and chunks[0].fixes == []

    chunks, _ = chunk([["", 1.0]], tokenize, pad_with_zero_after_eos=True)
    assert chunks[0].tokens == [BOS, EOS] + [0] * 75
    assert empty_chunk(bos=BOS, eos=EOS).tokens == [BOS] + [EOS] * 76
    assert empty_chunk(bos=BOS, eos=EOS, pad_with_zero_after_eos=True).tokens == [BOS, EOS] + [0] * 75


def test_short_prompt_weights_and_both_pad_styles(tokenize):
    fragments = [["a ", 1.0], ["b", 1.5], [" c", 1.0]]
    chunks, count = chunk(fragments, tokenize)
    assert count == 3 and len(chunks) == 1
    assert chunks[0].tokens == [BOS, A, B_, C] + [EOS] * 73
    assert chunks[0].multipliers == [1.0, 1.0, 1.5, 1.0] + [1.0] * 73

    chunks, _ = chunk(fragments, tokenize, pad_with_zero_after_eos=True)
    assert chunks[0].tokens == [BOS, A, B_, C, EOS] + [0] * 72
    assert len(chunks[0].tokens) == 77


@pytest.mark.parametrize("n, expected_chunks", [(74, 1), (75, 1), (76, 2), (150, 2), (151, 3)])
def test_chunk_boundaries(tokenize, n, expected_chunks):
    chunks, count = chunk([[" ".join(["a"] * n), 1.0]], tokenize)
    assert count == n
    assert len(chunks) == expected_chunks
    for c in chunks:
        assert len(c.tokens) == 77 and len(c.multipliers) == 77
        assert c.tokens[0] == BOS and c.tokens[-1] == EOS
    assert sum(t == A for c in chunks for t in c.tokens) == n
    assert chunks[0].tokens[1:1 + min(n, 75)] == [A] * min(n, 75)


def test_full_chunk_with_zero_padding_keeps_final_eos(tokenize):
    chunks, _ = chunk([[" ".join(["a"] * 80), 1.0]], tokenize, pad_with_zero_after_eos=True)
    assert chunks[0].tokens == [BOS] + [A] * 75 + [EOS]
    assert chunks[1].tokens == [BOS] + [A] * 5 + [EOS] + [0] * 70


def words_with_comma_at(index, total):
    """`total` single-token words, a comma being the token at `index`."""
    words = ["a"] * total
    words[index] = ","
    return " ".join(words)


@pytest.mark.parametrize("comma_at", [55, 60, 70, 74])
def test_comma_within_backtrack_moves_tail_to_next_chunk(tokenize, comma_at):
    chunks, count = chunk([[words_with_comma_at(comma_at, 90), 1.0]], tokenize)
    assert len(chunks) == 2
    first, second = chunks
    assert first.tokens[1:comma_at + 2] == [A] * comma_at + [COMMA]
    assert first.tokens[comma_at + 2:] == [EOS] * (77 - comma_at - 2)
    moved = 75 - comma_at - 1
    assert second.tokens[1:1 + moved + 15] == [A] * (moved + 15)
    assert second.tokens[1 + moved + 15] == EOS
    # the reference counts the closed chunk as a full 75
    assert count == 75 + moved + 15


@pytest.mark.parametrize("comma_at", [10, 54])
def test_comma_farther_than_backtrack_does_not_move(tokenize, comma_at):
    chunks, count = chunk([[words_with_comma_at(comma_at, 90), 1.0]], tokenize)
    assert len(chunks) == 2
    assert chunks[0].tokens[comma_at + 1] == COMMA
    assert EOS not in chunks[0].tokens[1:76]
    assert count == 90


def test_backtrack_setting(tokenize):
    text = words_with_comma_at(60, 90)
    chunks, _ = chunk([[text, 1.0]], tokenize, comma_padding_backtrack=0)
    assert EOS not in chunks[0].tokens[1:76]
    chunks, _ = chunk([[text, 1.0]], tokenize, comma_padding_backtrack=10)
    assert EOS not in chunks[0].tokens[1:76]
    chunks, _ = chunk([[text, 1.0]], tokenize, comma_padding_backtrack=15)
    assert chunks[0].tokens[62:] == [EOS] * 15


def test_backtrack_keeps_the_moved_tokens_weights(tokenize):
    fragments = [[" ".join(["a"] * 70) + " ,", 1.0], [" ".join(["b"] * 10), 1.3]]
    chunks, _ = chunk(fragments, tokenize)
    assert chunks[0].multipliers[72:] == [1.0] * 5
    assert chunks[1].tokens[1:11] == [B_] * 10
    assert chunks[1].multipliers[1:11] == [1.3] * 10


def test_break_closes_the_chunk(tokenize):
    chunks, count = chunk([["a b", 1.0], ["BREAK", -1], ["c", 1.0]], tokenize)
    assert len(chunks) == 2
    assert chunks[0].tokens == [BOS, A, B_] + [EOS] * 74
    assert chunks[1].tokens == [BOS, C] + [EOS] * 75
    assert count == 76  # the closed chunk counts 75, as in the reference counter
    assert target_token_count(count) == 150


def test_break_only_applies_with_weight_exactly_minus_one(tokenize):
    chunks, _ = chunk([["a", 1.0], ["BREAK", -1.1], ["c", 1.0]], tokenize)
    assert len(chunks) == 1
    assert chunks[0].tokens[1:4] == [A, tokenize(["BREAK"])[0][0], C]


def test_trailing_break_adds_no_empty_chunk(tokenize):
    chunks, count = chunk([["a", 1.0], ["BREAK", -1]], tokenize)
    assert len(chunks) == 1 and count == 75


def test_embedding_placeholders_and_fix(tokenize):
    easy = emb("easynegative", 8)
    lookup = Lookup(tokenize, [easy])
    assert len(tokenize(["easynegative"])[0]) == 2  # a two-token trigger
    chunks, count = chunk([["a b ", 1.0], ["easynegative", 1.2], [" c", 1.0]], tokenize, embeddings=lookup)
    assert count == 2 + 8 + 1
    (c,) = chunks
    assert c.tokens[:12] == [BOS, A, B_] + [0] * 8 + [C]
    assert c.multipliers[3:11] == [1.2] * 8
    assert c.fixes == [EmbeddingFix(offset=2, embedding=easy)]


def test_longest_embedding_match_wins(tokenize):
    short, long = emb("a", 1), emb("a b", 3)
    chunks, count = chunk([["a b a c", 1.0]], tokenize, embeddings=Lookup(tokenize, [short, long]))
    assert [(f.offset, f.embedding.name) for f in chunks[0].fixes] == [(0, "a b"), (3, "a")]
    assert chunks[0].tokens[:7] == [BOS, 0, 0, 0, 0, C, EOS]
    assert count == 5


def test_embedding_that_does_not_fit_starts_the_next_chunk(tokenize):
    big = emb("easynegative", 8)
    text = " ".join(["a"] * 70) + " easynegative c"
    chunks, count = chunk([[text, 1.0]], tokenize, embeddings=Lookup(tokenize, [big]))
    assert len(chunks) == 2
    assert chunks[0].tokens == [BOS] + [A] * 70 + [EOS] * 6 and chunks[0].fixes == []
    assert chunks[1].tokens[:11] == [BOS] + [0] * 8 + [C, EOS]
    assert chunks[1].fixes == [EmbeddingFix(0, big)]
    assert count == 75 + 9


def test_embedding_that_fits_exactly_stays(tokenize):
    big = emb("easynegative", 5)
    chunks, _ = chunk([[" ".join(["a"] * 70) + " easynegative", 1.0]], tokenize, embeddings=Lookup(tokenize, [big]))
    assert len(chunks) == 1
    assert chunks[0].tokens == [BOS] + [A] * 70 + [0] * 5 + [EOS]
    assert chunks[0].fixes == [EmbeddingFix(70, big)]


def test_comma_backtrack_moves_an_embedding_with_its_fix(tokenize):
    e = emb("easynegative", 3)
    text = " ".join(["a"] * 65) + " , b easynegative " + " ".join(["c"] * 10)
    chunks, _ = chunk([[text, 1.0]], tokenize, embeddings=Lookup(tokenize, [e]))
    first, second = chunks
    assert first.fixes == [] and first.tokens[66] == COMMA and first.tokens[67:] == [EOS] * 10
    assert second.tokens[1:5] == [B_, 0, 0, 0]
    assert second.fixes == [EmbeddingFix(1, e)]


def test_300_token_prompt_with_break_and_embedding_at_a_boundary(tokenize):
    e = emb("easynegative", 6)
    lookup = Lookup(tokenize, [e])
    part1 = " ".join(["a"] * 100)  # chunk 1 full, 25 in chunk 2
    part2 = " ".join(["b"] * 72) + " easynegative " + " ".join(["c"] * 30)
    fragments = [[part1, 1.0], ["BREAK", -1], [part2, 1.1], [" " + " ".join(["a"] * 92), 1.0]]
    chunks, count = chunk(fragments, tokenize, embeddings=lookup)
    for c in chunks:
        assert len(c.tokens) == 77 and len(c.multipliers) == 77
        assert c.tokens[0] == BOS and c.tokens[-1] == EOS
    # chunk 0: 75 a; chunk 1: 25 a then BREAK; chunk 2: 72 b, embedding does not fit (72+6 > 75) -> chunk 3
    assert chunks[0].tokens[1:76] == [A] * 75
    assert chunks[1].tokens[1:26] == [A] * 25 and chunks[1].tokens[26:] == [EOS] * 51
    assert chunks[2].tokens[1:73] == [B_] * 72 and chunks[2].tokens[73:] == [EOS] * 4
    assert chunks[2].multipliers[1:73] == [1.1] * 72 and chunks[2].fixes == []
    assert chunks[3].fixes == [EmbeddingFix(0, e)]
    assert chunks[3].tokens[1:7] == [0] * 6 and chunks[3].multipliers[1:7] == [1.1] * 6
    assert chunks[3].tokens[7:37] == [C] * 30
    # 6 + 30 + 92 = 128 tokens after the embedding: chunk 3 has 75, chunk 4 the remaining 53
    assert chunks[3].tokens[37:76] == [A] * 39
    assert chunks[4].tokens[1:54] == [A] * 53 and chunks[4].tokens[54] == EOS
    assert len(chunks) == 5
    assert count == 4 * 75 + 53
    total_prompt_tokens = 100 + 72 + 6 + 30 + 92
    assert total_prompt_tokens == 300


def test_vectors_beyond_a_chunk_are_rejected(tokenize):
    with pytest.raises(ValueError):
        chunk([["easynegative", 1.0]], tokenize, embeddings=Lookup(tokenize, [emb("easynegative", 76)]))


def test_fragments_are_tokenized_separately(tokenize):
    calls = []

    def spy(texts):
        calls.append(list(texts))
        return tokenize(texts)

    chunks, _ = chunk([["a ", 1.0], ["b", 1.1], ["BREAK", -1], [" c", 1.0]], spy)
    assert calls == [["a ", "b", " c"]]
    assert isinstance(chunks[0], PromptChunk)


@pytest.mark.parametrize("count, target", [(0, 75), (1, 75), (12, 75), (75, 75), (76, 150), (80, 150), (151, 225)])
def test_target_token_count(count, target):
    assert target_token_count(count) == target
