"""Prompt language: scheduling, alternation, attention weights, composable ``AND``.

Behaviour follows AUTOMATIC1111's ``modules/prompt_parser.py`` (see ``shared/spec/a1111-reference.md`` §4),
and so do the public names and signatures, because extensions import them. The grammar and the code are
written here from the spec.

Pipeline for one prompt: ``get_multicond_prompt_list`` splits on ``AND`` → each part is scheduled by
``get_learned_conditioning_prompt_schedules`` → each scheduled text is encoded by the model (which calls
``parse_prompt_attention``) → during sampling ``reconstruct_cond_batch`` / ``reconstruct_multicond_batch``
pick, per denoiser call, the conditioning in force.

>>> get_learned_conditioning_prompt_schedules(["a [cat:dog:2] photo"], 4)[0]
[[2, 'a cat photo'], [4, 'a dog photo']]
>>> parse_prompt_attention("a (cat:1.5) BREAK photo")
[['a ', 1.0], ['cat', 1.5], ['', 1.0], ['BREAK', -1], ['photo', 1.0]]
"""
from __future__ import annotations

import math
import re
from collections import namedtuple
from typing import TYPE_CHECKING, Any

from modules.core import prompt_schedule_parser as schedule_parser

if TYPE_CHECKING:
    import torch

__all__ = [
    "ComposableScheduledPromptConditioning",
    "DictWithShape",
    "MulticondLearnedConditioning",
    "ScheduledPromptConditioning",
    "SdConditioning",
    "get_learned_conditioning",
    "get_learned_conditioning_prompt_schedules",
    "get_multicond_learned_conditioning",
    "get_multicond_prompt_list",
    "parse_prompt_attention",
    "reconstruct_cond_batch",
    "reconstruct_multicond_batch",
]

# --------------------------------------------------------------------------------------------------
# Scheduling (spec §4.1): the grammar and its linear-time parser are in modules.core.prompt_schedule_parser.
# --------------------------------------------------------------------------------------------------


def _when_to_step(number: str, steps: int, int_offset: int, flt_offset: float, use_old_scheduling: bool) -> int:
    v = float(number)
    if use_old_scheduling:
        v = v * steps if v < 1 else v
    elif "." in number:
        v = (v - flt_offset) * steps
    else:
        v = v - int_offset
    if math.isfinite(v):
        return min(steps, int(v))
    # "1e999" and the like: the reference would raise; clamp instead (after-the-end or never).
    return steps if v > 0 else min(steps, 0) - 1


def _schedule_one(prompt: str, steps: int, int_offset: int, flt_offset: float, use_old_scheduling: bool) -> list:
    try:
        tree = schedule_parser.parse_schedule(prompt)
    except schedule_parser.ScheduleSyntaxError:
        return [[steps, prompt]]

    boundaries = {steps}
    whens: dict[int, int] = {}
    for node in schedule_parser.walk(tree):
        if isinstance(node, schedule_parser.Edit):
            when = _when_to_step(node.when, steps, int_offset, flt_offset, use_old_scheduling)
            whens[id(node)] = when
            if when >= 1:
                boundaries.add(when)
        else:
            boundaries.update(range(1, steps + 1))

    return [[step, schedule_parser.render(tree, step, whens)] for step in sorted(boundaries)]


def get_learned_conditioning_prompt_schedules(prompts, base_steps, hires_steps=None, use_old_scheduling=False):
    """For each prompt, a list of ``[end_at_step, text]``: `text` is used for steps ``prev_end < step <= end_at_step``.

    With `hires_steps`, the schedule is for the hires pass: absolute numbers count on from `base_steps`
    and fractions from 1.0. `use_old_scheduling` is the pre-1.6 timeline: a number below 1 is a fraction,
    anything else absolute, and `hires_steps` is ignored (the reference does the same).

    >>> g = lambda p: get_learned_conditioning_prompt_schedules([p], 10)[0]
    >>> g("a [b:c:.5] [d|e]")[:3]
    [[1, 'a b d'], [2, 'a b e'], [3, 'a b d']]
    >>> get_learned_conditioning_prompt_schedules(["a [b:12]"], 10, 4)[0]
    [[2, 'a '], [4, 'a b']]
    """
    if hires_steps is None or use_old_scheduling:
        int_offset, flt_offset, steps = 0, 0.0, base_steps
    else:
        int_offset, flt_offset, steps = base_steps, 1.0, hires_steps

    by_prompt = {p: _schedule_one(p, steps, int_offset, flt_offset, use_old_scheduling) for p in set(prompts)}
    return [by_prompt[p] for p in prompts]


# --------------------------------------------------------------------------------------------------
# Attention / emphasis (spec §4.3)
# --------------------------------------------------------------------------------------------------
_re_attention = re.compile(
    r"""
      \\[()\[\]\\]                                  # escaped bracket or backslash: literal
    | \\                                            # lone backslash: dropped
    | [(\[]                                         # opening bracket
    | :\s*+(?P<weight>[+-]?(?:\d++\.?+\d*+|\.\d++))\s*+\)   # ":number)" closes "(" with an explicit weight
    | [)\]]                                         # closing bracket
    | [^\\()\[\]:]+                                 # plain text
    | :                                             # lone colon: text
    """,
    re.X,
)
# Possessive quantifiers above: a long run of digits after ":" is scanned once, not once per shorter prefix
# (the quantified parts cannot give anything back that the rest of the branch could use).
_re_break_word = re.compile(r"\bBREAK\b")


