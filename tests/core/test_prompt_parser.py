"""Prompt scheduling, attention, AND and conditioning reconstruction (spec §4.2, §4.3, §4.5)."""
import pytest
import torch

from modules.core import prompt_parser
from modules.core.prompt_parser import (
    ComposableScheduledPromptConditioning,
    MulticondLearnedConditioning,
    ScheduledPromptConditioning,
    SdConditioning,
    get_learned_conditioning,
    get_learned_conditioning_prompt_schedules,
    get_multicond_learned_conditioning,
    get_multicond_prompt_list,
    parse_prompt_attention,
    reconstruct_cond_batch,
    reconstruct_multicond_batch,
)


def g(prompt, steps=10, hires_steps=None, old=False):
    return get_learned_conditioning_prompt_schedules([prompt], steps, hires_steps, old)[0]


# --- spec §4.2, verbatim -------------------------------------------------------------------------------
BASE_VECTORS = [
    ("test", [[10, "test"]]),
    ("a [b:3]", [[3, "a "], [10, "a b"]]),
    ("a [b: 3]", [[3, "a "], [10, "a b"]]),
    ("a [[[b]]:2]", [[2, "a "], [10, "a [[b]]"]]),
    ("[(a:2):3]", [[3, ""], [10, "(a:2)"]]),
    ("a [b : c : 1] d", [[1, "a b  d"], [10, "a  c  d"]]),
    ("a[b:[c:d:2]:1]e", [[1, "abe"], [2, "ace"], [10, "ade"]]),
    ("a [unbalanced", [[10, "a [unbalanced"]]),
    ("a [b:.5] c", [[5, "a  c"], [10, "a b c"]]),
    ("((a][:b:c [d:3]", [[3, "((a][:b:c "], [10, "((a][:b:c d"]]),
    ("[a|(b:1.1)]", [[1, "a"], [2, "(b:1.1)"], [3, "a"], [4, "(b:1.1)"], [5, "a"], [6, "(b:1.1)"], [7, "a"],
                     [8, "(b:1.1)"], [9, "a"], [10, "(b:1.1)"]]),
    ("[fe|]male", [[1, "female"], [2, "male"], [3, "female"], [4, "male"], [5, "female"], [6, "male"],
                   [7, "female"], [8, "male"], [9, "female"], [10, "male"]]),
    ("[fe|||]male", [[1, "female"], [2, "male"], [3, "male"], [4, "male"], [5, "female"], [6, "male"],
                     [7, "male"], [8, "male"], [9, "female"], [10, "male"]]),
]

HIRES_VECTORS = [
    ("a [b:.5] c", [[10, "a b c"]]),
    ("a [b:1.5] c", [[5, "a  c"], [10, "a b c"]]),
]


@pytest.mark.parametrize("prompt,expected", BASE_VECTORS)
def test_spec_vectors_base(prompt, expected):
    assert g(prompt) == expected


@pytest.mark.parametrize("prompt,expected", HIRES_VECTORS)
def test_spec_vectors_hires(prompt, expected):
    assert g(prompt, 10, 10) == expected


@pytest.mark.xfail(strict=True, reason="the reference's own doctest expectation; A1111 itself fails it (spec §4.2)")
def test_spec_vector_marked_wrong_verbatim():
    assert g("a [{b|d{:.5] c") == [[5, "a  c"], [10, "a {b|d{ c"]]


def test_spec_vector_marked_wrong_actual_a1111_result():
    # a "|" outside an alternation is a parse failure: the prompt is used unchanged
    assert g("a [{b|d{:.5] c") == [[10, "a [{b|d{:.5] c"]]


# --- further scheduling -----------------------------------------------------------------------------------
def test_decimal_point_decides_fraction_or_absolute():
    assert g("a [b:1]") == [[1, "a "], [10, "a b"]]  # absolute step 1
    assert g("a [b:1.0]") == [[10, "a "]]  # fraction: the whole pass
    assert g("a [b:1.]") == [[10, "a "]]
    assert g("a [b:0]") == [[10, "a b"]]  # boundary < 1: never "before"
    assert g("a [b:25]") == [[10, "a "]]  # clamped to steps
    assert g("a [b:-3]") == [[10, "a b"]]
    assert g("a [b:+3]") == [[3, "a "], [10, "a b"]]
    assert g("a [b:.25]") == [[2, "a "], [10, "a b"]]  # int(2.5)


