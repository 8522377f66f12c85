"""The prompt box's token counter (`12/75`), counted as A1111 does.

Tags are removed, AND sub-prompts and every scheduled text are counted, and the largest count
is shown: that is the chunking the text encoder will really see at some step.
"""
from __future__ import annotations

from typing import Callable

from modules.core import network_tags
from modules.core import prompt_parser
from modules.core.prompt_comments import strip_comments


def count_prompt_tokens(prompt: str, steps: int, count_tokens: Callable[[str], tuple[int, int]],
                        *, strip_prompt_comments: bool = True) -> tuple[int, int]:
    """(tokens used, chunk target) for the largest text the prompt produces at any step."""
    text = strip_comments(prompt) if strip_prompt_comments else prompt
    text, _ = network_tags.parse_prompt(text)
    _, flat, _ = prompt_parser.get_multicond_prompt_list([text])
    schedules = prompt_parser.get_learned_conditioning_prompt_schedules(flat, max(int(steps), 1))
    texts = [t for schedule in schedules for _, t in schedule] or [""]
    return max((count_tokens(t) for t in texts), key=lambda pair: pair[0])


def format_token_count(used: int, target: int) -> str:
    return f"{used}/{target}"
