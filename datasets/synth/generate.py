"""One synthetic training image: scene, render, lighting and camera effects, YOLO labels."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

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
    return np.broadcast_to(np.clip(sky, 0, 255), (height, width, 3)).astype(np.uint8)


def _light(image: UInt8Image, depth: np.ndarray, condition: str,
           rng: np.random.Generator) -> UInt8Image:
    out = image.astype(np.float32)
    if condition == "dusk":
        out *= np.array([0.75, 0.8, 0.95], np.float32)
    elif condition == "night":
        out *= 0.3
        height, width = image.shape[:2]
        glow = np.zeros((height, width), np.float32)
        for _ in range(int(rng.integers(2, 6))):  # street lights
            centre = (int(rng.uniform(0, width)), int(rng.uniform(0, height * 0.5)))
            cv2.circle(glow, centre, int(rng.uniform(0.1, 0.3) * width), 1.0, -1)
        glow = np.asarray(cv2.GaussianBlur(glow, (0, 0), width * 0.08), np.float32)
        out *= 1 + 2.2 * glow[..., None] * np.array([0.7, 0.9, 1.2], np.float32)
    if rng.random() < 0.15:  # fog: blend towards grey with distance
        finite = np.where(np.isfinite(depth), depth, 300.0)
        amount = 1 - np.exp(-finite / rng.uniform(25, 60))
        out = out * (1 - amount[..., None]) + 190 * amount[..., None]
    if rng.random() < 0.12:  # rain streaks
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
    if rng.random() < 0.5:  # vignetting
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        r = ((xx - width / 2) / width) ** 2 + ((yy - height / 2) / height) ** 2
        out = np.clip(out * (1 - rng.uniform(0.2, 0.6) * r)[..., None], 0, 255).astype(np.uint8)
    noise = rng.normal(0, rng.uniform(1, 6), out.shape).astype(np.float32)
    noisy: UInt8Image = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return noisy


def generate_image(seed: int, camera_kind: str, size: tuple[int, int]) -> SynthImage:
    """Generate one labelled image; the same arguments always give the same image."""
    rng = np.random.default_rng(seed)
    condition = str(rng.choice(CONDITIONS, p=[0.6, 0.2, 0.2]))
    scene = random_scene(rng, camera_kind, size)
    rendered = render(scene.camera, scene.objects, _sky(rng, size, condition))
    image = _light(rendered.image, rendered.depth, condition, rng)
    image = _camera_effects(image, rng)
    return SynthImage(image, rendered.labels, camera_kind, condition)