def test_hires_offsets():
    # absolute numbers base+1..base+hires and fractions 1.0..2.0 address the hires pass
    assert g("a [b:12]", 10, 4) == [[2, "a "], [4, "a b"]]
    assert g("a [b:3]", 10, 4) == [[4, "a b"]]  # before the hires pass: already switched
    assert g("a [b:1.5]", 10, 4) == [[2, "a "], [4, "a b"]]
    assert g("a [b:2.0]", 10, 4) == [[4, "a "]]
    assert g("[x|y]", 10, 3) == [[1, "x"], [2, "y"], [3, "x"]]


def test_old_timeline():
    assert g("a [b:.5]", 10, old=True) == [[5, "a "], [10, "a b"]]
    assert g("a [b:3]", 10, old=True) == [[3, "a "], [10, "a b"]]
    # below 1 is a fraction, anything else absolute, even with a decimal point
    assert g("a [b:1.5]", 10, old=True) == [[1, "a "], [10, "a b"]]
    assert g("a [b:1.0]", 10, old=True) == [[1, "a "], [10, "a b"]]
    # hires: same 0..1 range, and (as in the reference) the schedule counts base steps
    assert g("a [b:.5]", 10, 20, old=True) == [[5, "a "], [10, "a b"]]


def test_scheduling_nested_in_alternation_and_back():
    assert g("[a|[b:c:2]]", 4) == [[1, "a"], [2, "b"], [3, "a"], [4, "c"]]
    assert g("[[x|y]:z:2]", 4) == [[1, "x"], [2, "y"], [3, "z"], [4, "z"]]
    assert g("[a:b:2] [c:d:3]", 4) == [[2, "a c"], [3, "b c"], [4, "b d"]]
    assert g("[from::2]x", 4) == [[2, "fromx"], [4, "x"]]
    assert g("[:to:2]x", 4) == [[2, "x"], [4, "tox"]]


def test_alternation_empty_and_step_indexing():
    assert g("[|a]", 3) == [[1, ""], [2, "a"], [3, ""]]
    assert g("[a|b|c]", 5) == [[1, "a"], [2, "b"], [3, "c"], [4, "a"], [5, "b"]]


def test_text_kept_verbatim():
    assert g("") == [[10, ""]]
    assert g("(a:1.2), \\(b\\), [c]") == [[10, "(a:1.2), \\(b\\), [c]"]]
    assert g("x\n[y:2]\tz") == [[2, "x\n\tz"], [10, "x\ny\tz"]]
    assert g("a: b (c:d) ) ]") == [[10, "a: b (c:d) ) ]"]]


def test_parse_failures_give_the_prompt_unchanged():
    assert g("a | [b:3]") == [[10, "a | [b:3]"]]
    assert g("a [b:3] \\") == [[10, "a [b:3] \\"]]


def test_stray_brackets_do_not_hide_edits():
    assert g("[[a:b:3]", 4) == [[3, "[a"], [4, "[b"]]
    assert g("a) [b:2] :(", 4) == [[2, "a)  :("], [4, "a) b :("]]
    # A1111 leaves this prompt unchanged (its lexer swallows "]]]"); the grammar of spec §4.1 reads the edit
    assert g("x ]] [a:b:3]]] ][:y", 4) == [[3, "x ]] a]] ][:y"], [4, "x ]] b]] ][:y"]]


def test_huge_numbers_do_not_raise():
    assert g("a [b:1e999]") == [[10, "a "]]
    assert g("a [b:-1e999]") == [[10, "a b"]]
    assert g("a [b:1e1]") == [[10, "a "]]


def test_batch_keeps_order_and_duplicates():
    res = get_learned_conditioning_prompt_schedules(["a [b:3]", "c", "a [b:3]"], 10)
    assert res == [[[3, "a "], [10, "a b"]], [[10, "c"]], [[3, "a "], [10, "a b"]]]


