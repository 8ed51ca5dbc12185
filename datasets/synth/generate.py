"""One synthetic image: scene, render, then the look (light, weather, camera effects).

The look is drawn once per image, or once per video so that light and weather hold still
while the camera moves; only sensor noise changes from frame to frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

from streetwatch.datasets.labels import Labels
from streetwatch.datasets.synth.camera import PinholeCamera
from streetwatch.datasets.synth.render import Label, Rendered, SceneObject, UInt8Image, render
from streetwatch.datasets.synth.scene import random_scene
from streetwatch.models.taxonomy import TAXONOMY

CONDITIONS = ("day", "dusk", "night")
# Objects whose visible box is narrower or shorter than this share of the image width are
# drawn but not labelled: 16 px at 1280 wide is 8 px once resized to 640 for training, about
# the least a detector at stride 8 can be asked to find. (At 1/120 the first learnability run
# had ads and locks of 3-4 px at 416 px, and recalled none of them.)
MIN_LABEL_WIDTH_SHARE = 1 / 80
_NOISE_PAD = 64


@dataclass(frozen=True)
class Look:
    """How a frame looks beyond its geometry.

    Attributes:
        condition: ``day``, ``dusk`` or ``night``.
        sky_shift: Brightness offset of the sky gradient.
        glows: Street-light glows at night: (x, y, radius) as fractions of the width.
        fog_m: Fog distance scale in metres (None for clear air).
        rain: Rain streaks and a darker, wetter look.
        blur_px: Horizontal motion-blur length in pixels (0 for none).
        vignette: Vignetting strength (0 for none).
        noise_sigma: Sensor noise standard deviation in grey levels.
    """

    condition: str
    sky_shift: float
    glows: tuple[tuple[float, float, float], ...]
    fog_m: float | None
    rain: bool
    blur_px: int
    vignette: float
    noise_sigma: float


def random_look(rng: np.random.Generator) -> Look:
    """A random look: mostly day, some dusk and night; fog, rain and blur now and then."""
    condition = str(rng.choice(CONDITIONS, p=[0.6, 0.2, 0.2]))
    glows = tuple((float(rng.uniform(0, 1)), float(rng.uniform(0, 0.3)),
                   float(rng.uniform(0.1, 0.3))) for _ in range(int(rng.integers(2, 6))))
    return Look(
        condition=condition,
        sky_shift=float(rng.normal(0, 4)),
        glows=glows if condition == "night" else (),
        fog_m=float(rng.uniform(25, 60)) if rng.random() < 0.15 else None,
        rain=bool(rng.random() < 0.12),
        blur_px=int(rng.integers(3, 9)) if rng.random() < 0.3 else 0,
        vignette=float(rng.uniform(0.2, 0.6)) if rng.random() < 0.5 else 0.0,
        noise_sigma=float(rng.uniform(1, 6)),
    )


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


def sky(size: tuple[int, int], look: Look) -> UInt8Image:
    """The sky gradient for a look."""
    width, height = size
    top, bottom = {"day": ((235, 190, 140), (250, 235, 215)),
                   "dusk": ((140, 90, 80), (120, 170, 250)),
                   "night": ((40, 20, 15), (70, 50, 40))}[look.condition]
    t = np.linspace(0, 1, height)[:, None, None]
    gradient = (np.array(top) * (1 - t) + np.array(bottom) * t) + look.sky_shift
    column = np.clip(gradient, 0, 255).astype(np.uint8)  # (height, 1, 3)
    # Widening one column with a nearest-neighbour resize is several times faster than
    # materialising a numpy broadcast.
    return np.asarray(cv2.resize(column, (width, height), interpolation=cv2.INTER_NEAREST),
                      np.uint8)


def _light(image: UInt8Image, depth: npt.NDArray[np.float32] | None, look: Look,
           rng: np.random.Generator) -> UInt8Image:
    out = image
    height, width = image.shape[:2]
    if look.condition == "dusk":
        # Per-channel gains as a colour transform: saturating, and no float copy.
        out = np.asarray(cv2.transform(out, np.diag([0.75, 0.8, 0.95])), np.uint8)
    elif look.condition == "night":
        # Darkness with street-light glow, as a gain map built at 1/8 scale: the glow is
        # wide and smooth, and OpenCV's mixed-type multiply avoids float copies of the frame.
        small = np.zeros((height // 8 + 1, width // 8 + 1), np.float32)
        for x, y, radius in look.glows:
            cv2.circle(small, (int(x * width / 8), int(y * height / 8)),
                       int(radius * width / 8), 1.0, -1)
        small = np.asarray(cv2.GaussianBlur(small, (0, 0), width * 0.01), np.float32)
        tint = np.array([0.7, 0.9, 1.2], np.float32)
        gain_small = 0.3 * (1 + 2.2 * small[..., None] * tint)
        gain = cv2.resize(gain_small, (width, height), interpolation=cv2.INTER_LINEAR)
        out = np.asarray(cv2.multiply(out, gain, dtype=cv2.CV_8U), np.uint8)
    if look.fog_m is None and not look.rain:
        return out
    # Float32 frame arithmetic goes through OpenCV on 3-channel planes (see ``_planes``),
    # in place: the same operations as numpy's, rounded alike, several times faster.
    result = out.astype(np.float32)
    if look.fog_m is not None:  # blend towards grey with distance
        if depth is None:
            raise ValueError("a look with fog needs the depth buffer")
        finite = np.where(np.isfinite(depth), depth, 300.0)
        amount = 1 - np.exp(-finite / look.fog_m)
        cv2.multiply(result, _planes(1 - amount), dst=result)
        cv2.add(result, _planes(190 * amount), dst=result)
    if look.rain:  # streaks, and a darker, wetter look
        streaks = np.zeros((height, width), np.float32)
        count = int(height * width / 1500)
        streaks[rng.integers(0, height, count), rng.integers(0, width, count)] = 1.0
        kernel = np.zeros((15, 15), np.float32)
        cv2.line(kernel, (5, 0), (9, 14), 1.0, 1)
        streaks = np.asarray(cv2.filter2D(streaks, -1, kernel / kernel.sum()), np.float32) * 6
        cv2.add(result, _planes(90 * np.clip(streaks, 0, 1)), dst=result)
        result *= 0.85
    lit: UInt8Image = np.clip(result, 0, 255, out=result).astype(np.uint8)
    return lit


def _planes(channel: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """A one-channel float32 map repeated into three channels. Multiplying a frame by the
    map broadcast over its channels is slow in numpy (an inner loop of 3)."""
    return np.asarray(cv2.merge([channel, channel, channel]), np.float32)


def _camera_effects(image: UInt8Image, look: Look, rng: np.random.Generator) -> UInt8Image:
    out = image
    if look.blur_px:
        kernel = np.zeros((look.blur_px, look.blur_px), np.float32)
        kernel[look.blur_px // 2, :] = 1.0 / look.blur_px
        out = np.asarray(cv2.filter2D(out, -1, kernel), np.uint8)
    height, width = out.shape[:2]
    result = out.astype(np.float32)
    # Frame-sized float operations write into ``result``: a fresh 11 MB array per step cost
    # more in page faults than the arithmetic.
    if look.vignette:  # gain 1 - k * r^2
        gain = cv2.scaleAdd(_radius2(width, height), -look.vignette, _ones(width, height))
        cv2.multiply(result, gain, dst=result)
    # Sensor noise: a random window of a fixed noise field, scaled (drawing 2.7 M fresh
    # normals per frame would cost more than the rendering). OpenCV reads the window in
    # place, rows a stride apart.
    bank = _noise_bank(width, height)
    dy, dx = int(rng.integers(0, _NOISE_PAD)), int(rng.integers(0, _NOISE_PAD))
    cv2.scaleAdd(bank[dy:dy + height, dx:dx + width], look.noise_sigma, result, dst=result)
    # Saturating conversion; a value pushed below 0 by noise comes back as its small
    # absolute value, which is invisible.
    noisy: UInt8Image = np.asarray(cv2.convertScaleAbs(result), np.uint8)
    return noisy


@lru_cache(maxsize=4)
def _radius2(width: int, height: int) -> npt.NDArray[np.float32]:
    """Squared distance from the image centre (in image widths and heights), 3 channels."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((xx - width / 2) / width) ** 2 + ((yy - height / 2) / height) ** 2
    return np.ascontiguousarray(np.repeat(r2[..., None], 3, axis=2))


