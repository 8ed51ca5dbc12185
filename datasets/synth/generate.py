"""One synthetic training image: scene, render, lighting and camera effects, YOLO labels."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

from streetwatch.datasets.labels import Labels
from streetwatch.datasets.synth.render import Label, UInt8Image, render
from streetwatch.datasets.synth.scene import random_scene
from streetwatch.models.taxonomy import TAXONOMY

CONDITIONS = ("day", "dusk", "night")


@dataclass(frozen=True)
class SynthImage:
    """A generated image with its labels and how it was made."""

    image: UInt8Image
    labels: list[Label]
    camera_kind: str
    condition: str

    def yolo_labels(self) -> Labels:
        """Labels in YOLO form for the image's size."""
        height, width = self.image.shape[:2]
        return Labels.from_xyxy_pixels([TAXONOMY.by_key(label.class_key).id
                                        for label in self.labels],
                                       [label.xyxy for label in self.labels], width, height)


def _sky(rng: np.random.Generator, size: tuple[int, int], condition: str) -> UInt8Image:
    width, height = size
    top, bottom = {"day": ((235, 190, 140), (250, 235, 215)),
                   "dusk": ((140, 90, 80), (120, 170, 250)),
                   "night": ((40, 20, 15), (70, 50, 40))}[condition]
    t = np.linspace(0, 1, height)[:, None, None]
    sky = (np.array(top) * (1 - t) + np.array(bottom) * t) + rng.normal(0, 4)
    return np.broadcast_to(np.clip(sky, 0, 255).astype(np.uint8), (height, width, 3))


def _light(image: UInt8Image, depth: np.ndarray, condition: str,
           rng: np.random.Generator) -> UInt8Image:
    fog, rain = rng.random() < 0.15, rng.random() < 0.12
    if condition == "day" and not fog and not rain:
        return image
    out = image.astype(np.float32)
    if condition == "dusk":
        out *= np.array([0.75, 0.8, 0.95], np.float32)
    elif condition == "night":
        out *= 0.3
        height, width = image.shape[:2]
        # Street-light glow, blurred at 1/8 scale: the blur is wide and need not be sharp.
        small = np.zeros((height // 8 + 1, width // 8 + 1), np.float32)
        for _ in range(int(rng.integers(2, 6))):
            centre = (int(rng.uniform(0, width / 8)), int(rng.uniform(0, height / 16)))
            cv2.circle(small, centre, int(rng.uniform(0.1, 0.3) * width / 8), 1.0, -1)
        small = np.asarray(cv2.GaussianBlur(small, (0, 0), width * 0.01), np.float32)
        glow = np.asarray(cv2.resize(small, (width, height)), np.float32)
        out *= 1 + 2.2 * glow[..., None] * np.array([0.7, 0.9, 1.2], np.float32)
    if fog:  # blend towards grey with distance
        finite = np.where(np.isfinite(depth), depth, 300.0)
        amount = 1 - np.exp(-finite / rng.uniform(25, 60))
        out = out * (1 - amount[..., None]) + 190 * amount[..., None]
    if rain:  # streaks, and a darker, wetter look
        streaks = np.zeros(image.shape[:2], np.float32)
        count = int(image.shape[0] * image.shape[1] / 1500)
        ys = rng.integers(0, image.shape[0], count)
        xs = rng.integers(0, image.shape[1], count)
        streaks[ys, xs] = 1.0
        kernel = np.zeros((15, 15), np.float32)
        cv2.line(kernel, (5, 0), (9, 14), 1.0, 1)
        streaks = np.asarray(cv2.filter2D(streaks, -1, kernel / kernel.sum()), np.float32) * 6
        out += 90 * np.clip(streaks, 0, 1)[..., None]
        out *= 0.85
    return np.clip(out, 0, 255).astype(np.uint8)


def _camera_effects(image: UInt8Image, rng: np.random.Generator) -> UInt8Image:
    out = image
    if rng.random() < 0.3:  # motion blur
        length = int(rng.integers(3, 9))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        out = np.asarray(cv2.filter2D(out, -1, kernel), np.uint8)
    height, width = out.shape[:2]
    result = out.astype(np.float32)
    if rng.random() < 0.5:  # vignetting: gain 1 - k * r^2
        gain = cv2.scaleAdd(_radius2(width, height), -float(rng.uniform(0.2, 0.6)),
                            np.ones((height, width, 3), np.float32))
        result = np.asarray(cv2.multiply(result, gain), np.float32)
    # Sensor noise: a random window of a fixed noise field, scaled (drawing 2.7 M fresh
    # normals per frame would cost more than the rendering).
    bank = _noise_bank(width, height)
    dy, dx = int(rng.integers(0, _NOISE_PAD)), int(rng.integers(0, _NOISE_PAD))
    result = np.asarray(cv2.scaleAdd(np.ascontiguousarray(bank[dy:dy + height, dx:dx + width]),
                                     float(rng.uniform(1, 6)), result), np.float32)
    # Saturating conversion; a value pushed below 0 by noise comes back as its small
    # absolute value, which is invisible.
    noisy: UInt8Image = np.asarray(cv2.convertScaleAbs(result), np.uint8)
    return noisy


_NOISE_PAD = 64


@lru_cache(maxsize=4)
def _noise_bank(width: int, height: int) -> npt.NDArray[np.float32]:
    """Unit Gaussian noise a little larger than the frame, the same in every process."""
    rng = np.random.default_rng(20261125)
    return rng.standard_normal((height + _NOISE_PAD, width + _NOISE_PAD, 3), np.float32)


@lru_cache(maxsize=4)
def _radius2(width: int, height: int) -> npt.NDArray[np.float32]:
    """Squared distance from the image centre (in image widths and heights), 3 channels."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((xx - width / 2) / width) ** 2 + ((yy - height / 2) / height) ** 2
    return np.ascontiguousarray(np.repeat(r2[..., None], 3, axis=2))


def generate_image(seed: int, camera_kind: str, size: tuple[int, int]) -> SynthImage:
    """Generate one labelled image; the same arguments always give the same image."""
    rng = np.random.default_rng(seed)
    condition = str(rng.choice(CONDITIONS, p=[0.6, 0.2, 0.2]))
    scene = random_scene(rng, camera_kind, size)
    rendered = render(scene.camera, scene.objects, _sky(rng, size, condition))
    image = _light(rendered.image, rendered.depth, condition, rng)
    image = _camera_effects(image, rng)
    return SynthImage(image, rendered.labels, camera_kind, condition)
