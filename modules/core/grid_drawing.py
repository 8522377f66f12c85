"""Labelled image grids for the X/Y/Z plot and the prompt matrix (pure functions over PIL images).

``image_grid_with_margin`` lays cells out row by row with gaps; ``draw_grid_annotations`` adds column
labels above and row labels on the left (a label can be drawn inactive: grey and struck through, as the
prompt matrix shows the parts a cell leaves out). The font is PIL's default scalable font
(``ImageFont.load_default(size)``), sized from the cell: ``(cell_w + cell_h) // 25``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

ACTIVE_COLOR = (0, 0, 0)
INACTIVE_COLOR = (153, 153, 153)
BACKGROUND = (255, 255, 255)
MIN_FONT = 8


@dataclass(frozen=True)
class GridAnnotation:
    text: str = ""
    is_active: bool = True


def font_size_for(cell_w: int, cell_h: int) -> int:
    return max(MIN_FONT, (cell_w + cell_h) // 25)


def load_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size)


def image_grid_with_margin(images: Sequence[Image.Image], rows: int, margin: int = 0,
                           cell_size: tuple[int, int] | None = None) -> Image.Image:
    """``rows`` rows of ``ceil(n / rows)`` cells, each the largest image's size (or ``cell_size``), ``margin``
    white pixels between cells (not around them); smaller images are centred."""
    imgs = list(images)
    if not imgs:
        raise ValueError("a grid needs at least one image")
    rows = max(1, min(int(rows), len(imgs)))
    cols = math.ceil(len(imgs) / rows)
    w, h = cell_size or tuple(map(max, zip(*(img.size for img in imgs))))
    grid = Image.new("RGB", (cols * w + (cols - 1) * margin, rows * h + (rows - 1) * margin), BACKGROUND)
    for i, img in enumerate(imgs):
        x = (i % cols) * (w + margin) + (w - img.width) // 2
        y = (i // cols) * (h + margin) + (h - img.height) // 2
        if img.mode in ("RGBA", "LA", "P"):
            rgba = img.convert("RGBA")
            grid.paste(rgba, (x, y), mask=rgba)
        else:
            grid.paste(img.convert("RGB"), (x, y))
    return grid


def _text_width(font: ImageFont.ImageFont, text: str) -> int:
    left, _, right, _ = font.getbbox(text)
    return right - left


def wrap_text(text: str, font: ImageFont.ImageFont, max_width: int) -> list[str]:
    """Greedy word wrap to ``max_width`` pixels (a word wider than that gets a line of its own)."""
    lines: list[str] = []
    for paragraph in str(text).split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if line and _text_width(font, candidate) > max_width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


@dataclass
class _Block:
    """The wrapped lines of a label list, with the font each annotation is drawn in."""

    lines: list[tuple[str, bool, ImageFont.ImageFont, int]]  # (text, active, font, line height)

    @property
    def height(self) -> int:
        return sum(h for _, _, _, h in self.lines)


def _layout_block(annotations: Sequence[GridAnnotation], max_width: int, size: int) -> _Block:
    lines = []
    for ann in annotations:
        if not ann.text:
            continue
        fnt_size = size
        fnt = load_font(fnt_size)
        # Shrink a label whose longest word does not fit (a long file name) rather than overflow the cell.
        while fnt_size > MIN_FONT and max((_text_width(fnt, w) for w in ann.text.split()), default=0) > max_width:
            fnt_size -= 1
            fnt = load_font(fnt_size)
        line_h = int(fnt_size * 1.2) + 1
        for text in wrap_text(ann.text, fnt, max_width):
            lines.append((text, ann.is_active, fnt, line_h))
    return _Block(lines)


def annotation_padding(cell_w: int, cell_h: int, hor_texts: Sequence[Sequence[GridAnnotation]],
                       ver_texts: Sequence[Sequence[GridAnnotation]]) -> tuple[int, int]:
    """(left, top) pixels that :func:`draw_grid_annotations` adds for these labels (0 where there are none)."""
    size = font_size_for(cell_w, cell_h)
    spacing = size // 2
    has_ver = any(a.text for anns in ver_texts for a in anns)
    has_hor = any(a.text for anns in hor_texts for a in anns)
    pad_left = cell_w * 3 // 4 if has_ver else 0
    pad_top = 0
    if has_hor:
        pad_top = max(_layout_block(anns, cell_w, size).height for anns in hor_texts) + spacing * 2
    return pad_left, pad_top


def _draw_block(draw: ImageDraw.ImageDraw, block: _Block, cx: float, cy: float) -> None:
    y = cy - block.height / 2
    for text, active, fnt, line_h in block.lines:
        width = _text_width(fnt, text)
        x = cx - width / 2
        color = ACTIVE_COLOR if active else INACTIVE_COLOR
        draw.text((x, y + line_h / 2), text, font=fnt, fill=color, anchor="lm")
        if not active:
            mid = y + line_h / 2
            draw.line((x - 2, mid, x + width + 2, mid), fill=color, width=max(1, line_h // 12))
        y += line_h


def draw_grid_annotations(grid: Image.Image, cell_w: int, cell_h: int,
                          hor_texts: Sequence[Sequence[GridAnnotation]],
                          ver_texts: Sequence[Sequence[GridAnnotation]], margin: int = 0) -> Image.Image:
    """``grid`` (``len(hor_texts)`` columns × ``len(ver_texts)`` rows of ``cell_w``×``cell_h`` cells, ``margin``
    apart) with each column's labels centred above it and each row's on its left."""
    size = font_size_for(cell_w, cell_h)
    pad_left, pad_top = annotation_padding(cell_w, cell_h, hor_texts, ver_texts)
    out = Image.new("RGB", (grid.width + pad_left, grid.height + pad_top), BACKGROUND)
    out.paste(grid, (pad_left, pad_top))
    draw = ImageDraw.Draw(out)
    if pad_top:
        for col, anns in enumerate(hor_texts):
            block = _layout_block(anns, cell_w, size)
            _draw_block(draw, block, pad_left + col * (cell_w + margin) + cell_w / 2, pad_top / 2)
    if pad_left:
        for row, anns in enumerate(ver_texts):
            block = _layout_block(anns, pad_left, size)
            _draw_block(draw, block, pad_left / 2, pad_top + row * (cell_h + margin) + cell_h / 2)
    return out
