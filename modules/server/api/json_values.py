"""Values a JSON body may hold that no part of the server can use: NaN/±Infinity (Python's JSON parser
accepts them) and strings with lone UTF-16 surrogates (``"\\ud800"``). Refused with the path to the value,
and made printable where an error message echoes a body."""
from __future__ import annotations

import math
from typing import Any

_MAX_DEPTH = 64


def _where(path: tuple) -> str:
    return ".".join(map(str, path)) or "body"


def check_json_values(value: Any) -> None:
    """ValueError naming the first non-finite number or invalid string (iterative: any depth is fine; only
    containers get a path of their own, so a list of a million numbers costs one pass)."""
    stack: list[tuple[Any, tuple]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            for key, sub in item.items():
                _check_scalar(key, path + ("<key>",))
                if isinstance(sub, (dict, list)):
                    stack.append((sub, path + (key,)))
                else:
                    _check_scalar(sub, path + (key,)) if isinstance(sub, (float, str)) else None
        elif isinstance(item, list):
            for i, sub in enumerate(item):
                if isinstance(sub, (dict, list)):
                    stack.append((sub, path + (i,)))
                elif isinstance(sub, (float, str)):
                    _check_scalar(sub, path + (i,))
        else:
            _check_scalar(item, path)


def _check_scalar(item: Any, path: tuple) -> None:
    if isinstance(item, float):
        if not math.isfinite(item):
            raise ValueError(f"{_where(path)}: must be a finite number, got {item}")
    elif isinstance(item, str):
        try:
            item.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{_where(path)}: contains an invalid character (a lone UTF-16 surrogate) "
                             f"at position {exc.start}") from None


def printable(value: Any, depth: int = 0, max_text: int | None = None) -> Any:
    """``value`` with non-finite numbers as text, invalid strings escaped, bytes decoded and anything else
    that JSON cannot hold as its text: safe to echo in an error body. ``max_text`` shortens long strings (an
    error about a 60 MB body need not send it back)."""
    if depth > _MAX_DEPTH:
        return "..."
    if isinstance(value, str) and max_text is not None and len(value) > max_text:
        value = f"{value[:max_text]}... ({len(value)} characters)"
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value[:1000]).decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {str(printable(k, depth + 1, max_text)): printable(v, depth + 1, max_text) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [printable(v, depth + 1, max_text) for v in value]
    return printable(str(value), depth + 1, max_text)
