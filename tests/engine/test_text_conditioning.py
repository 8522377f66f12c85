"""Text conditioning on tiny random CLIP encoders with the real tokenizers (spec §2.4, §4.4, §4.6, §13.5).

Every expected tensor is computed here directly from the model on hand-built 77-token ids, not through the
code under test.
"""
from types import SimpleNamespace

import pytest
import torch

from modules.engine import emphasis
from modules.engine.conditioning import ClipEncoderChunked, ConditioningOptions, TextConditioner
from tests.engine.test_text_chunks import Lookup

BOS, EOS = 49406, 49407


def tiny_clip(hidden=32, layers=3, seed=0, projection=False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    config = CLIPTextConfig(vocab_size=49408, hidden_size=hidden, intermediate_size=2 * hidden,
                            num_hidden_layers=layers, num_attention_heads=4, max_position_embeddings=77,
                            projection_dim=24, hidden_act="quick_gelu",
                            bos_token_id=0, eos_token_id=2, pad_token_id=1)  # ids as in the real configs
    model = (CLIPTextModelWithProjection if projection else CLIPTextModel)(config).eval()
    with torch.no_grad():
        # token vectors big enough for weights to matter, and tensor means away from 0 (as in real CLIP), since
        # "Original" emphasis divides by the mean
        model.get_input_embeddings().weight.normal_(0.5, 1)
        core = model if hasattr(model, "final_layer_norm") else model.text_model
        core.final_layer_norm.bias.normal_(0.3, 0.5)
    return model


@pytest.fixture(scope="module")
def tok(real_fixtures):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(real_fixtures / "tokenizer" / "sd15"))


@pytest.fixture(scope="module")
def tok_l(real_fixtures):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(real_fixtures / "tokenizer" / "sdxl" / "tokenizer"))


@pytest.fixture(scope="module")
def tok_g(real_fixtures):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(real_fixtures / "tokenizer" / "sdxl" / "tokenizer_2"))


@pytest.fixture(scope="module")
def te():
    return tiny_clip()


@pytest.fixture(scope="module")
def te_l():
    return tiny_clip(hidden=32, seed=1)


@pytest.fixture(scope="module")
def te_g():
    return tiny_clip(hidden=40, seed=2, projection=True)


def ids_of(tokenizer, text):
    return tokenizer([text], add_special_tokens=False, truncation=False, verbose=False)["input_ids"][0]


def row(tokens, pad_zero=False):
    """[BOS] + tokens + EOS padding to 77 (or EOS then zeros)."""
    assert len(tokens) <= 75
    pad = [EOS] + [0] * (75 - len(tokens)) if pad_zero else [EOS] * (76 - len(tokens))
    return [BOS] + list(tokens) + pad


def fragments_row(tokenizer, fragments):
    """Token ids and per-token weights of a one-chunk prompt given as [text, weight] fragments."""
    tokens, weights = [], []
    for text, weight in fragments:
        ids = ids_of(tokenizer, text)
        tokens += ids
        weights += [weight] * len(ids)
    return row(tokens), [1.0] + weights + [1.0] * (76 - len(weights))


@torch.no_grad()
def run(model, ids, **kw):
    return model(input_ids=torch.tensor(ids), output_hidden_states=True, **kw)


class Prompts(list):
    is_negative_prompt = False


# --- emphasis modes ---------------------------------------------------------------------------------------

def test_emphasis_names_and_fallback():
    assert emphasis.names == ["None", "Ignore", "Original", "No norm"]
    assert emphasis.DEFAULT == "Original"
    assert emphasis.get("nonsense").name == "Original"
    assert not emphasis.get("None").parses_attention and emphasis.get("Ignore").parses_attention
    assert all(name in emphasis.options_description() for name in emphasis.names)


