"""The previous scheduling parser (lark Earley over the grammar of spec §4.1), kept as a test oracle only:
the hand-written linear parser must give the same schedules on every prompt it is compared on."""
from __future__ import annotations

import functools
from typing import Any

import lark

from modules.core.prompt_parser import _when_to_step

GRAMMAR = r"""
start: (_piece | LOOSE)*
body: _piece*
_piece: group | edit | cycle | TEXT | SPACE

!group: "(" body ")"
      | "(" body ":" body ")"
      | "[" body "]"
edit: "[" (body ":")? body ":" SPACE? WHEN SPACE? "]"
cycle: "[" body ("|" body)+ "]"

LOOSE: /[\[\]():]/
SPACE: /\s+/
TEXT: /(?:[^\\\[\]():|]|\\.)+/
WHEN: /[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?/
"""


@functools.lru_cache(maxsize=1)
def parser() -> lark.Lark:
    return lark.Lark(GRAMMAR, parser="earley")


def _subtrees(tree: lark.Tree):
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(c for c in node.children if isinstance(c, lark.Tree))


def _render(tree: lark.Tree, step: int, whens: dict[int, int]) -> str:
    out: list[str] = []
    stack: list[Any] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, lark.Token):
            out.append(str(node))
            continue
        if node.data == "edit":
            bodies = [c for c in node.children if isinstance(c, lark.Tree)]
            stack.extend(reversed(bodies[:-1] if step <= whens[id(node)] else bodies[-1:]))
        elif node.data == "cycle":
            stack.append(node.children[(step - 1) % len(node.children)])
        else:
            stack.extend(reversed(node.children))
    return "".join(out)


def schedule(prompt: str, steps: int) -> list:
    """``get_learned_conditioning_prompt_schedules([prompt], steps)[0]`` as the Earley parser computed it."""
    try:
        tree = parser().parse(prompt)
    except (lark.exceptions.LarkError, RecursionError):
        return [[steps, prompt]]
    boundaries = {steps}
    whens: dict[int, int] = {}
    for node in _subtrees(tree):
        if node.data == "edit":
            number = next(c for c in node.children if isinstance(c, lark.Token) and c.type == "WHEN")
            whens[id(node)] = when = _when_to_step(str(number), steps, 0, 0.0, False)
            if when >= 1:
                boundaries.add(when)
        elif node.data == "cycle":
            boundaries.update(range(1, steps + 1))
    return [[step, _render(tree, step, whens)] for step in sorted(boundaries)]
