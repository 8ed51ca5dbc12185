"""Draw dataset statistics as one PNG a person can take in at a glance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from streetwatch.datasets.format import SPLITS
from streetwatch.datasets.stats import MEDIUM_AREA, SMALL_AREA, DatasetStats
from streetwatch.models.taxonomy import TAXONOMY

_SPLIT_COLOURS = {"train": "#4c72b0", "val": "#dd8452", "test": "#55a868"}


def _class_colour(name: str, index: int) -> str:
    try:
        return TAXONOMY.by_key(name).color_hex
    except KeyError:
        return f"C{index % 10}"


def plot_stats(stats: DatasetStats, out: Path, title: str = "") -> None:
    """Write a 2x2 figure: boxes per class and split, images per split (empty ones hatched),
    box-size histograms with COCO's bucket limits, and where boxes sit in the frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(14, 10), constrained_layout=True)
    fig.suptitle(title or "dataset statistics", fontsize=15, fontweight="bold")
    _boxes_per_class(axes[0, 0], stats)
    _images_per_split(axes[0, 1], stats)
    _box_sizes(axes[1, 0], stats)
    _box_centres(axes[1, 1], stats)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)


def _boxes_per_class(ax: Any, stats: DatasetStats) -> None:
    names = stats.names
    y = np.arange(len(names))
    left = np.zeros(len(names))
    for split in SPLITS:
        values = np.array([stats.boxes[split][n] for n in names], dtype=float)
        ax.barh(y, values, left=left, color=_SPLIT_COLOURS[split], label=split)
        left += values
    for row, total in enumerate(left):
        ax.text(total, row, f" {int(total)}", va="center", fontsize=10)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("boxes")
    ax.set_title("boxes per class, by split")
    ax.legend(loc="lower right")
    ax.set_xlim(0, max(1.0, left.max() * 1.15))


def _images_per_split(ax: Any, stats: DatasetStats) -> None:
    x = np.arange(len(SPLITS))
    totals = np.array([stats.images[s] for s in SPLITS], dtype=float)
    empty = np.array([stats.empty_images[s] for s in SPLITS], dtype=float)
    ax.bar(x, totals - empty, color=[_SPLIT_COLOURS[s] for s in SPLITS], label="with boxes")
    ax.bar(x, empty, bottom=totals - empty, color="white", edgecolor="grey", hatch="//",
           label="no boxes")
    for col, (total, none) in enumerate(zip(totals, empty, strict=True)):
        ax.text(col, total, f"{int(total)} images\n{int(none)} empty", ha="center", va="bottom")
    ax.set_xticks(x, SPLITS)
    ax.set_ylim(0, max(1.0, totals.max() * 1.25))
    ax.set_title("images per split")
    ax.legend(loc="upper right")


def _box_sizes(ax: Any, stats: DatasetStats) -> None:
    from matplotlib.ticker import ScalarFormatter

    all_sides = [v for n in stats.names for v in stats.areas[n]]
    if all_sides:
        bins = np.geomspace(max(1.0, min(all_sides)), max(all_sides) + 1, 30)
        for index, name in enumerate(stats.names):
            if stats.areas[name]:
                ax.hist(stats.areas[name], bins=bins, histtype="step", linewidth=2,
                        color=_class_colour(name, index), label=name)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        for limit, text in ((np.sqrt(SMALL_AREA), "small | medium"),
                            (np.sqrt(MEDIUM_AREA), "medium | large")):
            ax.axvline(limit, color="black", linestyle="--", linewidth=1)
            ax.text(limit, ax.get_ylim()[1] * 0.95, f" {text}", fontsize=9, va="top")
        ax.legend(fontsize=9)
    ax.set_xlabel("box size: sqrt(area) in pixels (log scale)")
    ax.set_ylabel("boxes")
    ax.set_title("box sizes (COCO buckets at 32 and 96 px)")


def _box_centres(ax: Any, stats: DatasetStats) -> None:
    for index, name in enumerate(stats.names):
        if stats.centres[name]:
            centres = np.array(stats.centres[name])
            ax.scatter(centres[:, 0], centres[:, 1], s=6, alpha=0.5,
                       color=_class_colour(name, index), label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(1, 0)
    ax.set_aspect("equal")
    ax.set_title("where box centres sit in the frame")
    ax.set_xlabel("x (fraction of width)")
    ax.set_ylabel("y (fraction of height)")
