"""Procedural textures: small-ad posters and lawful shop signs.

OpenCV's fonts have no CJK glyphs, so text is drawn as CJK-like characters: random
horizontal, vertical and slanted strokes inside square cells, which at street distances read
like Chinese print. Phone-number-like strings use OpenCV's digits.
"""

from __future__ import annotations

import cv2
import numpy as np

from streetwatch.datasets.synth.render import UInt8Image

Rng = np.random.Generator


def _glyph(image: UInt8Image, x: int, y: int, size: int, colour: tuple[int, int, int],
           rng: Rng) -> None:
    """Draw one CJK-like character in the square cell at (x, y)."""
    thickness = max(1, size // 9)
    for _ in range(int(rng.integers(3, 8))):
        kind = rng.integers(0, 4)
        a = rng.uniform(0.1, 0.9, 2)
        if kind == 0:    # horizontal stroke
            b = np.array([rng.uniform(a[0], 0.95), a[1]])
        elif kind == 1:  # vertical stroke
            b = np.array([a[0], rng.uniform(a[1], 0.95)])
        else:            # slanted stroke
            b = np.clip(a + rng.uniform(-0.4, 0.4, 2), 0.05, 0.95)
        p = (x + int(a[0] * size), y + int(a[1] * size))
        q = (x + int(b[0] * size), y + int(b[1] * size))
        cv2.line(image, p, q, colour, thickness, cv2.LINE_AA)


def _text_row(image: UInt8Image, x: int, y: int, size: int, count: int,
              colour: tuple[int, int, int], rng: Rng) -> None:
    for i in range(count):
        _glyph(image, x + i * int(size * 1.1), y, size, colour, rng)


def poster_texture(rng: Rng) -> UInt8Image:
    """A small ad: light paper, a few rows of glyphs, often a phone-number-like string."""
    height, width = int(rng.integers(80, 140)), int(rng.integers(60, 110))
    paper = np.array(rng.choice([[235, 240, 245], [200, 230, 250], [180, 220, 255],
                                 [220, 220, 220], [170, 200, 240]]), dtype=float)
    image = np.clip(paper + rng.normal(0, 6, (height, width, 3)), 0, 255).astype(np.uint8)
    ink = tuple(int(v) for v in rng.choice([[20, 20, 20], [30, 30, 200], [160, 40, 20]]))
    size = int(rng.integers(9, 15))
    y = 4
    while y + size < height - 14:
        count = max(1, (width - 8) // int(size * 1.1))
        _text_row(image, 4, y, size, count, ink, rng)  # type: ignore[arg-type]
        y += int(size * 1.35)
    if rng.random() < 0.8:
        digits = "1" + "".join(str(d) for d in rng.integers(0, 10, 10))
        cv2.putText(image, digits, (3, height - 4), cv2.FONT_HERSHEY_PLAIN,
                    width / 130, (20, 20, 200), 1, cv2.LINE_AA)
    if rng.random() < 0.4:  # a torn or curled corner
        corner = np.array([[width - 1, 0], [width - 1, height // 4], [width - width // 4, 0]])
        cv2.fillPoly(image, [corner], (130, 130, 130))
    return image


def sign_texture(rng: Rng, width_m: float, height_m: float) -> UInt8Image:
    """A lawful shop sign: a saturated board with a few large glyphs and a border."""
    height = 60
    width = max(60, int(height * width_m / height_m))
    board = np.array(rng.choice([[30, 30, 170], [150, 60, 20], [20, 120, 30], [40, 40, 40],
                                 [20, 160, 210]]), dtype=np.uint8)
    image = np.empty((height, width, 3), np.uint8)
    image[:] = board
    letters = tuple(int(v) for v in rng.choice([[255, 255, 255], [40, 220, 250], [230, 230, 0]]))
    size = 40
    count = max(2, min(8, (width - 20) // 46))
    start = (width - count * int(size * 1.1)) // 2
    _text_row(image, start, 10, size, count, letters, rng)  # type: ignore[arg-type]
    cv2.rectangle(image, (1, 1), (width - 2, height - 2), letters, 2)
    return image