def test_emphasis_modes_math():
    torch.manual_seed(0)
    z = torch.randn(2, 77, 8) + 0.5
    m = torch.ones(2, 77)
    m[0, 3], m[1, 5:8] = 1.5, 0.7
    weighted = z * m[..., None]
    assert torch.equal(emphasis.get("None").apply(z, m), z)
    assert torch.equal(emphasis.get("Ignore").apply(z, m), z)
    assert torch.allclose(emphasis.get("No norm").apply(z, m), weighted)
    original = emphasis.get("Original").apply(z, m)
    assert torch.allclose(original, weighted * (z.mean() / weighted.mean()))
    assert torch.allclose(original.mean(), z.mean(), atol=1e-6)
    half = emphasis.get("Original").apply(z.half(), m)
    assert half.dtype == torch.float16
    # all weights 1: unchanged, also for a zero-mean tensor where the formula would divide 0 by 0
    centred = z - z.mean()
    assert torch.equal(emphasis.get("Original").apply(centred, torch.ones(2, 77)), centred)


# --- SD1 --------------------------------------------------------------------------------------------------

def test_sd1_plain_prompt_is_last_hidden_state(tok, te):
    cond = TextConditioner("sd1", [tok], [te]).get_learned_conditioning(["a photo of a cat"])
    expected = run(te, [row(ids_of(tok, "a photo of a cat"))]).last_hidden_state
    assert cond.shape == (1, 77, 32)
    assert torch.allclose(cond, expected, atol=1e-6)


def test_sd1_emphasis_original_matches_reference(tok, te):
    prompts = ["a (red:1.5) cat, [dog]", "(blue:0.5) sky"]
    rows = [
        fragments_row(tok, [["a ", 1.0], ["red", 1.5], [" cat, ", 1.0], ["dog", 1 / 1.1]]),
        fragments_row(tok, [["blue", 0.5], [" sky", 1.0]]),
    ]
    ids = [r[0] for r in rows]
    m = torch.tensor([r[1] for r in rows])
    z = run(te, ids).last_hidden_state
    weighted = z * m[..., None]
    expected = weighted * (z.mean() / weighted.mean())  # mean over the whole (B, 77, C) chunk

    cond = TextConditioner("sd1", [tok], [te]).get_learned_conditioning(prompts)
    assert cond.shape == (2, 77, 32)
    assert torch.allclose(cond, expected, atol=1e-5)
    # the normalisation is batch-wide, not per prompt
    per_row = torch.cat([weighted[i:i + 1] * (z[i].mean() / weighted[i].mean()) for i in range(2)])
    assert not torch.allclose(cond, per_row, atol=1e-5)

    no_norm = TextConditioner("sd1", [tok], [te], ConditioningOptions(emphasis="No norm"))
    assert torch.allclose(no_norm.get_learned_conditioning(prompts), weighted, atol=1e-5)


def test_sd1_emphasis_ignore_and_none(tok, te):
    ignore = TextConditioner("sd1", [tok], [te], ConditioningOptions(emphasis="Ignore"))
    assert torch.allclose(ignore.get_learned_conditioning(["a (red:1.5) cat"]),
                          run(te, [row(ids_of(tok, "a red cat"))]).last_hidden_state, atol=1e-6)

    none = TextConditioner("sd1", [tok], [te], ConditioningOptions(emphasis="None"))
    literal = ids_of(tok, "a (red:1.5) cat")
    assert len(literal) > 3  # brackets, colon and digits are tokens
    assert torch.allclose(none.get_learned_conditioning(["a (red:1.5) cat"]),
                          run(te, [row(literal)]).last_hidden_state, atol=1e-6)
    assert none.count_tokens("a (red:1.5) cat") == (len(literal), 75)


def test_sd1_clip_skip(tok, te):
    conditioner = TextConditioner("sd1", [tok], [te], ConditioningOptions(clip_skip=2))
    out = run(te, [row(ids_of(tok, "a photo of a cat"))])
    expected = te.final_layer_norm(out.hidden_states[-2])
    got = conditioner.get_learned_conditioning(["a photo of a cat"])
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, out.last_hidden_state, atol=1e-3)

    conditioner.options = ConditioningOptions(clip_skip=3)  # options may be replaced between calls
    assert torch.allclose(conditioner.get_learned_conditioning(["a photo of a cat"]),
                          te.final_layer_norm(out.hidden_states[-3]), atol=1e-6)


