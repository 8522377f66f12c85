"""The Extensions tab's A1111 actions (below the installed list): check for updates and update, install from a
URL, the "Available" list from an index URL or file, backup and restore. The work is done by
:mod:`modules.scripting.extension_admin`; this module only lays out the controls and shows its messages."""
from __future__ import annotations

import html
from typing import Any

import gradio as gr

from modules.scripting import extension_admin as admin


def _message(text: str, error: bool = False) -> str:
    return f"<p class='{'sd-error' if error else 'sd-note'}'>{html.escape(text)}</p>"


def _guard(fn: Any) -> Any:
    def run(*args: Any) -> Any:
        try:
            return fn(*args)
        except admin.ExtensionActionError as exc:
            return _message(str(exc), error=True)
    return run


def _updates_html(status: list[admin.UpdateStatus]) -> str:
    rows = "".join(f"<tr data-extension='{html.escape(s.name, quote=True)}'><td>{html.escape(s.name)}</td>"
                   f"<td>{html.escape(s.state)}</td><td>{html.escape(s.message)}</td></tr>" for s in status)
    return (f"<table class='sd-extensions' id='extensions_updates'><tr><th>Extension</th><th>Update</th>"
            f"<th>Details</th></tr>{rows}</table>") if status else _message("No extensions installed.")


def _available_html(items: list[admin.AvailableExtension]) -> str:
    rows = "".join(
        f"<tr><td><a href='{html.escape(i.url, quote=True)}' target='_blank' rel='noopener'>{html.escape(i.name)}</a></td>"
        f"<td>{html.escape(i.description)}</td><td>{html.escape(', '.join(i.tags))}</td>"
        f"<td><code>{html.escape(i.url)}</code></td><td>{'installed' if i.installed else ''}</td></tr>" for i in items)
    return (f"<table class='sd-extensions' id='extensions_available_table'><tr><th>Extension</th><th>Description</th>"
            f"<th>Tags</th><th>URL (paste it under Install from URL)</th><th></th></tr>{rows}</table>")


def create_admin_ui(host: Any) -> None:
    """``host``: the ScriptHost whose extensions the tab manages."""
    manager = host.extensions
    with gr.Accordion("Check for updates", open=False, elem_id="extensions_updates_box"):
        with gr.Row():
            check = gr.Button("Check for updates", elem_id="extensions_check_updates", scale=0)
            name = gr.Dropdown(label="Extension to update", choices=[e.name for e in manager.list()],
                               elem_id="extensions_update_name")
            update = gr.Button("Update", elem_id="extensions_update", scale=0)
        updates = gr.HTML(elem_id="extensions_updates_result")
    check.click(_guard(lambda: _updates_html(admin.check_for_updates(manager))), outputs=[updates],
                api_visibility="private")
    update.click(_guard(lambda n: _message(f"{n} updated to {admin.update(manager, n)}; restart to use it.")),
                 inputs=[name], outputs=[updates], api_visibility="private")

    with gr.Accordion("Install from URL", open=False, elem_id="extensions_install_box"):
        url = gr.Textbox(label="URL for extension's git repository", elem_id="extensions_install_url")
        branch = gr.Textbox(label="Specific branch name (leave empty for default)", elem_id="extensions_install_branch")
        dirname = gr.Textbox(label="Local directory name (leave empty for auto)", elem_id="extensions_install_dirname")
        install = gr.Button("Install", variant="primary", elem_id="extensions_install_button")
        install_result = gr.HTML(elem_id="extensions_install_result")
    install.click(_guard(lambda u, b, d: _message(f"Installed into {admin.install_from_url(manager, u, b, d)}; "
                                                  f"restart to use it.")),
                  inputs=[url, branch, dirname], outputs=[install_result], api_visibility="private")

    with gr.Accordion("Available", open=False, elem_id="extensions_available_box"):
        with gr.Row():
            index = gr.Textbox(label="Extension index URL or file", value=admin.DEFAULT_INDEX_URL,
                               elem_id="extensions_index_url")
            hide = gr.Checkbox(label="Hide installed", value=True, elem_id="extensions_hide_installed")
            load = gr.Button("Load from:", elem_id="extensions_load_available", scale=0)
        listing = gr.HTML(elem_id="extensions_available")
    load.click(_guard(lambda src, h: _available_html(admin.available(manager, src, h))), inputs=[index, hide],
               outputs=[listing], api_visibility="private")

    with gr.Accordion("Backup/Restore", open=False, elem_id="extensions_backup_box"):
        with gr.Row():
            label = gr.Textbox(label="Backup name (leave empty for the date)", elem_id="extensions_backup_name")
            save = gr.Button("Save current state", elem_id="extensions_backup_save", scale=0)
        with gr.Row():
            saved = gr.Dropdown(label="Saved states", choices=[str(p) for p in admin.list_backups(manager)],
                                elem_id="extensions_backup_list", allow_custom_value=True)
            restore = gr.Button("Restore selected state", elem_id="extensions_backup_restore", scale=0)
        backup_result = gr.HTML(elem_id="extensions_backup_result")

    def on_save(text: str) -> tuple[Any, str]:
        path = admin.backup(manager, text)
        return gr.update(choices=[str(p) for p in admin.list_backups(manager)], value=str(path)), _message(f"Saved {path}")

    def on_save_guarded(text: str) -> tuple[Any, str]:
        try:
            return on_save(text)
        except admin.ExtensionActionError as exc:
            return gr.update(), _message(str(exc), error=True)

    save.click(on_save_guarded, inputs=[label], outputs=[saved, backup_result], api_visibility="private")
    restore.click(_guard(lambda p: _message("; ".join(admin.restore(manager, p)) + ". Restart to apply.")),
                  inputs=[saved], outputs=[backup_result], api_visibility="private")
