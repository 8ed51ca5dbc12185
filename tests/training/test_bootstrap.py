"""AP50 intervals by resampling images: the weighted AP is ultralytics' AP on the stacked
copies, and the intervals behave as intervals."""

from __future__ import annotations

import numpy as np
import pytest

from streetwatch.training.bootstrap import ImageScores, Scored, draws, intervals

KEYS = ["a", "b", "c"]


def random_images(seed: int, count: int = 40) -> list[ImageScores]:
    """Images with 0-4 true boxes of classes a/b (c never occurs) and 0-9 detections of
    any class, about half of them correct."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        found = int(rng.integers(0, 10))
        images.append(ImageScores(
            confidence=rng.random(found), class_id=rng.integers(0, 3, found),
            correct=rng.random(found) < 0.5, target_class=rng.integers(0, 2, rng.integers(0, 5))))
    return images


def ultralytics_ap50(images: list[ImageScores]) -> np.ndarray:
    from ultralytics.utils.metrics import ap_per_class

    correct = np.concatenate([i.correct for i in images])
    tp = np.repeat(correct[:, None], 10, axis=1)
    result = ap_per_class(tp, np.concatenate([i.confidence for i in images]),
                          np.concatenate([i.class_id for i in images]),
                          np.concatenate([i.target_class for i in images]))
    return np.asarray(result[5][:, 0])


def test_weights_are_stacked_copies_of_images() -> None:
    images = random_images(0)
    scored = Scored(images, len(KEYS))
    once = scored.ap50(np.ones((1, len(images))))[0]
    assert np.allclose(once[:2], ultralytics_ap50(images)) and np.isnan(once[2])

    weights = draws(len(images), count=3, seed=5)
    for row, ap in zip(weights, scored.ap50(weights), strict=True):
        stacked = [image for image, n in zip(images, row, strict=True) for _ in range(int(n))]
        assert np.allclose(ap[:2], ultralytics_ap50(stacked))


def test_a_class_never_detected_scores_zero_as_in_ultralytics() -> None:
    images = [ImageScores(np.array([0.9]), np.array([0]), np.array([True]), np.array([0, 1]))]
    assert Scored(images, 2).ap50(np.ones((1, 1)))[0].tolist() == [
        pytest.approx(ultralytics_ap50(images)[0]), 0.0]


def test_intervals_hold_the_estimate_and_narrow_with_more_images() -> None:
    small, large = random_images(1, 30), random_images(1, 600)
    bounds = {n: intervals(Scored(images, 3), KEYS)
              for n, images in (("small", small), ("large", large))}
    assert set(bounds["small"]) == {"a", "b", "all"}  # no true box of c: no interval
    point = Scored(small, 3).ap50(np.ones((1, 30)))[0]
    assert bounds["small"]["a"][0] <= point[0] <= bounds["small"]["a"][1]

    def width(b: list[float]) -> float:
        return b[1] - b[0]

    assert width(bounds["large"]["a"]) < width(bounds["small"]["a"]) / 2
    assert intervals(Scored(small, 3), KEYS) == bounds["small"]  # seeded: repeatable


def test_paired_differences() -> None:
    images = random_images(2, 200)
    scored = Scored(images, 3)
    assert intervals(scored, KEYS, baseline=scored) == {k: [0.0, 0.0] for k in ("a", "b", "all")}
    # a model that finds every true box first, with no false alarm, beats this one
    perfect = Scored([ImageScores(np.ones(len(i.target_class)), i.target_class,
                                  np.ones(len(i.target_class), bool), i.target_class)
                      for i in images], 3)
    better = intervals(perfect, KEYS, baseline=scored)
    assert all(low > 0 for low, _ in better.values())
    with pytest.raises(ValueError, match="baseline was scored on 30 images, the model on 200"):
        intervals(scored, KEYS, baseline=Scored(images[:30], 3))


def test_a_class_on_one_image_leaves_draws_without_it() -> None:
    """Most draws of 20 images miss the only image with a true box (as the facades test
    split's 12 ads among 114 photographs): the interval and the mean's come from the draws
    that hold it, without NaN or warnings."""
    import warnings

    empty = ImageScores(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, bool),
                        np.zeros(0, np.int64))
    found = ImageScores(np.array([0.9]), np.array([0]), np.array([True]), np.array([0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bounds = intervals(Scored([empty] * 19 + [found], 2), KEYS[:2])
    perfect = 0.995  # ultralytics' 101-point AP of a perfect detector
    assert bounds == {"a": [perfect, perfect], "all": [perfect, perfect]}