def test_sd1_long_prompt_chunks_encoded_separately_and_batch_padding(tok, te):
    long = " ".join(["cat"] * 100)
    cond = TextConditioner("sd1", [tok], [te]).get_learned_conditioning(["a dog", long])
    assert cond.shape == (2, 154, 32)
    cat = ids_of(tok, "cat")[0]
    chunk0 = run(te, [row(ids_of(tok, "a dog")), row([cat] * 75)]).last_hidden_state
    chunk1 = run(te, [row([]), row([cat] * 25)]).last_hidden_state
    assert torch.allclose(cond[:, :77], chunk0, atol=1e-6)
    assert torch.allclose(cond[:, 77:], chunk1, atol=1e-6)  # the short prompt got an empty-prompt chunk


def test_sd1_empty_chunk_and_empty_prompt(tok, te):
    conditioner = TextConditioner("sd1", [tok], [te])
    expected = run(te, [[BOS] + [EOS] * 76]).last_hidden_state
    assert torch.allclose(conditioner.empty_chunk(), expected, atol=1e-6)
    assert torch.allclose(conditioner.get_learned_conditioning([""]), expected, atol=1e-6)


def test_count_tokens(tok, te):
    conditioner = TextConditioner("sd1", [tok], [te])
    twelve = "a photo of a cat sitting on a red sofa in sun"
    assert len(ids_of(tok, twelve)) == 12
    assert conditioner.count_tokens(twelve) == (12, 75)
    assert conditioner.count_tokens(" ".join(["cat"] * 80)) == (80, 150)
    assert conditioner.count_tokens("") == (0, 75)
    assert conditioner.count_tokens("(((cat:1.3)))") == (1, 75)
    assert conditioner.count_tokens("cat BREAK dog") == (76, 150)


class CaptureTokenEmbeddings:
    """What the encoder's layers receive, minus the position embeddings: the token embeddings in use."""

    def __init__(self, model):
        self.core = model if hasattr(model, "final_layer_norm") else model.text_model
        self.seen = []

    def __enter__(self):
        def hook(module, args, output):
            self.seen.append(output.detach() - self.core.embeddings.position_embedding.weight[:output.shape[1]])

        self.handle = self.core.embeddings.register_forward_hook(hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_sd1_embedding_vectors_land_at_their_positions(tok, te):
    torch.manual_seed(5)
    easy = SimpleNamespace(name="easynegative", vectors=3, vec=torch.randn(3, 32))
    lookup = Lookup(lambda texts: tok(texts, add_special_tokens=False)["input_ids"], [easy])
    conditioner = TextConditioner("sd1", [tok], [te], embeddings=lookup)
    token_embedding = te.get_input_embeddings()
    with CaptureTokenEmbeddings(te) as capture:
        cond = conditioner.get_learned_conditioning(["a easynegative cat"])
    (seen,) = capture.seen
    a, cat = ids_of(tok, "a")[0], ids_of(tok, "cat")[0]
    ids = [BOS, a, 0, 0, 0, cat] + [EOS] * 71
    expected_inputs = token_embedding.weight[ids].clone()
    expected_inputs[2:5] = easy.vec
    assert torch.allclose(seen[0], expected_inputs, atol=1e-6)
    assert conditioner.last_used_embeddings == {"easynegative": easy}

    # the hook is gone after the call: a plain encode is unchanged
    assert not token_embedding._forward_hooks
    plain = run(te, [ids]).last_hidden_state
    assert not torch.allclose(cond, plain, atol=1e-3)
    assert conditioner.count_tokens("a easynegative cat") == (5, 75)


def test_embedding_moved_whole_to_next_chunk_is_encoded_there(tok, te):
    torch.manual_seed(6)
    easy = SimpleNamespace(name="easynegative", vectors=4, vec=torch.randn(4, 32))
    lookup = Lookup(lambda texts: tok(texts, add_special_tokens=False)["input_ids"], [easy])
    conditioner = TextConditioner("sd1", [tok], [te], embeddings=lookup)
    with CaptureTokenEmbeddings(te) as capture:
        cond = conditioner.get_learned_conditioning([" ".join(["cat"] * 73) + " easynegative"])
    assert cond.shape == (1, 154, 32)
    first, second = capture.seen
    cat = ids_of(tok, "cat")[0]
    weight = te.get_input_embeddings().weight
    assert torch.allclose(first[0], weight[[BOS] + [cat] * 73 + [EOS] * 3], atol=1e-6)
    assert torch.allclose(second[0, 1:5], easy.vec, atol=1e-6)
    assert torch.allclose(second[0, 5:], weight[[EOS] * 72], atol=1e-6)


def test_chunked_encoder_on_its_own(tok, te):
    encoder = ClipEncoderChunked(tok, te, layer="penultimate")
    chunks, count = encoder.chunks([["a cat", 1.0]])
    z, pooled = encoder.encode([chunks])
    assert pooled is None and count == 2
    assert torch.allclose(z, run(te, [row(ids_of(tok, "a cat"))]).hidden_states[-2], atol=1e-6)
    with pytest.raises(ValueError):
        ClipEncoderChunked(tok, te, layer="first")


def test_output_follows_encoder_dtype(tok):
    model = tiny_clip(seed=3).to(torch.bfloat16)
    cond = TextConditioner("sd1", [tok], [model]).get_learned_conditioning(["a (cat:1.2)"])
    assert cond.dtype == torch.bfloat16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_encoders_on_cuda(tok, tok_g):
    l_model, g_model = tiny_clip(seed=1).cuda().half(), tiny_clip(hidden=40, seed=2, projection=True).cuda().half()
    conditioner = TextConditioner("sdxl", [tok, tok_g], [l_model, g_model])
    out = conditioner.get_learned_conditioning(["a (cat:1.2), " + " ".join(["dog"] * 80)])
    assert out["crossattn"].device.type == "cuda" and out["crossattn"].shape == (1, 154, 72)
    assert out["pooled"].device.type == "cuda" and out["pooled"].dtype == torch.float16
    assert torch.isfinite(out["crossattn"]).all()


# --- SD2 --------------------------------------------------------------------------------------------------

def test_sd2_pads_with_zero_and_ignores_clip_skip(tok_g, te):
    conditioner = TextConditioner("sd2", [tok_g], [te], ConditioningOptions(clip_skip=2))
    seen = []
    handle = te.register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs["input_ids"].tolist()),
                                          with_kwargs=True)
    try:
        cond = conditioner.get_learned_conditioning(["a photo of a cat"])
    finally:
        handle.remove()
    ids = row(ids_of(tok_g, "a photo of a cat"), pad_zero=True)
    assert seen == [[ids]]
    assert ids[6:8] == [EOS, 0]
    assert torch.allclose(cond, run(te, [ids]).last_hidden_state, atol=1e-6)
    assert torch.allclose(conditioner.empty_chunk(), run(te, [[BOS, EOS] + [0] * 75]).last_hidden_state, atol=1e-6)


