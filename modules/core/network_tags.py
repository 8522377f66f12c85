"""Finding ``<name:args>`` network tags in a prompt in linear time.

A1111's pattern ``<(\\w+):([^>]+)>`` (kept in ``modules.networks.extra_networks.re_extra_net``) is retried by
the regex engine at every ``<``, each time scanning to the next ``>``: a prompt of 6666 × ``<a:`` with no
``>`` took 1.5 s. Here each ``<`` costs the length of its own name, and the scan stops once no ``>`` is left.
"""
from __future__ import annotations

import re
from typing import Iterator

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
