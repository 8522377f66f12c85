"""Procedural captioned scenes for the demo model: one coloured shape on a plain or patterned background.

Everything is deterministic given a seed (numpy ``Generator``), drawn with PIL at 4x and box-downsampled
(anti-aliased edges), so the same seed gives the same pixels on every machine.

Vocabulary (what the demo model understands):

* shapes: circle, square, triangle, star, diamond
* colours: red, orange, yellow, green, cyan, blue, purple, pink (distinct hues, at least 30 degrees apart)
* sizes: small, large; positions: left, right, top, bottom, center
* backgrounds: the colours plus white, gray, black; ``checkered X and Y`` (8 px squares)
* ``striped`` (vertical 8 px bands with white) is *not* in the base model's data: it is the demo LoRA's concept.

A caption names some attributes ("a small red circle on the left, blue background"); those it leaves out
are drawn at random in the picture. The held-out split is by content (shape, colour, size, position, plain
background): about one combination in ten never appears in training, whatever its caption says, and
:func:`heldout_scenes` lists them for the evaluation.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "COLOURS", "BACKGROUNDS", "SHAPES", "SIZES", "POSITIONS", "RESOLUTION", "Scene",
    "render", "shape_mask", "caption", "sample_scene", "is_heldout", "heldout_scenes", "sepia", "hue_of",
]

RESOLUTION = 64
SUPERSAMPLE = 4

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 35, 35),
    "orange": (240, 135, 20),
    "yellow": (235, 215, 30),
    "green": (40, 170, 60),
    "cyan": (30, 195, 215),
    "blue": (40, 80, 225),
    "purple": (140, 50, 200),
    "pink": (240, 100, 180),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {**COLOURS, "white": (245, 245, 245), "gray": (128, 128, 128),
                                                "black": (20, 20, 20)}
SHAPES = ("circle", "square", "triangle", "star", "diamond")
SIZES = {"small": 9.0, "large": 16.0}  # radius of the shape's circumscribed circle, in pixels at 64 px
POSITIONS = {"left": (20.0, 32.0), "right": (44.0, 32.0), "top": (32.0, 20.0), "bottom": (32.0, 44.0),
             "center": (32.0, 32.0)}
POSITION_WORDS = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom",
                  "center": "in the center"}
PATTERNS = ("plain", "checkered", "striped")
STRIPE_PERIOD = 16  # pixels; bands of 8 px line up with the 8x8 latent cells
HELDOUT_MODULUS = 10


@dataclass(frozen=True)
class Scene:
    shape: str
    colour: str
    size: str
    position: str
    background: str
    pattern: str = "plain"          # plain | checkered | striped
    background2: str = "white"      # second colour of a pattern
    # which attributes the caption names (the others are still drawn)
    name_size: bool = True
    name_position: bool = True
    name_background: bool = True
    template: int = 0

    def content(self) -> tuple[str, str, str, str, str]:
        return (self.shape, self.colour, self.size, self.position, self.background)


# --- drawing ------------------------------------------------------------------------------------------

def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    if shape == "square":
        h = r * 0.66  # clearly smaller than the circle (radius 0.92 r): their IoU stays below 0.75
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
    if shape == "triangle":  # point up, centroid-ish at the centre
        return [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in np.deg2rad([-90, 30, 150])]
    if shape == "star":
        pts = []
        for i in range(10):
            rad = r if i % 2 == 0 else r * 0.45
            a = np.deg2rad(-90 + 36 * i)
            pts.append((cx + rad * np.cos(a), cy + rad * np.sin(a)))
        return pts
    return None


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    s = SUPERSAMPLE
    if shape == "circle":
        rr = r * 0.92
        draw.ellipse([(cx - rr) * s, (cy - rr) * s, (cx + rr) * s, (cy + rr) * s], fill=fill)
        return
    pts = _polygon(shape, cx, cy, r)
    if pts is None:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    draw.polygon([(x * s, y * s) for x, y in pts], fill=fill)


def _background(scene: Scene, size: int) -> Image.Image:
    c1 = BACKGROUNDS[scene.background]
    img = Image.new("RGB", (size, size), c1)
    if scene.pattern == "plain":
        return img
    c2 = BACKGROUNDS[scene.background2]
    draw = ImageDraw.Draw(img)
    cell = size * (STRIPE_PERIOD // 2) // RESOLUTION
    n = size // cell
    for i in range(n):
        for j in range(n):
            if scene.pattern == "striped" and i % 2 == 1:
                draw.rectangle([i * cell, j * cell, (i + 1) * cell - 1, (j + 1) * cell - 1], fill=c2)
            elif scene.pattern == "checkered" and (i + j) % 2 == 1:
                draw.rectangle([i * cell, j * cell, (i + 1) * cell - 1, (j + 1) * cell - 1], fill=c2)
    if scene.pattern not in PATTERNS:
        raise ValueError(f"unknown pattern {scene.pattern!r}; known: {', '.join(PATTERNS)}")
    return img


def render(scene: Scene, resolution: int = RESOLUTION, colour_rgb: tuple[int, int, int] | None = None) -> Image.Image:
    """The scene as an RGB image (``colour_rgb`` overrides the shape's colour, for VAE data)."""
    big = resolution * SUPERSAMPLE
    img = _background(scene, big)
    k = resolution / RESOLUTION
    cx, cy = POSITIONS[scene.position]
    _draw_shape(ImageDraw.Draw(img), scene.shape, cx * k, cy * k, SIZES[scene.size] * k,
                colour_rgb or COLOURS[scene.colour])
    return img.resize((resolution, resolution), Image.BOX)


def shape_weight(scene: Scene, resolution: int = RESOLUTION, weight: float = 10.0, margin: float = 3.0) -> np.ndarray:
    """Per-pixel loss weights: ``weight`` on the shape and ``margin`` pixels around it, 1 elsewhere (the
    background is easy and covers most pixels; the shape is what matters)."""
    big = resolution * SUPERSAMPLE
    img = Image.new("L", (big, big), 0)
    k = resolution / RESOLUTION
    cx, cy = POSITIONS[scene.position]
    _draw_shape(ImageDraw.Draw(img), scene.shape, cx * k, cy * k, (SIZES[scene.size] + margin) * k, 255)
    near = np.asarray(img.resize((resolution, resolution), Image.BOX), dtype=np.float32) / 255.0
    return 1.0 + (weight - 1.0) * near


def shape_mask(shape: str, size: str, position: str, resolution: int = RESOLUTION) -> np.ndarray:
    """Boolean mask of the ideal shape (pixels at least half covered)."""
    big = resolution * SUPERSAMPLE
    img = Image.new("L", (big, big), 0)
    k = resolution / RESOLUTION
    cx, cy = POSITIONS[position]
    _draw_shape(ImageDraw.Draw(img), shape, cx * k, cy * k, SIZES[size] * k, 255)
    return np.asarray(img.resize((resolution, resolution), Image.BOX)) >= 128


# --- captions -----------------------------------------------------------------------------------------

def _background_words(scene: Scene) -> str:
    if scene.pattern == "checkered":
        return f"checkered {scene.background} and {scene.background2} background"
    if scene.pattern == "striped":
        return f"striped {scene.background} background"
    return f"{scene.background} background"


def caption(scene: Scene) -> str:
    """The scene's caption, e.g. "a small red circle on the left, blue background"."""
    words = ([scene.size] if scene.name_size else []) + [scene.colour, scene.shape]
    thing = " ".join(words)
    article = "an" if thing[0] in "aeiou" else "a"
    pos = POSITION_WORDS[scene.position] if scene.name_position else ""
    bg = _background_words(scene) if scene.name_background else ""
    if scene.template == 1:
        text = f"{article} {thing}" + (f" {pos}" if pos else "") + (f" on a {bg}" if bg else "")
    elif scene.template == 2:
        text = thing + (f", {pos}" if pos else "") + (f", {bg}" if bg else "")
    else:
        text = f"{article} {thing}" + (f" {pos}" if pos else "") + (f", {bg}" if bg else "")
    return text


# --- sampling -----------------------------------------------------------------------------------------

def _stable_hash(parts: tuple[str, ...]) -> int:
    return int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:8], "little")