# --- SDXL -------------------------------------------------------------------------------------------------

def sdxl_expected(tok_l, tok_g, te_l, te_g, tokens_l, tokens_g, l_layer=-2):
    out_l = run(te_l, [row(tokens_l)])
    out_g = run(te_g, [row(tokens_g, pad_zero=True)])
    return torch.cat([out_l.hidden_states[l_layer], out_g.hidden_states[-2]], dim=-1), out_g.text_embeds


def test_sdxl_shapes_layers_and_pooled(tok_l, tok_g, te_l, te_g):
    conditioner = TextConditioner("sdxl", [tok_l, tok_g], [te_l, te_g])
    out = conditioner.get_learned_conditioning(["a photo of a cat"])
    assert set(out) == {"crossattn", "pooled"}
    assert out["crossattn"].shape == (1, 77, 32 + 40) and out["pooled"].shape == (1, 24)
    tokens = ids_of(tok_l, "a photo of a cat")
    crossattn, pooled = sdxl_expected(tok_l, tok_g, te_l, te_g, tokens, tokens)
    assert torch.allclose(out["crossattn"], crossattn, atol=1e-6)
    assert torch.allclose(out["pooled"], pooled, atol=1e-6)

    # clip skip does not touch SDXL unless sdxl_clip_l_skip, which then picks hidden_states[-N] of CLIP-L only
    conditioner.options = ConditioningOptions(clip_skip=3)
    assert torch.allclose(conditioner.get_learned_conditioning(["a photo of a cat"])["crossattn"], crossattn, atol=1e-6)
    for skip in (1, 3):
        conditioner.options = ConditioningOptions(clip_skip=skip, sdxl_clip_l_skip=True)
        expected, _ = sdxl_expected(tok_l, tok_g, te_l, te_g, tokens, tokens, l_layer=-skip)
        assert torch.allclose(conditioner.get_learned_conditioning(["a photo of a cat"])["crossattn"], expected,
                              atol=1e-6)


