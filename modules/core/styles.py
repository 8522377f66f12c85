"""Prompt styles kept in ``styles.csv`` files (columns ``name,prompt,negative_prompt``), as in A1111.

A style's text is merged into the user's prompt: where it holds ``{prompt}`` the prompt is put there,
otherwise the two are joined with ``", "`` (empty parts skipped). Several files may be used at once;
each style remembers the file it came from and is saved back there.

>>> merge_prompts("masterpiece, {prompt}, 4k", "a cat")
'masterpiece, a cat, 4k'
>>> merge_prompts("masterpiece", " a cat ")
'a cat, masterpiece'
>>> extract_style_text_from_prompt("masterpiece", "a cat, masterpiece")
(True, 'a cat')
"""
from __future__ import annotations

import csv
import io
import logging
import os
from typing import Iterable, NamedTuple

from modules.core.fileio import atomic_write_text

log = logging.getLogger(__name__)

FIELDS = ("name", "prompt", "negative_prompt")
PLACEHOLDER = "{prompt}"


class PromptStyle(NamedTuple):
    name: str
    prompt: str
    negative_prompt: str
    path: str | None = None


class StyleFileError(Exception):
    """A styles file that cannot be read (or must not be overwritten); the message names the file."""

    def __init__(self, path, reason: str):
        self.path = os.fspath(path)
        super().__init__(f"styles file {self.path}: {reason}")


# ---------------------------------------------------------------------------------------------------
# Applying and extracting
# ---------------------------------------------------------------------------------------------------
def merge_prompts(style_prompt: str, prompt: str) -> str:
    """Put `prompt` into the style text (at ``{prompt}``, else joined after it with ``", "``)."""
    style_prompt = style_prompt or ""
    if PLACEHOLDER in style_prompt:
        return style_prompt.replace(PLACEHOLDER, prompt)
    return ", ".join(part for part in (prompt.strip(), style_prompt.strip()) if part)


def apply_styles_to_prompt(prompt: str, styles: Iterable[str]) -> str:
    """Apply style *texts* in order."""
    for style_text in styles:
        prompt = merge_prompts(style_text, prompt)
    return prompt


def extract_style_text_from_prompt(style_text: str, prompt: str) -> tuple[bool, str]:
    """Undo ``merge_prompts(style_text, x)``: ``(True, x)`` where `prompt` is such a result, else ``(False, prompt)``.

    The recovered `x` is stripped. A joined style must stand after ``", "`` (or be the whole prompt):
    "supermasterpiece" is not "super" with the style "masterpiece" (the reference would say it is).
    """
    stripped = prompt.strip()
    style = (style_text or "").strip()
    if PLACEHOLDER in style:
        if style.count(PLACEHOLDER) > 1:
            return False, prompt
        left, _, right = style.partition(PLACEHOLDER)
        if len(stripped) >= len(left) + len(right) and stripped.startswith(left) and stripped.endswith(right):
            return True, stripped[len(left):len(stripped) - len(right)]
        return False, prompt
    if not style:
        return True, stripped
    if stripped == style:
        return True, ""
    if stripped.endswith(", " + style):
        return True, stripped[:-len(style) - 2]
    return False, prompt


def extract_original_prompts(style: PromptStyle, prompt: str, negative_prompt: str) -> tuple[bool, str, str]:
    """Undo one style on both prompts; it matches only if both its texts match (and it has any text)."""
    if not style.prompt and not style.negative_prompt:
        return False, prompt, negative_prompt
    ok, positive = extract_style_text_from_prompt(style.prompt, prompt)
    if not ok:
        return False, prompt, negative_prompt
    ok, negative = extract_style_text_from_prompt(style.negative_prompt, negative_prompt)
    if not ok:
        return False, prompt, negative_prompt
    return True, positive, negative


def extract_styles_from_prompt(styles: Iterable[PromptStyle], prompt: str,
                               negative_prompt: str) -> tuple[list[str], str, str]:
    """Undo applied styles: ``(style names in application order, prompt, negative_prompt)``.

    Repeatedly takes off the first style (in the given order) whose prompt *and* negative prompt both match the
    ends of the current texts, until none does. The one implementation behind the style database, PNG Info and
    the API's png-info."""
    extracted: list[str] = []
    candidates = list(styles)
    while True:
        for style in candidates:
            ok, new_prompt, new_negative = extract_original_prompts(style, prompt, negative_prompt)
            if ok:
                prompt, negative_prompt = new_prompt, new_negative
                candidates.remove(style)
                extracted.append(style.name)
                break
        else:
            break
    return list(reversed(extracted)), prompt, negative_prompt


