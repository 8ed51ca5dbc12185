"""How sure an AP50 is: percentile-bootstrap intervals by resampling images.

A test set is a sample of scenes, so its AP50 is an estimate: the same model scores
street vending 0.812 to 0.842 on three generated sets of other seeds. Resampling the
evaluated images with replacement and recomputing AP50 each time gives an interval for
each class; resampling the same images for two models gives one for their difference,
which is what a promotion or a "did this change help" question needs.

A draw weighs each image by how often it was drawn, which is the same as stacking its
copies: AP50 is computed the way ultralytics' ``ap_per_class`` does (detections by
descending confidence, COCO's 101-point interpolation), from weighted cumulative counts.
With every weight 1 it gives ultralytics' AP50 (a test checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

DRAWS = 1000
LEVEL = 0.95
_RECALL_POINTS = np.linspace(0, 1, 101)  # COCO's, as ultralytics' compute_ap
_CHUNK = 100  # draws computed at once (memory: chunk x detections of a class)


@dataclass(frozen=True)
class ImageScores:
    """One image's detections (confidence, class, correct at IoU 0.5) and its true classes."""

    confidence: npt.NDArray[np.float64]
    class_id: npt.NDArray[np.int64]
    correct: npt.NDArray[np.bool_]
    target_class: npt.NDArray[np.int64]


class Scored:
    """A model's detections on a list of images, ready to be scored under any weighting."""

    def __init__(self, images: list[ImageScores], classes: int) -> None:
        self.images, self.classes = len(images), classes
        sizes = [len(i.confidence) for i in images]
        image_of = np.repeat(np.arange(len(images)), sizes)
        confidence = np.concatenate([i.confidence for i in images]) if images else np.zeros(0)
        class_id = (np.concatenate([i.class_id for i in images]) if images
                    else np.zeros(0, np.int64))
        correct = np.concatenate([i.correct for i in images]) if images else np.zeros(0, bool)
        order = np.argsort(-confidence, kind="stable")
        self._by_class = [(image_of[order][class_id[order] == c],
                           correct[order][class_id[order] == c]) for c in range(classes)]
        self.targets = np.zeros((len(images), classes), np.float64)
        for n, image in enumerate(images):
            np.add.at(self.targets[n], image.target_class, 1)

    def ap50(self, weights: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """AP50 per draw and class, ``(draws, classes)``, for image weights
        ``(draws, images)``; NaN where a draw holds no true box of the class."""
        result = np.full((len(weights), self.classes), np.nan)
        truths = weights @ self.targets  # (draws, classes)
        for c, (image_of, correct) in enumerate(self._by_class):
            for start in range(0, len(weights), _CHUNK):
                rows = slice(start, start + _CHUNK)
                result[rows, c] = _ap(weights[rows][:, image_of], correct, truths[rows, c])
        return result


def _ap(w: npt.NDArray[np.float64], correct: npt.NDArray[np.bool_],
        truths: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """AP50 of one class for each row of detection weights ``w`` (draws, detections)."""
    out = np.full(len(w), np.nan)
    tpc = np.cumsum(w * correct, axis=1)
    fpc = np.cumsum(w * ~correct, axis=1)
    for row in np.flatnonzero(truths > 0):
        recall = tpc[row] / truths[row]
        precision = tpc[row] / np.maximum(tpc[row] + fpc[row], 1e-16)
        kept = w[row] > 0  # a detection drawn zero times is not in this sample
        recall, precision = recall[kept], precision[kept]
        if not len(recall):  # no detection of the class: ultralytics' AP is 0
            out[row] = 0.0
            continue
        mrec = np.concatenate(([0.0], recall, [recall[-1]], [1.0]))
        mpre = np.concatenate(([1.0], precision, [0.0], [0.0]))
        mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
        out[row] = np.trapezoid(np.interp(_RECALL_POINTS, mrec, mpre), _RECALL_POINTS)
    return out


def draws(images: int, *, count: int = DRAWS, seed: int = 0) -> npt.NDArray[np.float64]:
    """``count`` resamplings of ``images`` images, as how often each was drawn."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, images, size=(count, images))
    weights = np.zeros((count, images))
    np.add.at(weights, (np.arange(count)[:, None], picks), 1)
    return weights


def intervals(scored: Scored, keys: list[str], *, baseline: Scored | None = None,
              count: int = DRAWS, seed: int = 0) -> dict[str, Any]:
    """The ``LEVEL`` interval of AP50 per class and for their mean (``all``); with
    ``baseline`` (scored on the same images), of the difference model - baseline, from
    the same draws. Classes without a true box in the images are left out."""
    if baseline is not None and baseline.images != scored.images:
        raise ValueError(f"the baseline was scored on {baseline.images} images, "
                         f"the model on {scored.images}")
    weights = draws(scored.images, count=count, seed=seed)
    values = scored.ap50(weights)
    if baseline is not None:
        values = values - baseline.ap50(weights)
    present = scored.targets.sum(0) > 0
    tail = (1 - LEVEL) / 2 * 100
    result: dict[str, Any] = {}
    for c in np.flatnonzero(present):
        lo, hi = np.nanpercentile(values[:, c], [tail, 100 - tail])
        result[keys[c]] = [round(float(lo), 4), round(float(hi), 4)]
    if present.any():  # the mean over the classes a draw holds (a rare one may miss it)
        per_class = values[:, present]
        held = (~np.isnan(per_class)).sum(axis=1)
        mean = np.where(held > 0, np.nansum(per_class, axis=1) / np.maximum(held, 1), np.nan)
        lo, hi = np.nanpercentile(mean, [tail, 100 - tail])
        result["all"] = [round(float(lo), 4), round(float(hi), 4)]
    return result
