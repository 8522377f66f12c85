"""The Extensions tab, the extensions' own tabs (``on_ui_tabs``) and their scripts/styles for the page head.

- :func:`create_extensions_tab` (inside an open ``gr.Tab("Extensions")``): the installed extensions with
  path, version (git commit), state and load errors; checkboxes to enable/disable them, persisted in the
  ``disabled_extensions`` setting; applied at the next start, or at once when ``restart`` is given
  (the ServerControl's ``request_restart``).
- :func:`extension_tabs`: ``[(blocks, title, elem_id)]`` from the ``ui_tabs`` callbacks, built outside
  the page's render context so that the caller renders each with ``blocks.render()`` inside its own tab.
- :func:`extensions_head_html`: ``<script>``/``<link>`` tags for the page head (served by
  ``modules.extensions.add_routes``).
"""
from __future__ import annotations

import contextlib
import html
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

import gradio as gr

from modules.scripting import extensions

if TYPE_CHECKING:
    from modules.scripting.host import ScriptHost

log = logging.getLogger(__name__)

RESTART_NOTE = "Changes apply at the next start of the program."


def extensions_head_html(host: "ScriptHost") -> str:
    return extensions.head_html(host.extensions)


@contextlib.contextmanager
def _outside_render_context() -> Iterator[None]:
    """Blocks made in here are standalone (not rendered into the page being built), as A1111 builds
    extension tabs before its page."""
    from gradio.context import Context

    saved = Context.root_block, Context.block
    Context.root_block, Context.block = None, None
    try:
        yield
    finally:
        Context.root_block, Context.block = saved


def before_ui(host: "ScriptHost") -> None:
    """A1111's ``on_before_ui`` callbacks: call once before building the page."""
    host.callbacks.run("before_ui")


def extension_tabs(host: "ScriptHost") -> list[tuple[Any, str, str]]:
    """The ``ui_tabs`` callbacks' tabs; a callback that raises or returns something else is logged and left out."""
    tabs: list[tuple[Any, str, str]] = []
    with _outside_render_context():
        results = host.callbacks.run("ui_tabs")
    for result in results:
        for item in result or []:
            try:
                blocks, title = item[0], str(item[1])
                elem_id = str(item[2]) if len(item) > 2 and item[2] else title.lower().replace(" ", "_")
            except (TypeError, IndexError) as exc:
                log.error("An on_ui_tabs callback returned %r, not (blocks, title, elem_id): %s", item, exc)
                continue
            if not hasattr(blocks, "render"):
                log.error("An on_ui_tabs callback returned %r for tab %r, which is not a Gradio block", blocks, title)
                continue
            tabs.append((blocks, title, elem_id))
    return tabs


def _state(manager: extensions.ExtensionManager, ext: extensions.Extension) -> str:
    reason = manager.disabled_reason(ext)
    if reason:
        return f"running; {reason} (from the next start)" if ext.loaded else f"disabled: {reason}"
    if ext.errors and not ext.scripts_loaded and ext.files("scripts", (".py",)):
        return "failed to load"
    if not ext.loaded and not ext.errors:
        return "enabled from the next start"
    if ext.errors:
        return "enabled, with errors"
    return "enabled"


def extensions_table_html(host: "ScriptHost") -> str:
    """The installed extensions as an HTML table (every text escaped)."""
    manager = host.extensions
    items = manager.list()
    if not items:
        return ("<p class='sd-extensions-empty'>No extensions installed. Put an extension's folder into "
                "<code>extensions/</code> and restart.</p>")
    failures = {f.owner: f for f in host.callbacks.failures}
    rows = []
    for ext in items:
        problems = list(ext.errors)
        if ext.name in failures:
            failure = failures[ext.name]
            problems.append(f"{failure.kind} callback: {failure.error}")
        problem_html = "<br>".join(html.escape(p) for p in problems) or ""
        notes = "<br>".join(html.escape(n) for n in ext.notes)
        version = html.escape(ext.version or "—")
        remote = html.escape(ext.git.remote)
        rows.append(
            f"<tr data-extension='{html.escape(ext.name, quote=True)}'>"
            f"<td>{html.escape(ext.name)}{' <small>(built-in)</small>' if ext.is_builtin else ''}</td>"
            f"<td><code>{html.escape(str(ext.path))}</code></td>"
            f"<td title='{remote}'>{version}</td>"
            f"<td>{html.escape(_state(manager, ext))}</td>"
            f"<td class='sd-extension-errors'>{problem_html}</td>"
            f"<td class='sd-extension-notes'>{notes}</td></tr>")
    head = "<tr><th>Extension</th><th>Path</th><th>Version</th><th>State</th><th>Errors</th><th>Notes</th></tr>"
    return f"<table id='extensions' class='sd-extensions'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def apply_enabled(host: "ScriptHost", enabled: list[str] | None) -> str:
    """Persist the enabled set; returns a message for the page."""
    disabled = host.extensions.set_enabled(enabled or [])
    names = ", ".join(disabled) if disabled else "none"
    return f"Saved. Disabled extensions: {names}."


@dataclass
class ExtensionsTab:
    table: Any
    enabled: Any
    apply: Any
    message: Any


def create_extensions_tab(host: "ScriptHost", restart: Callable[[], None] | None = None) -> ExtensionsTab:
    manager = host.extensions
    names = [e.name for e in manager.list()]
    with gr.Column(elem_id="extensions_installed_top"):
        enabled = gr.CheckboxGroup(label="Enabled extensions", choices=names,
                                   value=[e.name for e in manager.list() if manager.is_enabled(e)],
                                   elem_id="extensions_enabled")
        with gr.Row():
            apply = gr.Button("Apply and restart UI" if restart else "Apply", variant="primary",
                              elem_id="extensions_apply", scale=0)
            check = gr.Button("Refresh", elem_id="extensions_refresh", scale=0)
        message = gr.Markdown("" if restart else RESTART_NOTE, elem_id="extensions_message")
        table = gr.HTML(extensions_table_html(host), elem_id="extensions_table")
    from modules.page.extensions_admin import create_admin_ui

    create_admin_ui(host)  # updates, install from URL, available list, backup/restore

    def on_apply(selected: list[str]) -> tuple[str, str]:
        text = apply_enabled(host, selected)
        if restart is not None:
            restart()
            text += " Restarting..."
        else:
            text += " " + RESTART_NOTE
        return extensions_table_html(host), text

    apply.click(on_apply, inputs=[enabled], outputs=[table, message], api_visibility="private")
    check.click(lambda: extensions_table_html(host), outputs=[table], api_visibility="private")
    return ExtensionsTab(table, enabled, apply, message)