def _split_break(text: str) -> list[str]:
    """``re.split(r"\s*\bBREAK\b\s*", text)`` without retrying every position of a long whitespace run."""
    parts: list[str] = []
    pos = 0
    for m in _re_break_word.finditer(text):
        if m.start() < pos:
            continue
        start, end = m.start(), m.end()
        while start > pos and text[start - 1].isspace():
            start -= 1
        while end < len(text) and text[end].isspace():
            end += 1
        parts.append(text[pos:start])
        pos = end
    parts.append(text[pos:])
    return parts

_ROUND = 1.1
_SQUARE = 1 / 1.1


def parse_prompt_attention(text: str) -> list[list]:
    """Split `text` into ``[fragment, weight]`` pairs; ``BREAK`` gives ``["BREAK", -1]``.

    ``(x)`` ×1.1, ``[x]`` ×1/1.1, ``(x:w)`` ×w, nesting multiplies, unclosed brackets apply to the rest,
    ``\\( \\) \\[ \\] \\\\`` are literal. Adjacent fragments of equal weight are merged.

    >>> parse_prompt_attention(r'a \\(b\\) ((c)) [d:x]')
    [['a (b) ', 1.0], ['c', 1.2100000000000002], [' ', 1.0], ['d:x', 0.9090909090909091]]
    """
    res: list[list] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def scale_from(start: int, factor: float) -> None:
        for item in res[start:]:
            item[1] *= factor

    for m in _re_attention.finditer(text):
        tok = m.group(0)
        weight = m.group("weight")
        if tok[0] == "\\":
            res.append([tok[1:], 1.0])
        elif tok == "(":
            round_open.append(len(res))
        elif tok == "[":
            square_open.append(len(res))
        elif weight is not None and round_open:
            scale_from(round_open.pop(), float(weight))
        elif tok == ")" and round_open:
            scale_from(round_open.pop(), _ROUND)
        elif tok == "]" and square_open:
            scale_from(square_open.pop(), _SQUARE)
        else:
            for i, part in enumerate(_split_break(tok)):
                if i:
                    res.append(["BREAK", -1])
                res.append([part, 1.0])

    for start in round_open:
        scale_from(start, _ROUND)
    for start in square_open:
        scale_from(start, _SQUARE)

    if not res:
        return [["", 1.0]]

    merged = [res[0]]
    for item in res[1:]:
        if item[1] == merged[-1][1]:
            merged[-1][0] += item[0]
        else:
            merged.append(item)
    return merged


# --------------------------------------------------------------------------------------------------
# Conditioning
# --------------------------------------------------------------------------------------------------
class SdConditioning(list):
    """A list of prompt strings plus what the text encoder may want to know about them."""

    def __init__(self, prompts, is_negative_prompt=False, width=None, height=None, copy_from=None):
        super().__init__(prompts)
        if copy_from is None:
            copy_from = prompts
        self.is_negative_prompt = is_negative_prompt or getattr(copy_from, "is_negative_prompt", False)
        self.width = width or getattr(copy_from, "width", None)
        self.height = height or getattr(copy_from, "height", None)


ScheduledPromptConditioning = namedtuple("ScheduledPromptConditioning", ["end_at_step", "cond"])


class DictWithShape(dict):
    """A dict of batched tensors (SDXL: ``crossattn``, ``pooled``) that also answers ``.shape``."""

    @property
    def shape(self):
        value = self["crossattn"] if "crossattn" in self else next(iter(self.values()))
        return value.shape


def _row(cond, i: int):
    if isinstance(cond, dict):
        return {k: v[i] for k, v in cond.items()}
    return cond[i]


def get_learned_conditioning(model, prompts, steps, hires_steps=None, use_old_scheduling=False):
    """Encode each prompt's schedule: a list (per prompt) of ``ScheduledPromptConditioning`` lists.

    ``model.get_learned_conditioning(texts)`` is called once per distinct prompt, with an
    ``SdConditioning`` of that prompt's distinct scheduled texts; it returns a tensor ``[n, T, C]`` or a
    dict of tensors sharing dim 0.
    """
    schedules = get_learned_conditioning_prompt_schedules(prompts, steps, hires_steps, use_old_scheduling)
    done: dict[str, list] = {}
    res = []
    for prompt, schedule in zip(prompts, schedules):
        if prompt not in done:
            distinct = list(dict.fromkeys(text for _, text in schedule))
            conds = model.get_learned_conditioning(SdConditioning(distinct, copy_from=prompts))
            row_of = {text: i for i, text in enumerate(distinct)}
            done[prompt] = [ScheduledPromptConditioning(end, _row(conds, row_of[text])) for end, text in schedule]
        res.append(done[prompt])
    return res