def test_sdxl_pooled_comes_from_the_first_chunk(tok_l, tok_g, te_l, te_g):
    dog = ids_of(tok_l, "dog")[0]
    cat = ids_of(tok_l, "cat")[0]
    text = " ".join(["dog"] * 75 + ["cat"] * 10)
    out = TextConditioner("sdxl", [tok_l, tok_g], [te_l, te_g]).get_learned_conditioning([text])
    assert out["crossattn"].shape == (1, 154, 72)
    first, pooled = sdxl_expected(tok_l, tok_g, te_l, te_g, [dog] * 75, [dog] * 75)
    second, pooled_second = sdxl_expected(tok_l, tok_g, te_l, te_g, [cat] * 10, [cat] * 10)
    assert torch.allclose(out["crossattn"], torch.cat([first, second], dim=1), atol=1e-6)
    assert torch.allclose(out["pooled"], pooled, atol=1e-6)
    assert not torch.allclose(out["pooled"], pooled_second, atol=1e-4)


def test_sdxl_zero_negative(tok_l, tok_g, te_l, te_g):
    conditioner = TextConditioner("sdxl", [tok_l, tok_g], [te_l, te_g])
    negative = Prompts(["", ""])
    negative.is_negative_prompt = True
    out = conditioner.get_learned_conditioning(negative)
    assert out["crossattn"].shape == (2, 77, 72) and out["pooled"].shape == (2, 24)
    assert not out["crossattn"].any() and not out["pooled"].any()

    # not all empty, or not marked negative: encoded normally
    negative_text = Prompts(["", "blurry"])
    negative_text.is_negative_prompt = True
    assert conditioner.get_learned_conditioning(negative_text)["crossattn"].abs().sum() > 0
    assert conditioner.get_learned_conditioning(["", ""])["crossattn"].abs().sum() > 0
    empty = conditioner.empty_chunk()
    assert empty.shape == (1, 77, 72) and torch.allclose(empty, conditioner.get_learned_conditioning([""])["crossattn"])


def test_sdxl_embedding_parts_go_to_their_encoders(tok_l, tok_g, te_l, te_g):
    torch.manual_seed(7)
    easy = SimpleNamespace(name="easynegative", vectors=2, vec={"clip_l": torch.randn(2, 32), "clip_g": torch.randn(2, 40)})
    lookup = Lookup(lambda texts: tok_l(texts, add_special_tokens=False)["input_ids"], [easy])
    conditioner = TextConditioner("sdxl", [tok_l, tok_g], [te_l, te_g], embeddings=lookup)
    with CaptureTokenEmbeddings(te_l) as seen_l, CaptureTokenEmbeddings(te_g) as seen_g:
        conditioner.get_learned_conditioning(["cat easynegative"])
    assert torch.allclose(seen_l.seen[0][0, 2:4], easy.vec["clip_l"], atol=1e-6)
    assert torch.allclose(seen_g.seen[0][0, 2:4], easy.vec["clip_g"], atol=1e-6)
    assert not te_l.get_input_embeddings()._forward_hooks and not te_g.get_input_embeddings()._forward_hooks


def test_family_checks(tok, te):
    with pytest.raises(ValueError):
        TextConditioner("sd3", [tok], [te])
    with pytest.raises(ValueError):
        TextConditioner("sdxl", [tok], [te])


@pytest.mark.parametrize("offload", ["model", "sequential"])
def test_accelerate_offloaded_encoder(tok, offload):
    from accelerate import cpu_offload, cpu_offload_with_hook

    reference = tiny_clip(seed=4)
    ids = row(ids_of(tok, "a photo of a cat"))
    expected = reference.final_layer_norm(run(reference, [ids]).hidden_states[-2])
    model = tiny_clip(seed=4)
    if offload == "sequential":
        cpu_offload(model, execution_device="cpu")  # weights wait on the meta device
    else:
        cpu_offload_with_hook(model, execution_device="cpu")
    conditioner = TextConditioner("sd1", [tok], [model], ConditioningOptions(clip_skip=2))
    assert torch.allclose(conditioner.get_learned_conditioning(["a photo of a cat"]), expected, atol=1e-6)