# --- spec §4.3 ------------------------------------------------------------------------------------------------
ATTENTION_VECTORS = [
    ("normal text", [["normal text", 1.0]]),
    ("an (important) word", [["an ", 1.0], ["important", 1.1], [" word", 1.0]]),
    ("(unbalanced", [["unbalanced", 1.1]]),
    (r"\(literal\]", [["(literal]", 1.0]]),
    ("(unnecessary)(parens)", [["unnecessaryparens", 1.1]]),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     [["a ", 1.0], ["house", 1.5730000000000004], [" ", 1.1], ["on", 1.0], [" a ", 1.1], ["hill", 0.55],
      [", sun, ", 1.1], ["sky", 1.4641000000000006], [".", 1.1]]),
]


@pytest.mark.parametrize("text,expected", ATTENTION_VECTORS)
def test_attention_spec_vectors(text, expected):
    assert parse_prompt_attention(text) == expected


def test_attention_more():
    assert parse_prompt_attention("") == [["", 1.0]]
    assert parse_prompt_attention("[x]") == [["x", 1 / 1.1]]
    assert parse_prompt_attention("[unbalanced") == [["unbalanced", 1 / 1.1]]
    assert parse_prompt_attention("(x:-0.5)") == [["x", -0.5]]
    assert parse_prompt_attention("( x : 1.3 )") == [[" x ", 1.3]]
    assert parse_prompt_attention("a:1.2)") == [["a:1.2)", 1.0]]  # no "(" open: text
    assert parse_prompt_attention("(a:1.2.3)") == [["a:1.2.3", 1.1]]  # not a number: ":" is text
    assert parse_prompt_attention("x ] y )") == [["x ] y )", 1.0]]
    assert parse_prompt_attention(r"a\b\\c") == [["ab\\c", 1.0]]  # lone "\" dropped, "\\" literal
    assert parse_prompt_attention("a: b") == [["a: b", 1.0]]


def test_attention_break():
    assert parse_prompt_attention("a BREAK b") == [["a", 1.0], ["BREAK", -1], ["b", 1.0]]
    assert parse_prompt_attention("a\nBREAK\nb") == [["a", 1.0], ["BREAK", -1], ["b", 1.0]]
    assert parse_prompt_attention("BREAKFAST") == [["BREAKFAST", 1.0]]
    assert parse_prompt_attention("break") == [["break", 1.0]]
    # inside brackets the -1 is multiplied and so no longer a break for the chunker
    assert parse_prompt_attention("(a BREAK b)") == [["a", 1.1], ["BREAK", -1.1], ["b", 1.1]]


# --- spec §4.5 -----------------------------------------------------------------------------------------------
MULTICOND_VECTORS = [
    (["a cat AND a dog:0.5 AND a bird :-1"],
     ([[(0, 1.0), (1, 0.5), (2, -1.0)]], ["a cat", " a dog", " a bird"], {"a cat": 0, " a dog": 1, " a bird": 2})),
    (["a cat:1.2"], ([[(0, 1.2)]], ["a cat"], {"a cat": 0})),
    (["a cat AND a cat"], ([[(0, 1.0), (1, 1.0)]], ["a cat", " a cat"], {"a cat": 0, " a cat": 1})),
    (["ANDROID AND x"], ([[(0, 1.0), (1, 1.0)]], ["ANDROID", " x"], {"ANDROID": 0, " x": 1})),
]


@pytest.mark.parametrize("prompts,expected", MULTICOND_VECTORS)
def test_multicond_spec_vectors(prompts, expected):
    res_indexes, flat, indexes = get_multicond_prompt_list(prompts)
    assert (res_indexes, list(flat), indexes) == expected
    assert isinstance(flat, SdConditioning)


def test_multicond_shares_texts_across_prompts_and_keeps_attributes():
    prompts = SdConditioning(["x AND y", "y AND x:2"], width=640, height=512)
    res_indexes, flat, _ = get_multicond_prompt_list(prompts)
    assert list(flat) == ["x", " y", "y", " x"]
    assert res_indexes == [[(0, 1.0), (1, 1.0)], [(2, 1.0), (3, 2.0)]]
    assert (flat.width, flat.height, flat.is_negative_prompt) == (640, 512, False)
    assert get_multicond_prompt_list(["andand AND:.5"])[0] == [[(0, 1.0), (1, 0.5)]]