@lru_cache(maxsize=4)
def _ones(width: int, height: int) -> npt.NDArray[np.float32]:
    """A frame of float32 ones, 3 channels (read-only: shared by every frame)."""
    ones = np.ones((height, width, 3), np.float32)
    ones.flags.writeable = False
    return ones


@lru_cache(maxsize=4)
def _noise_bank(width: int, height: int) -> npt.NDArray[np.float32]:
    """Unit Gaussian noise a little larger than the frame, the same in every process."""
    rng = np.random.default_rng(20261125)
    return rng.standard_normal((height + _NOISE_PAD, width + _NOISE_PAD, 3), np.float32)


def render_frame(camera: PinholeCamera, objects: list[SceneObject], look: Look,
                 rng: np.random.Generator) -> tuple[UInt8Image, Rendered]:
    """Render objects through a camera and apply the look; ``rng`` drives per-frame noise.

    Returns:
        The finished BGR image and the raw rendering (labels, object ids; depth only when
        the look has fog, the one effect that needs it).
    """
    size = (camera.width, camera.height)
    rendered = render(camera, objects, sky(size, look),
                      min_box_px=max(4.0, camera.width * MIN_LABEL_WIDTH_SHARE),
                      with_depth=look.fog_m is not None)
    image = _light(rendered.image, rendered.depth, look, rng)
    return _camera_effects(image, look, rng), rendered


def generate_image(seed: int, camera_kind: str, size: tuple[int, int]) -> SynthImage:
    """Generate one labelled image; the same arguments always give the same image."""
    rng = np.random.default_rng(seed)
    look = random_look(rng)
    scene = random_scene(rng, camera_kind, size)
    image, rendered = render_frame(scene.camera, scene.objects, look, rng)
    return SynthImage(image, rendered.labels, camera_kind, look.condition)
