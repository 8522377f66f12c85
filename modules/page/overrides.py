"""A1111's "Override settings" row: the settings a pasted infotext changes for this generation, one chip each.

The component is a multiselect Dropdown whose values are tokens (one JSON object ``{key: value}`` per setting,
so the value keeps its type) and whose labels are what the infotext calls the setting (``Clip skip: 2``).
Removing a chip drops that override; :func:`overrides_from_tokens` turns what is left into the request's
``override_settings``.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Mapping

import gradio as gr

if TYPE_CHECKING:
    from modules.engine.engine import Engine


def _setting_name(engine: "Engine", key: str) -> str:
    try:
        info = engine.options.info(key)
    except (KeyError, AttributeError):
        return key
    return info.infotext or info.label or key


def token(key: str, value: Any) -> str:
    return json.dumps({key: value}, sort_keys=True)


def chips(engine: "Engine", overrides: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``[(label, token)]`` for the Dropdown's choices, in the overrides' order."""
    return [(f"{_setting_name(engine, key)}: {value}", token(key, value)) for key, value in overrides.items()]


def overrides_from_tokens(tokens: Any) -> dict[str, Any]:
    """The request's ``override_settings`` from the Dropdown's value (a dict passes through, for old callers)."""
    if isinstance(tokens, Mapping):
        return dict(tokens)
    out: dict[str, Any] = {}
    for item in tokens or ():
        try:
            decoded = json.loads(item)
        except (TypeError, ValueError):
            continue  # a hand-typed chip that is not ours: nothing to apply
        if isinstance(decoded, dict):
            out.update(decoded)
    return out


def update(engine: "Engine", overrides: Mapping[str, Any]) -> Any:
    """The Dropdown update that shows ``overrides`` as chips (the row hides when there are none)."""
    choices = chips(engine, overrides)
    return gr.update(choices=choices, value=[t for _, t in choices], visible=bool(choices))


def component(tab: str) -> gr.Dropdown:
    return gr.Dropdown(label="Override settings", choices=[], value=[], multiselect=True, visible=False,
                       elem_id=f"{tab}_override_settings", elem_classes=["sd-override-settings"])

