"""Property tests: the prompt parsers never raise and keep their invariants on arbitrary text."""
from hypothesis import given, settings
from hypothesis import strategies as st

from modules.core import prompt_schedule_parser
from tests.core import earley_schedule_reference

from modules.core.prompt_parser import (
    get_learned_conditioning_prompt_schedules,
    get_multicond_prompt_list,
    parse_prompt_attention,
)

BOUNDED = settings(max_examples=300, deadline=None)

# Prompt-language characters, pieces that form valid constructs, and some plain text.
SPECIAL = list("[]():|\\.,-+e ") + ["\n", "\t", "0", "1", "2", "5", "9"]
PIECES = ["[a:b:3]", "[x|y]", "[|z]", "(w:1.2)", "[q::.5]", "[r:1.5]", " AND ", "BREAK", "::", "[[", "]]", "1e5", "\\("]
prompt_text = st.one_of(
    st.lists(st.sampled_from(SPECIAL + PIECES + list("abc")), max_size=40).map("".join),
    st.text(max_size=60),
)
# The grammar's language: no "|" outside an alternation, no backslash (an escape needs a following char).
in_language = st.lists(st.sampled_from([c for c in SPECIAL if c not in "|\\"] + ["[a:b:3]", "[x|y]", "(w:1.2)", "ab"]),
                       max_size=40).map("".join)


def check_schedule(schedule, steps):
    assert isinstance(schedule, list) and schedule
    for entry in schedule:
        assert isinstance(entry, list) and len(entry) == 2
        assert type(entry[0]) is int and isinstance(entry[1], str)
    ends = [end for end, _ in schedule]
    assert all(a < b for a, b in zip(ends, ends[1:]))
    assert ends[0] >= 1 and ends[-1] == steps


@BOUNDED
@given(prompt_text, st.integers(1, 40))
def test_schedule_base(prompt, steps):
    (schedule,) = get_learned_conditioning_prompt_schedules([prompt], steps)
    check_schedule(schedule, steps)


@BOUNDED
@given(prompt_text, st.integers(1, 40), st.integers(1, 40))
def test_schedule_hires(prompt, base_steps, hires_steps):
    (schedule,) = get_learned_conditioning_prompt_schedules([prompt], base_steps, hires_steps)
    check_schedule(schedule, hires_steps)


@BOUNDED
@given(prompt_text, st.integers(1, 40), st.one_of(st.none(), st.integers(1, 40)))
def test_schedule_old_timeline(prompt, base_steps, hires_steps):
    (schedule,) = get_learned_conditioning_prompt_schedules([prompt], base_steps, hires_steps, True)
    check_schedule(schedule, base_steps)


@BOUNDED
@given(st.text(alphabet=st.characters(blacklist_characters="["), max_size=60), st.integers(1, 40))
def test_no_square_bracket_means_no_schedule(prompt, steps):
    assert get_learned_conditioning_prompt_schedules([prompt], steps) == [[[steps, prompt]]]


@BOUNDED
@given(in_language)
def test_grammar_accepts_every_prompt_without_bar_or_backslash(prompt):
    prompt_schedule_parser.parse_schedule(prompt)


@settings(max_examples=1500, deadline=None)
@given(prompt_text, st.integers(1, 12))
def test_linear_parser_agrees_with_the_earley_parser(prompt, steps):
    """The hand-written parser reads every prompt as lark's Earley parser over the spec's grammar did."""
    (schedule,) = get_learned_conditioning_prompt_schedules([prompt], steps)
    assert schedule == earley_schedule_reference.schedule(prompt, steps)


@BOUNDED
@given(prompt_text)
def test_attention_never_raises(text):
    res = parse_prompt_attention(text)
    assert res
    for fragment, weight in res:
        assert isinstance(fragment, str) and isinstance(weight, (int, float))
    assert all(a[1] != b[1] for a, b in zip(res, res[1:]))  # equal neighbours are merged


@BOUNDED
@given(st.text(alphabet=st.characters(blacklist_characters="()[]\\:"), max_size=60))
def test_attention_plain_text_is_kept(text):
    res = parse_prompt_attention(text)
    if "BREAK" not in text:
        assert res == [[text, 1.0]]
    else:
        assert all(w in (1.0, -1) for _, w in res)


@BOUNDED
@given(st.lists(prompt_text, max_size=4))
def test_multicond_never_raises(prompts):
    res_indexes, flat, indexes = get_multicond_prompt_list(prompts)
    assert len(res_indexes) == len(prompts)
    assert all(0 <= i < len(flat) and isinstance(w, float) for row in res_indexes for i, w in row)
    assert {text: i for i, text in enumerate(flat)} == indexes


# --- comments -------------------------------------------------------------------------------------------------------
from modules.core.prompt_comments import strip_comments  # noqa: E402

comment_text = st.lists(st.sampled_from(["#", "\n", " ", "a", "b", "(x:1.2)", "[y|z]", "é"]), max_size=30).map("".join)


@BOUNDED
@given(comment_text)
def test_comments_removed_and_rest_kept(text):
    lines = text.split("\n")
    expected = "".join(
        line.split("#")[0] + ("\n" if i < len(lines) - 1 else "")
        for i, line in enumerate(lines)
        if not line.startswith("#")
    )
    out = strip_comments(text)
    assert out == expected
    assert "#" not in out and strip_comments(out) == out


@BOUNDED
@given(st.text(alphabet=st.characters(blacklist_characters="#"), max_size=60))
def test_text_without_hash_is_unchanged(text):
    assert strip_comments(text) == text