re_AND = re.compile(r"\bAND\b")
re_weight = re.compile(r"^((?:\s|.)*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$")
_re_weight_tail = re.compile(r"\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+))\s*")


def _split_weight(subprompt: str) -> tuple[str, str | None]:
    """``re_weight.search(subprompt).groups()`` in linear time: the text and a trailing ``:number`` weight.

    The lazy prefix of ``re_weight`` ends where the rest is ``\s*:\s*NUMBER\s*`` (only possible at the last
    ":") or else only whitespace; the regex finds that by retrying the tail at every position, quadratic on long
    whitespace runs."""
    colon = subprompt.rfind(":")
    if colon >= 0:
        start = colon
        while start > 0 and subprompt[start - 1].isspace():
            start -= 1
        m = _re_weight_tail.fullmatch(subprompt, start)
        if m is not None:
            return subprompt[:start], m.group(1)
    end = len(subprompt)
    while end > 0 and subprompt[end - 1].isspace():
        end -= 1
    return subprompt[:end], None


def get_multicond_prompt_list(prompts):
    """Split each prompt on ``AND`` into weighted sub-prompts.

    Returns ``(res_indexes, prompt_flat_list, prompt_indexes)``: per prompt a list of
    ``(index into prompt_flat_list, weight)``; the distinct sub-prompt texts (an ``SdConditioning``);
    and text → index.
    """
    res_indexes = []
    prompt_indexes: dict[str, int] = {}
    prompt_flat_list = SdConditioning([], copy_from=prompts)
    for prompt in prompts:
        indexes = []
        for subprompt in re_AND.split(prompt):
            text, weight = _split_weight(subprompt)
            weight = float(weight) if weight is not None else 1.0
            index = prompt_indexes.get(text)
            if index is None:
                index = prompt_indexes[text] = len(prompt_flat_list)
                prompt_flat_list.append(text)
            indexes.append((index, weight))
        res_indexes.append(indexes)
    return res_indexes, prompt_flat_list, prompt_indexes


class ComposableScheduledPromptConditioning:
    def __init__(self, schedules, weight=1.0):
        self.schedules: list[ScheduledPromptConditioning] = schedules
        self.weight: float = weight

    def __repr__(self):
        return f"ComposableScheduledPromptConditioning(schedules={len(self.schedules)} entries, weight={self.weight})"


class MulticondLearnedConditioning:
    def __init__(self, shape, batch):
        self.shape: tuple = shape  # (number of prompts,)
        self.batch: list[list[ComposableScheduledPromptConditioning]] = batch


def get_multicond_learned_conditioning(model, prompts, steps, hires_steps=None, use_old_scheduling=False):
    """Like ``get_learned_conditioning`` for prompts that may hold ``AND``; identical sub-prompts share one encoding."""
    res_indexes, flat, _ = get_multicond_prompt_list(prompts)
    learned = get_learned_conditioning(model, flat, steps, hires_steps, use_old_scheduling)
    batch = [[ComposableScheduledPromptConditioning(learned[i], weight) for i, weight in indexes] for indexes in res_indexes]
    return MulticondLearnedConditioning(shape=(len(prompts),), batch=batch)


def _cond_at(schedule: list[ScheduledPromptConditioning], current_step: int):
    """The cond in force at 0-based denoiser call `current_step`: the first entry with ``current_step <= end_at_step``
    (past the end: the last entry)."""
    for entry in schedule:
        if current_step <= entry.end_at_step:
            return entry.cond
    return schedule[-1].cond


def _stack_padded(tensors: list) -> torch.Tensor:
    """Stack; 2-D rows ``[T, C]`` of different T are first padded to the longest by repeating their last vector."""
    import torch

    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1 and all(t.dim() == 2 for t in tensors):
        longest = max(t.shape[0] for t in tensors)
        tensors = [
            t if t.shape[0] == longest else torch.cat([t, t[-1:].expand(longest - t.shape[0], -1)])
            for t in tensors
        ]
    return torch.stack(tensors)


def _stack_conds(conds: list):
    if isinstance(conds[0], dict):
        return DictWithShape({k: _stack_padded([c[k] for c in conds]) for k in conds[0]})
    return _stack_padded(conds)


def reconstruct_cond_batch(c: list[list[ScheduledPromptConditioning]], current_step: int):
    """The batch of conds in force at `current_step`: a tensor ``[B, T, C]`` or a dict of such."""
    return _stack_conds([_cond_at(schedule, current_step) for schedule in c])


def reconstruct_multicond_batch(c: MulticondLearnedConditioning, current_step: int):
    """``(conds_list, stacked)``: ``conds_list[i]`` lists ``(row in stacked, weight)`` for each sub-prompt of image i."""
    conds = []
    conds_list = []
    for composable_prompts in c.batch:
        entries = []
        for composable in composable_prompts:
            entries.append((len(conds), composable.weight))
            conds.append(_cond_at(composable.schedules, current_step))
        conds_list.append(entries)
    return conds_list, _stack_conds(conds)
