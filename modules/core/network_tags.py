"""Extra-network prompt tags ``<name:arg:arg>``: finding them in prompts (spec §5.1). Part of the prompt language.

Parsing only returns stripped *copies* of the prompts: the stored prompt (infotext) keeps its tags.

>>> prompt, data = parse_prompt("1girl, <hypernet:agm:1.1> <extrasupernet:master:12:13:14> <hypernet:ray>")
>>> prompt
'1girl,   '
>>> [p.items for p in data["hypernet"]], data["extrasupernet"][0].positional
([['agm', '1.1'], ['ray']], ['master', '12', '13', '14'])
>>> ExtraNetworkParams(["name", "te=0.5", "a=b=c"]).named
{'te': '0.5'}
"""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Iterable, Iterator

# A1111's pattern, kept for extensions. The regex engine retries it at every "<", each time scanning to the next
# ">" (6666 x "<a:" with no ">" took 1.5 s); :func:`iter_tags` finds the same tags in linear time.
re_extra_net = re.compile(r"<(\w+):([^>]+)>")


class ExtraNetworkParams:
    """The ``:``-separated arguments of one tag: ``k=v`` items go to `named`, the rest to `positional`."""

    def __init__(self, items=None):
        self.items: list = list(items or [])
        self.positional: list = []
        self.named: dict[str, str] = {}
        for item in self.items:
            parts = item.split("=", 2) if isinstance(item, str) else [item]
            if len(parts) == 2:
                self.named[parts[0]] = parts[1]
            else:
                self.positional.append(item)

    def __eq__(self, other):
        return isinstance(other, ExtraNetworkParams) and self.items == other.items

    def __repr__(self):
        return f"ExtraNetworkParams(items={self.items!r})"


def parse_prompt(prompt: str) -> tuple[str, dict[str, list[ExtraNetworkParams]]]:
    """``(prompt without tags, {tag name: [ExtraNetworkParams per occurrence, in order]})``."""
    found: dict[str, list[ExtraNetworkParams]] = defaultdict(list)
    text, tags = remove_tags(prompt)  # re_extra_net.sub, in linear time
    for name, args in tags:
        found[name].append(ExtraNetworkParams(args.split(":")))
    return text, found


def add_default_networks(prompt: str, sd_lora: str | None, sd_hypernetwork: str | None, multiplier: float) -> str:
    """Settings "Add network to prompt" / "Add hypernetwork to prompt": append the tag unless the prompt has it."""
    for tag, name in (("lora", sd_lora), ("hypernet", sd_hypernetwork)):
        if name and name != "None" and not re.search(rf"<{tag}:{re.escape(name)}(:|>)", prompt):
            prompt = f"{prompt}<{tag}:{name}:{multiplier:g}>"
    return prompt


def parse_prompts(prompts: Iterable[str]) -> tuple[list[str], dict[str, list[ExtraNetworkParams]]]:
    """Strip the tags of every prompt; the first prompt's tags decide the networks of the whole batch."""
    stripped = []
    first = None
    for prompt in prompts:
        text, data = parse_prompt(prompt)
        if first is None:
            first = data
        stripped.append(text)
    return stripped, first if first is not None else defaultdict(list)


# ---- finding tags in linear time ----------------------------------------------------------------------------

_re_head = re.compile(r"<(\w+):")


def iter_tags(prompt: str) -> Iterator[tuple[int, int, str, str]]:
    """``(start, end, name, args)`` of every match of ``<(\\w+):([^>]+)>``, as ``finditer`` would give them."""
    pos = 0
    while True:
        start = prompt.find("<", pos)
        if start < 0:
            return
        m = _re_head.match(prompt, start)
        if m is None:
            pos = start + 1
            continue
        close = prompt.find(">", m.end())
        if close < 0:
            return  # no ">" after here: no later tag can close either
        if close == m.end():
            pos = start + 1  # "<name:>": empty arguments are no tag
            continue
        yield start, close + 1, m.group(1), prompt[m.end():close]
        pos = close + 1


def remove_tags(prompt: str) -> tuple[str, list[tuple[str, str]]]:
    """The prompt without its tags, and ``(name, args)`` of each tag in order (``re_extra_net.sub``)."""
    parts: list[str] = []
    found: list[tuple[str, str]] = []
    pos = 0
    for start, end, name, args in iter_tags(prompt):
        parts.append(prompt[pos:start])
        found.append((name, args))
        pos = end
    parts.append(prompt[pos:])
    return "".join(parts), found
