"""``#`` comments in prompts (option ``enable_prompt_comments``, on by default; spec §4).

A line that starts with ``#`` is dropped with its line break; elsewhere ``#`` and the rest of its line
are removed (the line break stays). Everything else is kept exactly.

>>> strip_comments("# header\\nred cat, # fluffy?\\nblue sky")
'red cat, \\nblue sky'
"""
from __future__ import annotations


def strip_comments(text: str) -> str:
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]] + [parts[-1]]
    kept = []
    for line in lines:
        if line.startswith("#"):
            continue
        cut = line.find("#")
        if cut != -1:
            ending = "\r\n" if line.endswith("\r\n") else "\n" if line.endswith("\n") else ""
            line = line[:cut] + ending
        kept.append(line)
    return "".join(kept)