def test_sd_conditioning():
    a = SdConditioning(["p"], is_negative_prompt=True, width=1, height=2)
    b = SdConditioning(["q", "r"], copy_from=a)
    assert list(b) == ["q", "r"] and (b.is_negative_prompt, b.width, b.height) == (True, 1, 2)
    c = SdConditioning(["s"], width=9, copy_from=a)
    assert (c.width, c.height) == (9, 2)
    d = SdConditioning(["t"])
    assert (d.is_negative_prompt, d.width, d.height) == (False, None, None)


# --- conditioning with a fake model ---------------------------------------------------------------------------
class FakeModel:
    """Encodes text k (in order of first sight, from 1) as token j having value 100*k + j.

    ``tokens(text)`` gives each call's token count (the longest text of the call decides).
    """

    def __init__(self, dict_mode=False, tokens=lambda text: 3, channels=2):
        self.dict_mode = dict_mode
        self.tokens = tokens
        self.channels = channels
        self.ids = {}
        self.calls = []

    def id(self, text):
        return self.ids.setdefault(text, len(self.ids) + 1)

    def row(self, text, n_tokens):
        values = 100.0 * self.id(text) + torch.arange(n_tokens, dtype=torch.float32)
        return values[:, None].expand(n_tokens, self.channels).clone()

    def get_learned_conditioning(self, texts):
        assert isinstance(texts, SdConditioning)
        self.calls.append(texts)
        n_tokens = max(self.tokens(t) for t in texts)
        cross = torch.stack([self.row(t, n_tokens) for t in texts])
        if not self.dict_mode:
            return cross
        pooled = torch.tensor([[float(self.id(t))] * 4 for t in texts])
        return {"crossattn": cross, "pooled": pooled}


