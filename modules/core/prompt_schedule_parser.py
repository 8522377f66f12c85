"""The scheduling syntax of the prompt language (``[a:b:N]``, ``[a|b]``), parsed by hand in linear time.

The grammar is the one of spec §4.1 (A1111 parses it with lark's Earley parser, which is cubic in the worst
case: a 10 kB prompt of nested ``((…:1.1))`` took 30 s)::

    start: (piece | LOOSE)*          LOOSE: one of [ ] ( ) :   (only at the top level)
    body:  piece*
    piece: group | edit | cycle | TEXT
    group: "(" body ")" | "(" body ":" body ")" | "[" body "]"
    edit:  "[" (body ":")? body ":" WHEN "]"         (spaces allowed around WHEN)
    cycle: "[" body ("|" body)+ "]"

The top level is ambiguous ("[a:3]" is an edit and also loose text); like the Earley resolution, a bracket
that opens a well-formed construct is read as that construct, and only otherwise as a loose character. Inside
brackets nothing is ambiguous, so whether the construct opening at a position is well formed is decided once
per position (memoised): every character is scanned a bounded number of times. A "|" outside an alternation,
or a backslash with nothing (or a newline) after it, matches no rule: :class:`ScheduleSyntaxError`, and the
caller uses the prompt unchanged, as the reference does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

__all__ = ["Edit", "Cycle", "Node", "ScheduleSyntaxError", "parse_schedule", "MAX_PARSE_DEPTH"]

# Nested constructs deeper than this make the whole prompt a parse failure (used unchanged), as the
# reference's RecursionError does; requests are refused long before (see modules.core.request_bounds).
MAX_PARSE_DEPTH = 100

_TEXT = re.compile(r"(?:[^\\\[\]():|]|\\.)+")
_WHEN = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_WHEN_ONLY = re.compile(rf"\s*({_WHEN})\s*")
_WHEN_CLOSE = re.compile(rf"\s*({_WHEN})\s*\]")


class ScheduleSyntaxError(ValueError):
    """The prompt is not in the scheduling grammar's language."""


@dataclass
class Edit:
    before: list  # a sequence of nodes; empty for "[after:when]"
    after: list
    when: str  # the number as written


@dataclass
class Cycle:
    options: list  # sequences of nodes


Node = Union[str, list, Edit, Cycle]


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.n = len(text)
        self.memo: dict[int, tuple[Node, int] | None] = {}

    def text_run(self, pos: int) -> int:
        """End of the run of plain text (escapes included) at ``pos``; a dangling backslash fails the parse."""
        m = _TEXT.match(self.s, pos)
        end = m.end() if m else pos
        if end < self.n and self.s[end] == "\\":
            raise ScheduleSyntaxError(f"a backslash at {end} escapes nothing")
        return end

    def body(self, pos: int, depth: int) -> tuple[list, int]:
        """Pieces from ``pos`` up to the first character no piece can start with (or a construct that fails)."""
        seq: list = []
        s, n = self.s, self.n
        while pos < n:
            c = s[pos]
            if c in "[(":
                found = self.construct(pos, depth + 1)
                if found is None:
                    break
                seq.append(found[0])
                pos = found[1]
            elif c in "]):|":
                break
            else:
                end = self.text_run(pos)
                seq.append(s[pos:end])
                pos = end
        return seq, pos

    def construct(self, pos: int, depth: int) -> tuple[Node, int] | None:
        """The construct opening at ``pos`` and where it ends, or None when the bracket opens none."""
        if pos in self.memo:
            return self.memo[pos]
        if depth > MAX_PARSE_DEPTH:
            raise ScheduleSyntaxError(f"brackets nested deeper than {MAX_PARSE_DEPTH}")
        found = self._square(pos, depth) if self.s[pos] == "[" else self._round(pos, depth)
        self.memo[pos] = found
        return found

    def _at(self, pos: int) -> str:
        return self.s[pos] if pos < self.n else ""

    def _round(self, pos: int, depth: int) -> tuple[Node, int] | None:
        first, p = self.body(pos + 1, depth)
        if self._at(p) == ")":
            return ["(", *first, ")"], p + 1
        if self._at(p) == ":":
            second, q = self.body(p + 1, depth)
            if self._at(q) == ")":
                return ["(", *first, ":", *second, ")"], q + 1
        return None

    def _square(self, pos: int, depth: int) -> tuple[Node, int] | None:
        first, p = self.body(pos + 1, depth)
        c = self._at(p)
        if c == "]":
            return ["[", *first, "]"], p + 1
        if c == "|":
            options = [first]
            while self._at(p) == "|":
                option, p = self.body(p + 1, depth)
                options.append(option)
            return (Cycle(options), p + 1) if self._at(p) == "]" else None
        if c != ":":
            return None
        second, q = self.body(p + 1, depth)
        if self._at(q) == "]":  # [after:when]
            m = _WHEN_ONLY.fullmatch(self.s, p + 1, q)
            return (Edit([], first, m.group(1)), q + 1) if m else None
        if self._at(q) == ":":  # [before:after:when]
            m = _WHEN_CLOSE.match(self.s, q + 1)
            return (Edit(first, second, m.group(1)), m.end()) if m else None
        return None

    def top(self) -> list:
        seq: list = []
        s, n, pos = self.s, self.n, 0
        while pos < n:
            c = s[pos]
            if c in "[(":
                found = self.construct(pos, 1)
                if found is not None:
                    seq.append(found[0])
                    pos = found[1]
                    continue
                seq.append(c)
                pos += 1
            elif c in "]):":
                seq.append(c)
                pos += 1
            elif c == "|":
                raise ScheduleSyntaxError(f'a "|" outside an alternation at {pos}')
            else:
                end = self.text_run(pos)
                seq.append(s[pos:end])
                pos = end
        return seq


def parse_schedule(text: str) -> list:
    """The prompt as a sequence of nodes: strings, sequences (lists), :class:`Edit` and :class:`Cycle`."""
    return _Parser(text).top()


def walk(seq: list):
    """Every Edit and Cycle in ``seq``, iteratively."""
    stack: list = [seq]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, Edit):
            yield node
            stack.append(node.before)
            stack.append(node.after)
        elif isinstance(node, Cycle):
            yield node
            stack.extend(node.options)


def render(seq: list, step: int, whens: dict[int, int]) -> str:
    """The text of ``seq`` at ``step`` (1-based); ``whens`` maps ``id(edit)`` to its last "before" step."""
    out: list[str] = []
    stack: list = [seq]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, list):
            stack.extend(reversed(node))
        elif isinstance(node, Edit):
            stack.append(node.before if step <= whens[id(node)] else node.after)
        else:
            stack.append(node.options[(step - 1) % len(node.options)])
    return "".join(out)