# ---------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------
def read_styles_csv(path) -> list[PromptStyle]:
    """The styles of one file. A missing file has none; an unreadable one raises ``StyleFileError``.

    Tolerated: a BOM, blank lines, rows starting with ``#`` (comments), missing ``prompt`` /
    ``negative_prompt`` columns or short rows (empty text), header spacing and case, and the old
    ``name,text`` layout.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        return []
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f, skipinitialspace=True, strict=True)
            header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
            if not header:
                return []
            if "name" not in header:
                raise StyleFileError(path, f"no 'name' column in the header {reader.fieldnames!r}")
            reader.fieldnames = header
            prompt_key = "prompt" if "prompt" in header else "text"
            styles = []
            for row in reader:
                name = row.get("name") or ""
                if not name or name.startswith("#"):
                    continue
                styles.append(PromptStyle(name, row.get(prompt_key) or "", row.get("negative_prompt") or "", path))
            return styles
    except StyleFileError:
        raise
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise StyleFileError(path, f"{type(e).__name__}: {e}") from e


def styles_to_csv(styles: Iterable[PromptStyle]) -> str:
    out = io.StringIO(newline="")
    # Every field quoted, so that leading spaces survive a reader with skipinitialspace.
    writer = csv.writer(out, quoting=csv.QUOTE_ALL)
    writer.writerow(FIELDS)
    for style in styles:
        writer.writerow([style.name, style.prompt or "", style.negative_prompt or ""])
    return out.getvalue()


def _same_path(a, b) -> bool:
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


class StyleDatabase:
    """Styles from one or more CSV files; the first file is where new styles go.

    `paths` are files (``--styles-file`` wildcards are expanded by ``modules.paths``); a missing file
    simply has no styles yet.
    """

    def __init__(self, paths):
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths: list[str] = [os.fspath(p) for p in paths]
        self.styles: dict[str, PromptStyle] = {}
        self.errors: list[str] = []
        self._failed: list[str] = []
        self._shadowed: list[PromptStyle] = []  # same name in a later file; still saved back to its own file
        self.reload()

    @property
    def default_path(self) -> str | None:
        return self.paths[0] if self.paths else None

    def reload(self) -> list[str]:
        """Read every file again. A file that cannot be read is skipped; returns (and keeps in
        ``errors``) one message per such file, naming it."""
        self.styles.clear()
        self.errors = []
        self._failed = []
        self._shadowed = []
        for path in self.paths:
            try:
                loaded = read_styles_csv(path)
            except StyleFileError as e:
                log.error("%s", e)
                self.errors.append(str(e))
                self._failed.append(path)
                continue
            for style in loaded:
                earlier = self.styles.pop(style.name, None)
                if earlier is not None and not _same_path(earlier.path, path):
                    self._shadowed.append(earlier)
                self.styles[style.name] = style
        return list(self.errors)

    # --- editing --------------------------------------------------------------------------------
    def set_style(self, name: str, prompt: str, negative_prompt: str, path=None) -> PromptStyle:
        """Add or replace a style; it stays in its file unless `path` says otherwise (new ones: the first file)."""
        if not name or name.startswith("#"):
            raise ValueError(f"invalid style name {name!r}: empty, or starts with '#'")
        old = self.styles.get(name)
        if path is None:
            path = old.path if old is not None and old.path else self.default_path
        style = PromptStyle(name, prompt or "", negative_prompt or "", os.fspath(path) if path else None)
        self.styles[name] = style
        return style

    def delete_style(self, name: str) -> bool:
        return self.styles.pop(name, None) is not None

    # --- prompts ----------------------------------------------------------------------------------
    def get_style_prompts(self, styles: Iterable[str]) -> list[str]:
        return [self.styles[x].prompt for x in styles if x in self.styles]

    def get_negative_style_prompts(self, styles: Iterable[str]) -> list[str]:
        return [self.styles[x].negative_prompt for x in styles if x in self.styles]

    def apply_styles_to_prompt(self, prompt: str, styles: Iterable[str]) -> str:
        """Apply the named styles in order; unknown names are ignored."""
        return apply_styles_to_prompt(prompt, self.get_style_prompts(styles))

    def apply_negative_styles_to_prompt(self, prompt: str, styles: Iterable[str]) -> str:
        return apply_styles_to_prompt(prompt, self.get_negative_style_prompts(styles))

    def extract_styles_from_prompt(self, prompt: str, negative_prompt: str) -> tuple[list[str], str, str]:
        """Undo applied styles of this database (see :func:`extract_styles_from_prompt`)."""
        return extract_styles_from_prompt(self.styles.values(), prompt, negative_prompt)

    # --- saving -----------------------------------------------------------------------------------
    def save_styles(self, path=None) -> None:
        """Write the styles of `path` (default: of every file) atomically, each file its own styles.

        A file that failed to load is never overwritten: saving it explicitly raises ``StyleFileError``.
        """
        if path is not None:
            path = os.fspath(path)
            failed = next((f for f in self._failed if _same_path(f, path)), None)
            if failed is not None:
                raise StyleFileError(path, "not saved: it could not be read, and writing would lose its content")
            targets = [path]
        else:
            targets = [f for f in self.paths if f not in self._failed]
            for style in self.styles.values():
                if style.path and not any(_same_path(style.path, t) for t in targets + self._failed):
                    targets.append(style.path)
        for target in targets:
            mine = [s for s in self.styles.values() if s.path and _same_path(s.path, target)]
            names = {s.name for s in mine}
            mine += [s for s in self._shadowed if _same_path(s.path, target) and s.name not in names]
            atomic_write_text(target, styles_to_csv(mine), encoding="utf-8-sig")

    def __repr__(self):
        return f"StyleDatabase({self.paths!r}, {len(self.styles)} styles)"
