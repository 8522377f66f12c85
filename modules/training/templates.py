"""Prompt templates for training (A1111's ``textual_inversion_templates/``).

A template file holds one prompt per line; ``[name]`` becomes the embedding's word (or, for a hypernetwork,
its name) and ``[filewords]`` the picture's caption. Files are found under the templates folder
(``--textual-inversion-templates-dir``, by default the repository's own folder of shipped templates),
recursively, and named by file name as A1111 names them (``style_filewords.txt``).
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["TemplateError", "list_templates", "read_template", "default_templates_dir"]

REPO_ROOT = Path(__file__).resolve().parents[2]


class TemplateError(ValueError):
    pass


def default_templates_dir() -> Path:
    return REPO_ROOT / "textual_inversion_templates"


def list_templates(folder: str | os.PathLike | None = None) -> dict[str, Path]:
    """``{file name: path}`` of every ``.txt`` under ``folder``, sorted by name (a later duplicate name loses)."""
    root = Path(folder) if folder else default_templates_dir()
    found: dict[str, Path] = {}
    if root.is_dir():
        for dirpath, dirs, files in os.walk(root, followlinks=True):
            dirs.sort()
            for name in sorted(files):
                if name.lower().endswith(".txt"):
                    found.setdefault(name, Path(dirpath) / name)
    return dict(sorted(found.items(), key=lambda kv: kv[0].lower()))


def read_template(name_or_path: str | os.PathLike, folder: str | os.PathLike | None = None) -> list[str]:
    """The template's prompt lines (stripped, empty ones dropped). ``name_or_path`` is a listed name or a
    file path. TemplateError when there is no such file or it holds no line."""
    templates = list_templates(folder)
    text = str(name_or_path or "").strip()
    path = templates.get(text) or templates.get(f"{text}.txt")
    if path is None:
        candidate = Path(text)
        if not text or not candidate.is_file():
            known = ", ".join(templates) or "none"
            raise TemplateError(f"prompt template {text!r} not found (known: {known})")
        path = candidate
    lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise TemplateError(f"prompt template {path.name!r} has no lines")
    return lines