def test_get_learned_conditioning_schedules_and_calls():
    model = FakeModel()
    prompts = SdConditioning(["a [b:c:2]", "[x|y]", "a [b:c:2]"], is_negative_prompt=True, width=64, height=32)
    res = get_learned_conditioning(model, prompts, 4)

    # one call per distinct prompt, with the distinct scheduled texts, attributes copied
    assert [list(c) for c in model.calls] == [["a b", "a c"], ["x", "y"]]
    assert all((c.is_negative_prompt, c.width, c.height) == (True, 64, 32) for c in model.calls)

    assert [e.end_at_step for e in res[0]] == [2, 4]
    assert torch.equal(res[0][0].cond, model.row("a b", 3)) and torch.equal(res[0][1].cond, model.row("a c", 3))
    assert res[2] is res[0]
    assert [e.end_at_step for e in res[1]] == [1, 2, 3, 4]
    assert [int(e.cond[0, 0]) // 100 for e in res[1]] == [model.id(t) for t in ["x", "y", "x", "y"]]
    assert all(isinstance(e, ScheduledPromptConditioning) for row in res for e in row)


def test_get_learned_conditioning_plain_list_and_dict_conds():
    model = FakeModel(dict_mode=True)
    res = get_learned_conditioning(model, ["[p:q:1]"], 3)
    call = model.calls[0]
    assert list(call) == ["p", "q"] and (call.is_negative_prompt, call.width) == (False, None)
    first, second = res[0]
    assert set(first.cond) == {"crossattn", "pooled"}
    assert first.cond["crossattn"].shape == (3, 2) and first.cond["pooled"].shape == (4,)
    assert float(second.cond["pooled"][0]) == model.id("q")


def _ids(batch):
    """The text id of each row of a stacked [B, T, C] batch."""
    return [int(row[0, 0]) // 100 for row in batch]


def test_reconstruct_cond_batch_picks_schedule_at_boundaries():
    model = FakeModel()
    c = get_learned_conditioning(model, ["[a:b:3]", "[x|y]"], 6)
    a, b, x, y = (model.id(t) for t in "abxy")
    expected = {0: [a, x], 1: [a, x], 2: [a, y], 3: [a, x], 4: [b, y], 5: [b, x], 6: [b, y]}
    for step, ids in expected.items():
        batch = reconstruct_cond_batch(c, step)
        assert batch.shape == (2, 3, 2)
        assert _ids(batch) == ids, step
    assert _ids(reconstruct_cond_batch(c, 50)) == [b, y]  # past the end: the last entry


def test_reconstruct_cond_batch_pads_by_repeating_last_vector():
    model = FakeModel(tokens=lambda text: 5 if text.startswith("long") else 2)
    c = get_learned_conditioning(model, ["short", "long one"], 4)
    batch = reconstruct_cond_batch(c, 0)
    assert batch.shape == (2, 5, 2)
    short = model.id("short")
    assert batch[0, :, 0].tolist() == [100 * short, 100 * short + 1] + [100 * short + 1] * 3
    assert torch.equal(batch[1], model.row("long one", 5))


def test_reconstruct_cond_batch_dict():
    model = FakeModel(dict_mode=True, tokens=lambda text: 4 if text.startswith("long") else 2)
    c = get_learned_conditioning(model, ["[a:b:1]", "long z"], 4)
    for step, first in ((1, "a"), (2, "b")):
        batch = reconstruct_cond_batch(c, step)
        assert isinstance(batch, dict) and batch.shape == (2, 4, 2)
        assert batch["crossattn"].shape == (2, 4, 2) and batch["pooled"].shape == (2, 4)
        assert batch["pooled"][:, 0].tolist() == [model.id(first), model.id("long z")]
        k = model.id(first)  # 2 tokens, padded with its last vector (not the pooled output)
        assert batch["crossattn"][0, :, 0].tolist() == [100 * k, 100 * k + 1, 100 * k + 1, 100 * k + 1]
        assert torch.equal(batch["crossattn"][1], model.row("long z", 4))


def test_multicond_learned_conditioning_and_reconstruct():
    model = FakeModel()
    prompts = ["cat AND [dog:bird:2]:0.5", "cat"]
    mc = get_multicond_learned_conditioning(model, prompts, 4)
    assert isinstance(mc, MulticondLearnedConditioning) and mc.shape == (2,)
    assert all(isinstance(x, ComposableScheduledPromptConditioning) for row in mc.batch for x in row)
    assert [[x.weight for x in row] for row in mc.batch] == [[1.0, 0.5], [1.0]]
    # "cat" (first part of prompt 0) and "cat" (prompt 1) are one text, encoded once
    assert [list(call) for call in model.calls] == [["cat"], [" dog", " bird"]]

    conds_list, stacked = reconstruct_multicond_batch(mc, 1)
    assert conds_list == [[(0, 1.0), (1, 0.5)], [(2, 1.0)]]
    assert _ids(stacked) == [model.id("cat"), model.id(" dog"), model.id("cat")]
    _, stacked = reconstruct_multicond_batch(mc, 3)
    assert _ids(stacked) == [model.id("cat"), model.id(" bird"), model.id("cat")]


def test_reconstruct_multicond_batch_dict_and_padding():
    model = FakeModel(dict_mode=True, tokens=lambda text: 3 if "long" in text else 1)
    mc = get_multicond_learned_conditioning(model, ["a AND long b:2"], 4)
    conds_list, stacked = reconstruct_multicond_batch(mc, 0)
    assert conds_list == [[(0, 1.0), (1, 2.0)]]
    assert stacked["crossattn"].shape == (2, 3, 2) and stacked["pooled"].shape == (2, 4)
    a = model.id("a")
    assert stacked["crossattn"][0, :, 0].tolist() == [100 * a] * 3


def test_public_names():
    for name in prompt_parser.__all__:
        assert hasattr(prompt_parser, name)


# --- comments (spec §4 intro) ----------------------------------------------------------------------------------
def test_strip_comments():
    from modules.core.prompt_comments import strip_comments

    assert strip_comments("a\n# whole line\nb") == "a\nb"
    assert strip_comments("# first\nb") == "b"
    assert strip_comments("a\n#1\n#2\nb") == "a\nb"
    assert strip_comments("red cat, # fluffy\nsky") == "red cat, \nsky"
    assert strip_comments("a\n# last") == "a\n"
    assert strip_comments("a #x\r\nb") == "a \r\nb"
    assert strip_comments("  # indented\nb") == "  \nb"  # not at column 0: only the comment goes
    assert strip_comments("(a:1.2)\n\n[b:c:3]") == "(a:1.2)\n\n[b:c:3]"
    assert strip_comments("") == ""
    assert strip_comments("#") == ""