def is_heldout(content: tuple[str, str, str, str, str]) -> bool:
    """Whether a (shape, colour, size, position, background) combination is kept out of training."""
    return _stable_hash(content) % HELDOUT_MODULUS == 0


def _choice(rng: np.random.Generator, items) -> str:
    items = list(items)
    return items[int(rng.integers(len(items)))]


def sample_scene(rng: np.random.Generator, *, split: str = "train", pattern_p: float = 0.1,
                 drop_p: float = 0.2, pattern: str | None = None) -> Scene:
    """A random scene of the split ("train": never a held-out combination; "any": no restriction).

    ``pattern`` forces a background pattern ("striped" for the LoRA's data)."""
    while True:
        shape = _choice(rng, SHAPES)
        colour = _choice(rng, COLOURS)
        bg = _choice(rng, [b for b in BACKGROUNDS if b != colour])
        size, position = _choice(rng, SIZES), _choice(rng, POSITIONS)
        if split == "train" and is_heldout((shape, colour, size, position, bg)):
            continue
        break
    pat, bg2 = "plain", "white"
    if pattern is not None:
        pat = pattern
    elif rng.random() < pattern_p:
        pat = "checkered"
    if pat == "checkered":
        bg2 = _choice(rng, [b for b in ("white", "black") if b != bg])
    elif pat == "striped":
        bg2 = "white" if bg != "white" else "gray"
    return Scene(shape, colour, size, position, bg, pat, bg2,
                 name_size=rng.random() >= drop_p, name_position=rng.random() >= drop_p,
                 name_background=rng.random() >= drop_p / 2, template=int(rng.integers(3)))


def all_contents() -> Iterator[tuple[str, str, str, str, str]]:
    for shape in SHAPES:
        for colour in COLOURS:
            for size in SIZES:
                for position in POSITIONS:
                    for bg in BACKGROUNDS:
                        if bg != colour:
                            yield (shape, colour, size, position, bg)


def heldout_scenes(limit: int | None = None, seed: int = 0) -> list[Scene]:
    """The held-out combinations with full captions (template 0), in a fixed shuffled order."""
    scenes = [Scene(*c) for c in all_contents() if is_heldout(c)]
    order = np.random.default_rng(seed).permutation(len(scenes))
    scenes = [scenes[i] for i in order]
    return scenes[:limit] if limit else scenes


# --- colour helpers -----------------------------------------------------------------------------------

_SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=np.float32)


def sepia(img: Image.Image) -> Image.Image:
    """The classic sepia tone (the demo hypernetwork's target look)."""
    a = np.asarray(img.convert("RGB"), dtype=np.float32) @ _SEPIA.T
    return Image.fromarray(np.clip(a, 0, 255).round().astype(np.uint8))


def hue_of(rgb) -> float:
    """Hue in degrees of an RGB triple (0..255)."""
    import colorsys

    r, g, b = (float(v) / 255.0 for v in rgb)
    return colorsys.rgb_to_hsv(r, g, b)[0] * 360.0


def with_caption_parts(scene: Scene, **changes) -> Scene:
    return replace(scene, **changes)
