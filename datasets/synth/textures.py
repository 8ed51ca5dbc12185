"""Procedural textures: small-ad posters and lawful shop signs.

OpenCV's fonts have no CJK glyphs, so text is drawn as CJK-like characters: random
horizontal, vertical and slanted strokes inside square cells, which at street distances read
like Chinese print. Phone-number-like strings use OpenCV's digits.

A colour is laid over an (H, W, 3) image as a row tiled along W (or channel by channel),
never by numpy broadcasting a 3-vector over the last axis: that runs an inner loop of 3 and
is several times slower, for the same values.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

from streetwatch.datasets.synth.render import UInt8Image

Rng = np.random.Generator


_GLYPH_PX = 32
_GLYPH_COUNT = 512


@lru_cache(maxsize=1)
def _glyph_bank() -> npt.NDArray[np.float32]:
    """(512, 32, 32) alpha masks of CJK-like characters: 3-7 horizontal, vertical and
    slanted strokes each. Made once per process from a fixed seed; drawing strokes afresh for
    every character would cost more than rendering the scene."""
    rng = np.random.default_rng(7)
    bank = np.zeros((_GLYPH_COUNT, _GLYPH_PX, _GLYPH_PX), np.uint8)
    for glyph in bank:
        for _ in range(int(rng.integers(3, 8))):
            kind = rng.integers(0, 4)
            a = rng.uniform(0.1, 0.9, 2)
            if kind == 0:
                b = np.array([rng.uniform(a[0], 0.95), a[1]])
            elif kind == 1:
                b = np.array([a[0], rng.uniform(a[1], 0.95)])
            else:
                b = np.clip(a + rng.uniform(-0.4, 0.4, 2), 0.05, 0.95)
            p = (int(a[0] * _GLYPH_PX), int(a[1] * _GLYPH_PX))
            q = (int(b[0] * _GLYPH_PX), int(b[1] * _GLYPH_PX))
            cv2.line(glyph, p, q, 255, 3, cv2.LINE_AA)
    masks: npt.NDArray[np.float32] = bank.astype(np.float32) / np.float32(255)
    return masks


@lru_cache(maxsize=4096)
def _glyph_alpha(index: int, size: int) -> npt.NDArray[np.float32]:
    """Glyph ``index`` of the bank as a (size, size, 3) alpha mask (texts use a few sizes)."""
    alpha = cv2.resize(_glyph_bank()[index], (size, size), interpolation=cv2.INTER_AREA)
    alpha3: npt.NDArray[np.float32] = np.repeat(alpha[..., None], 3, axis=2)
    alpha3.flags.writeable = False  # shared by every caller
    return alpha3


def _text_row(image: UInt8Image, x: int, y: int, size: int, count: int,
              colour: tuple[int, int, int], rng: Rng) -> None:
    """Draw ``count`` CJK-like characters in square cells from (x, y), ``size * 1.1`` apart;
    a cell not wholly inside the image is left out (and draws no random glyph).

    The cells never overlap, so the row is blended in one pass over an alpha strip; each
    pixel gets ``cell * (1 - alpha) + colour * alpha`` in float32, truncated, exactly as
    when blending character by character."""
    height, width = image.shape[:2]
    if y < 0 or y + size > height or size < 2:
        return
    strip = np.zeros((size, width, 3), np.float32)
    step = int(size * 1.1)
    first, end = width, 0
    for i in range(count):
        left = x + i * step
        if left < 0 or left + size > width:
            continue
        strip[:, left:left + size] = _glyph_alpha(int(rng.integers(_GLYPH_COUNT)), size)
        first, end = min(first, left), left + size
    if end <= first:
        return
    alpha = strip[:, first:end]
    cell = image[y:y + size, first:end].astype(np.float32)
    ink = np.tile(np.array(colour, np.float32), (end - first, 1))
    image[y:y + size, first:end] = (cell * (1 - alpha) + ink * alpha).astype(np.uint8)


def poster_texture(rng: Rng) -> UInt8Image:
    """A small ad: light paper, a few rows of glyphs, often a phone-number-like string."""
    # Posters rarely cover more than ~60 px on screen; a larger texture only costs time.
    height, width = int(rng.integers(56, 100)), int(rng.integers(44, 80))
    paper = np.array(rng.choice([[235, 240, 245], [200, 230, 250], [180, 220, 255],
                                 [220, 220, 220], [170, 200, 240]]), dtype=float)
    noise = rng.normal(0, 6, (height, width, 3)).reshape(height, width * 3)
    image = np.clip(np.tile(paper, width) + noise, 0, 255).astype(np.uint8).reshape(
        height, width, 3)
    ink = tuple(int(v) for v in rng.choice([[20, 20, 20], [30, 30, 200], [160, 40, 20]]))
    size = int(rng.integers(7, 11))
    y = 4
    while y + size < height - 12:
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
    height = 44
    width = max(44, int(height * width_m / height_m))
    board = np.array(rng.choice([[30, 30, 170], [150, 60, 20], [20, 120, 30], [40, 40, 40],
                                 [20, 160, 210]]), dtype=np.uint8)
    image = np.repeat(np.tile(board, (1, width)), height, axis=0).reshape(height, width, 3)
    letters = tuple(int(v) for v in rng.choice([[255, 255, 255], [40, 220, 250], [230, 230, 0]]))
    size = 30
    count = max(2, min(8, (width - 14) // 34))
    start = (width - count * int(size * 1.1)) // 2
    _text_row(image, start, 7, size, count, letters, rng)  # type: ignore[arg-type]
    cv2.rectangle(image, (1, 1), (width - 2, height - 2), letters, 2)
    return image


FACADE_PX_PER_M = 8


def facade_texture(rng: Rng, width_m: float, height_m: float) -> UInt8Image:
    """A building front: wall with texture, a grid of windows, a shop front at street level."""
    width = max(8, int(width_m * FACADE_PX_PER_M))
    height = max(8, int(height_m * FACADE_PX_PER_M))
    wall = np.clip(np.array([120, 140, 160]) + rng.normal(0, 28, 3), 0, 255)
    # Stucco: coarse noise, upsampled (fine noise per pixel cost more than the rest).
    coarse = rng.normal(0, 6, (height // 4 + 1, width // 4 + 1)).astype(np.float32)
    stucco = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
    # Channel by channel (see the module notes), then merged.
    planes = np.clip(wall[:, None, None] + stucco, 0, 255).astype(np.uint8)
    image = np.asarray(cv2.merge(list(planes)), np.uint8)
    px = FACADE_PX_PER_M
    shop_top = height - int(2.8 * px)
    glass = tuple(int(v) for v in np.clip(np.array([80, 70, 60]) + rng.normal(0, 15, 3), 0, 255))
    cv2.rectangle(image, (int(0.5 * px), shop_top), (width - int(0.5 * px), height - 1), glass, -1)
    door_x = int(rng.uniform(0.2, 0.8) * width)
    cv2.rectangle(image, (door_x, shop_top + int(0.5 * px)), (door_x + int(1.2 * px), height - 1),
                  (40, 40, 40), -1)
    # Windows on a regular grid, each with its own tint and a frame.
    win_w, win_h, pitch_x, pitch_y = int(1.2 * px), int(1.5 * px), int(2.5 * px), int(3.0 * px)
    columns = range(px, width - int(1.5 * px), pitch_x)
    rows = range(shop_top - pitch_y, int(0.5 * px), -pitch_y)
    pane = np.array([110, 90, 70]) + rng.normal(0, 12, 3)
    tints = np.clip(pane + rng.normal(0, 10, (len(rows), len(columns), 3)), 0, 255).tolist()
    frame = tuple(int(v) for v in np.clip(wall * 0.7, 0, 255))
    for r, top in enumerate(rows):
        for c, left in enumerate(columns):
            corner, opposite = (left, top), (left + win_w, top + win_h)
            cv2.rectangle(image, corner, opposite, tints[r][c], -1)
            cv2.rectangle(image, corner, opposite, frame, 1)
    return image
