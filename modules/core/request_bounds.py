"""Bounds on what one request may ask for, so that no request can hang or exhaust the server.

The numbers are launch flags (``--max-prompt-length`` ...; defaults below and in the README). The launcher
calls :func:`configure` once; :meth:`GenerationRequest.validate` and the doors' image decoding read
:func:`current`. Every check here is linear in the size of what it checks, and beyond a bound the answer is a
RequestError naming the field and the bound (the API's 422).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from typing import Any, Iterable

from modules.core.network_tags import iter_tags


@dataclass(frozen=True)
class RequestBounds:
    max_prompt_length: int = 20000  # characters in one prompt field
    max_prompt_nesting: int = 32  # ( ) [ ] opened inside each other
    max_prompt_and: int = 32  # AND: each part is one more text encoding and one more UNet row per step
    max_prompt_break: int = 64  # BREAK: each starts another 75-token chunk
    max_prompt_chunks: int = 64  # 75-token chunks of one prompt (the text encoder runs once per chunk)
    max_network_tags: int = 32  # <lora:...>, <hypernet:...> ... in one prompt
    max_network_multiplier: float = 100.0  # |multiplier| in a network tag
    max_image_pixels: int = 4096 * 4096  # one input image (PIL refuses only beyond 179 M)
    max_images_per_request: int = 16  # init images, extras batch images


# flag dest -> (field, help); the flags are added by modules.settings.cmd_args
FLAG_HELP = {
    "max_prompt_length": "largest prompt (characters per prompt field) a request may send",
    "max_prompt_nesting": "deepest nesting of ( ) [ ] in a prompt",
    "max_prompt_and": "most AND in one prompt",
    "max_prompt_break": "most BREAK in one prompt",
    "max_prompt_chunks": "most 75-token chunks one prompt may encode to (checked once tokenized)",
    "max_network_tags": "most <lora:...>-style network tags in one prompt",
    "max_network_multiplier": "largest absolute multiplier in a network tag",
    "max_image_pixels": "largest input image (width x height)",
    "max_images_per_request": "most input images in one request (init images, extras batch)",
}

_current = RequestBounds()


def configure(args: Any) -> RequestBounds:
    """Take the bounds from launch flags (absent flags keep the defaults); returns them."""
    global _current
    defaults = RequestBounds()
    values = {}
    for f in fields(RequestBounds):
        value = getattr(args, f.name, None)
        if value is not None:
            values[f.name] = type(getattr(defaults, f.name))(value)
    _current = RequestBounds(**values)
    return _current


def current() -> RequestBounds:
    return _current


class BoundError(ValueError):
    """What is wrong, to be reported with the field's name."""


def check_text(value: str) -> None:
    """A string that cannot be encoded (a lone UTF-16 surrogate from JSON's ``\\ud800``) is refused."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BoundError(f"contains an invalid character (a lone UTF-16 surrogate) at position {exc.start}") from None


def check_finite(value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise BoundError(f"must be a finite number, got {value}")


_re_and = re.compile(r"\bAND\b")
_re_break = re.compile(r"\bBREAK\b")
MULTIPLIER_TAGS = ("lora", "lyco", "hypernet")


def nesting_depth(prompt: str) -> int:
    """The most brackets open at once, as the attention parser counts them: ``(`` and ``[`` each close only with
    their own kind (``(]`` leaves the ``(`` open), escaped ones (``\\(``) do not count, unclosed ones count to
    the end. The prompt parsers' work grows with this number."""
    round_open = square_open = deepest = 0
    escaped = False
    for c in prompt:
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == "(":
            round_open += 1
            deepest = max(deepest, round_open + square_open)
        elif c == "[":
            square_open += 1
            deepest = max(deepest, round_open + square_open)
        elif c == ")" and round_open:
            round_open -= 1
        elif c == "]" and square_open:
            square_open -= 1
    return deepest


def network_tags(prompt: str) -> Iterable[tuple[str, list[str]]]:
    """``(name, items)`` of each ``<name:items>`` tag (``extra_networks.re_extra_net``'s), linearly."""
    for _, _, name, args in iter_tags(prompt):
        yield name, args.split(":")


def check_prompt(prompt: str, bounds: RequestBounds | None = None) -> None:
    """Every prompt bound; BoundError saying which."""
    b = bounds or _current
    check_text(prompt)
    if len(prompt) > b.max_prompt_length:
        raise BoundError(f"is {len(prompt)} characters long; the limit is {b.max_prompt_length} (--max-prompt-length)")
    depth = nesting_depth(prompt)
    if depth > b.max_prompt_nesting:
        raise BoundError(f"nests brackets {depth} deep; the limit is {b.max_prompt_nesting} (--max-prompt-nesting)")
    count = len(_re_and.findall(prompt))
    if count > b.max_prompt_and:
        raise BoundError(f"has {count} AND; the limit is {b.max_prompt_and} (--max-prompt-and)")
    count = len(_re_break.findall(prompt))
    if count > b.max_prompt_break:
        raise BoundError(f"has {count} BREAK; the limit is {b.max_prompt_break} (--max-prompt-break)")
    count = 0
    for name, items in network_tags(prompt):
        count += 1
        if count > b.max_network_tags:
            raise BoundError(f"has more than {b.max_network_tags} network tags (--max-network-tags)")
        if name in MULTIPLIER_TAGS:
            _check_multipliers(name, items, b)


def _check_multipliers(name: str, items: list[str], b: RequestBounds) -> None:
    for item in items[1:]:
        key, _, text = item.rpartition("=")
        try:
            value = float(text)
        except ValueError:
            continue  # not a number (a named option such as lbw=...): the adapter reports it
        if not math.isfinite(value) or abs(value) > b.max_network_multiplier:
            raise BoundError(f"<{name}:{items[0]}:...>: the multiplier {text.strip()!r} must be a finite number within "
                             f"±{b.max_network_multiplier:g} (--max-network-multiplier)")


def check_chunk_count(count: int, bounds: RequestBounds | None = None) -> None:
    b = bounds or _current
    if count > b.max_prompt_chunks:
        raise BoundError(f"needs {count} chunks of 75 tokens; the limit is {b.max_prompt_chunks} (--max-prompt-chunks)")


def check_image_size(width: int, height: int, bounds: RequestBounds | None = None) -> None:
    b = bounds or _current
    if width * height > b.max_image_pixels:
        raise BoundError(f"is {width}x{height} = {width * height} pixels; the limit is {b.max_image_pixels} "
                         f"(--max-image-pixels)")


def check_image_count(count: int, bounds: RequestBounds | None = None) -> None:
    b = bounds or _current
    if count > b.max_images_per_request:
        raise BoundError(f"has {count} images; the limit is {b.max_images_per_request} (--max-images-per-request)")
