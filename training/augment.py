"""Augmentations made for street footage, applied by albumentations inside ultralytics.

Cameras on poles and in patrol cars see rain, fog, night, hard shadows, motion blur from the
moving car, heavy stream compression and sensor noise. ultralytics takes a list of
albumentations transforms through its ``augmentations`` training argument and applies them
after mosaic and the geometric augmentations; all of these are photometric, so the boxes
stay as they are.
"""

from __future__ import annotations

from typing import Any

from streetwatch.training.config import AugmentConfig


def street_augmentations(config: AugmentConfig) -> list[Any]:
    """The albumentations transforms for a config; those with probability 0 are left out."""
    import albumentations as A

    made: list[tuple[float, Any]] = [
        (config.rain, lambda p: A.RandomRain(
            slant_range=(-10, 10), drop_length=12, drop_width=1, blur_value=3,
            brightness_coefficient=0.8, p=p)),
        (config.fog, lambda p: A.RandomFog(fog_coef_range=(0.1, 0.35), alpha_coef=0.08, p=p)),
        (config.low_light, lambda p: A.OneOf([
            A.RandomBrightnessContrast(brightness_limit=(-0.55, -0.25),
                                       contrast_limit=(-0.3, 0.0), p=1.0),
            A.RandomGamma(gamma_limit=(160, 260), p=1.0),
        ], p=p)),
        (config.shadow, lambda p: A.RandomShadow(
            shadow_roi=(0, 0.3, 1, 1), num_shadows_limit=(1, 2), shadow_dimension=5, p=p)),
        (config.motion_blur, lambda p: A.MotionBlur(blur_limit=(3, 9), p=p)),
        (config.compression, lambda p: A.ImageCompression(quality_range=(25, 70), p=p)),
        (config.noise, lambda p: A.OneOf([
            A.GaussNoise(std_range=(0.02, 0.08), p=1.0),
            A.ISONoise(color_shift=(0.01, 0.04), intensity=(0.1, 0.4), p=1.0),
        ], p=p)),
    ]
    return [make(probability) for probability, make in made if probability > 0]
