"""``streetwatch data``: import, validate, split, merge and describe datasets."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

import click
from tqdm import tqdm

from streetwatch.datasets.format import SPLITS, Dataset, DatasetError
from streetwatch.datasets.importers import SCANNERS, ClassMap, ImporterError, import_scan
from streetwatch.datasets.merge import merge_datasets, source_tag
from streetwatch.datasets.split import apply_split, plan_split
from streetwatch.datasets.stats import compute_stats, format_stats
from streetwatch.datasets.validate import fix_dataset, inspect_dataset

T = TypeVar("T")


class _Progress:
    """A tqdm progress bar around an iterable; silent when stderr is not a terminal."""

    def __init__(self, description: str) -> None:
        self.description = description

    def __call__(self, items: Iterable[T]) -> Iterable[T]:
        total = len(items) if isinstance(items, list) else None
        return tqdm(items, desc=self.description, total=total, unit="img", disable=None,
                    leave=False)


@click.group("data")
def data() -> None:
    """Import, check, split and describe datasets."""


@data.command("import")
@click.argument("format_name", metavar="FORMAT", type=click.Choice(sorted(SCANNERS)))
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Destination dataset folder (written atomically).")
@click.option("--map", "maps", multiple=True, metavar="SRC=TARGET",
              help="Map a source class to a streetwatch class key, or to 'none' to drop its "
                   "boxes and keep the images. Every source class must be mapped.")
@click.option("--images", "images_dir", type=click.Path(exists=True, file_okay=False,
                                                        path_type=Path),
              help="Folder holding the images, when not where the format expects them.")
@click.option("--split", type=click.Choice(["train", "val", "test"]),
              help="Put every image in this split instead of the source's.")
@click.option("--group-regex", metavar="REGEX",
              help="Derive split groups from source paths: the first capture group of a "
                   r"match, e.g. '^(.*)_frame\d+' keeps each video's frames together.")
@click.option("--keep-leaks", is_flag=True,
              help="Keep images the source has in two splits in both (by default each is kept "
                   "once, in the more held-out split).")
@click.option("--force", is_flag=True, help="Replace an existing --out.")
def import_command(format_name: str, source: Path, out: Path, maps: tuple[str, ...],
                   images_dir: Path | None, split: str | None, group_regex: str | None,
                   keep_leaks: bool, force: bool) -> None:
    """Import a labelled SOURCE in FORMAT as a streetwatch dataset."""
    try:
        class_map = ClassMap.parse(maps)
        scan = SCANNERS[format_name](source, images_dir)
        report = import_scan(scan, class_map, out, overwrite=force, split=split,
                             group_regex=group_regex, keep_leaks=keep_leaks,
                             progress=_Progress("importing"))
    except (ImporterError, DatasetError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(report.summary())
    if report.rejected_images or report.dropped_boxes:
        click.echo(f"{len(report.rejected_images)} images rejected and "
                   f"{len(report.dropped_boxes)} boxes dropped; listed above and in "
                   f"{out / 'import-report.json'}", err=True)


@data.command("validate")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--fix", "fix_out", type=click.Path(path_type=Path),
              help="Write a cleaned copy here; the input is never modified.")
@click.option("--force", is_flag=True, help="With --fix: replace an existing output folder.")
def validate_command(directory: Path, fix_out: Path | None, force: bool) -> None:
    """List every problem in a dataset DIRECTORY; exit 1 if there is an error."""
    inspection = inspect_dataset(directory, progress=_Progress("checking"))
    for problem in inspection.problems:
        click.echo(str(problem))
    click.echo(f"{directory}: {len(inspection.images)} images, "
               f"{len(inspection.errors)} errors, {len(inspection.warnings)} warnings")
    if fix_out is None:
        raise SystemExit(1 if inspection.errors else 0)
    try:
        report = fix_dataset(inspection, fix_out, overwrite=force)
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"fixed copy written to {fix_out}:\n{report.summary()}")
    after = inspect_dataset(fix_out)
    for problem in after.problems:
        click.echo(f"still: {problem}")
    click.echo(f"{fix_out}: {len(after.images)} images, {len(after.errors)} errors, "
               f"{len(after.warnings)} warnings")
    raise SystemExit(1 if after.errors else 0)


@data.command("split")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--val", type=float, default=0.15, show_default=True,
              help="Fraction of images for validation.")
@click.option("--test", type=float, default=0.15, show_default=True,
              help="Fraction of images for test.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--keep", multiple=True, type=click.Choice(["train", "val", "test"]),
              help="Leave the images of this split where they are (e.g. a source's test set).")
@click.option("--dry-run", is_flag=True, help="Print the plan without moving files.")
def split_command(directory: Path, val: float, test: float, seed: int, keep: tuple[str, ...],
                  dry_run: bool) -> None:
    """Re-split a dataset DIRECTORY in place, by group and stratified by class."""
    try:
        dataset = Dataset.open(directory)
        plan = plan_split(dataset, val=val, test=test, seed=seed, keep=keep)
        moves = plan.moves(dataset.records)
        if not dry_run:
            apply_split(dataset, plan)
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from None
    verb = "would move" if dry_run else "moved"
    counts = Counter(plan.assignment.values())
    click.echo(f"{verb} {len(moves)} of {len(dataset.records)} images; now "
               + ", ".join(f"{split} {counts[split]}" for split in SPLITS))


@data.command("merge")
@click.argument("sources", metavar="SRC...", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Destination dataset folder (written atomically).")
@click.option("--split", "splits", multiple=True, type=click.Choice(SPLITS),
              help="Keep only this split's images (repeatable); every split by default.")
@click.option("--eval-only", is_flag=True,
              help="Mark the merged dataset eval_only in data.yaml: it can evaluate a model "
                   "and guard training against its images, but `streetwatch train` refuses "
                   "to train on it.")
@click.option("--force", is_flag=True, help="Replace an existing --out.")
def merge_command(sources: tuple[Path, ...], out: Path, splits: tuple[str, ...],
                  eval_only: bool, force: bool) -> None:
    """Merge the datasets SRC... into one; image names and groups get a per-source prefix
    (s0_, s1_...)."""
    try:
        merged = merge_datasets(list(sources), out, splits=splits or None, eval_only=eval_only,
                                overwrite=force, progress=_Progress("merging"))
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from None
    per_split = Counter(r.split for r in merged.records)
    per_source = Counter(r.name.split("_", 1)[0] for r in merged.records)
    click.echo(
        f"merged {len(merged.records)} images into {out}"
        + (" (eval_only)" if eval_only else "") + ": "
        + ", ".join(f"{split} {per_split[split]}" for split in SPLITS if per_split[split])
        + "; " + ", ".join(f"{source_tag(i)}={source} {per_source[source_tag(i)]}"
                           for i, source in enumerate(sources)))


@data.command("stats")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw the statistics to this PNG.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the counts as JSON.")
def stats_command(directory: Path, plot: Path | None, json_out: Path | None) -> None:
    """Images and boxes per class and split, box sizes, empty images."""
    try:
        dataset = Dataset.open(directory)
        stats = compute_stats(dataset)
    except (DatasetError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(format_stats(stats))
    if json_out is not None:
        json_out.write_text(stats.to_json() + "\n", encoding="utf-8")
    if plot is not None:
        from streetwatch.datasets.stats_plot import plot_stats

        plot_stats(stats, plot, title=f"{directory.name}: {sum(stats.images.values())} images")
        click.echo(f"plot written to {plot}")


def _size(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[int, int]:
    width, sep, height = value.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise click.BadParameter(f"{value!r}: expected WIDTHxHEIGHT, e.g. 1280x720")
    return int(width), int(height)


@data.command("synth")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Destination dataset folder (written atomically).")
@click.option("--images", type=click.IntRange(min=1), required=True, help="How many images.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Run seed: the same seed gives the same images.")
@click.option("--camera", type=click.Choice(["dashcam", "cctv", "mixed"]), default="mixed",
              show_default=True, help="Camera geometry; mixed alternates the two.")
@click.option("--size", default="1280x720", show_default=True, callback=_size,
              help="Image size WIDTHxHEIGHT.")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="train",
              show_default=True, help="Split to put the images in.")
@click.option("--workers", type=click.IntRange(min=1), default=os.cpu_count() or 1,
              show_default="all cores", help="Processes generating images.")
@click.option("--preview", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a contact sheet of 16 images with their boxes.")
@click.option("--force", is_flag=True, help="Replace an existing --out.")
def synth_command(out: Path, images: int, seed: int, camera: str, size: tuple[int, int],
                  split: str, workers: int, preview: Path | None, force: bool) -> None:
    """Generate a labelled synthetic street-scene dataset."""
    from streetwatch.datasets.synth.dataset import preview_from_dataset, write_synth_dataset

    started = time.perf_counter()
    try:
        records = write_synth_dataset(out, images=images, seed=seed, camera=camera, size=size,
                                      split=split, workers=workers, overwrite=force,
                                      progress=_Progress("generating"))
    except (ValueError, DatasetError) as exc:
        raise click.ClickException(str(exc)) from None
    elapsed = time.perf_counter() - started
    click.echo(f"generated {len(records)} images in {elapsed:.1f} s "
               f"({len(records) / elapsed:.1f} images/s) into {out}")
    click.echo(format_stats(compute_stats(Dataset.open(out))))
    if preview is not None:
        preview_from_dataset(out, records, preview)
        click.echo(f"contact sheet written to {preview}")


@data.command("synth-video")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Destination folder: video.mp4, truth.json, and track.gpx/track.csv "
                   "(dashcam) or camera.yaml (cctv).")
@click.option("--kind", type=click.Choice(["dashcam", "cctv"]), required=True)
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), required=True,
              help="Duration in true time.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--size", default="1280x720", show_default=True, callback=_size,
              help="Frame size WIDTHxHEIGHT.")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True),
              help="Frames per second of true time (default 25 dashcam, 1 cctv: a CCTV clip "
                   "compresses time and keeps true timestamps in truth.json).")
@click.option("--park-seconds", type=click.FloatRange(min=0), default=360.0, show_default=True,
              help="CCTV: how long the car parks in the no-parking zone.")
@click.option("--workers", type=click.IntRange(min=1), default=os.cpu_count() or 1,
              show_default="all cores")
@click.option("--force", is_flag=True, help="Replace an existing --out.")
def synth_video_command(out: Path, kind: str, seconds: float, seed: int, size: tuple[int, int],
                        fps: float | None, park_seconds: float, workers: int,
                        force: bool) -> None:
    """Generate a synthetic dashcam drive or CCTV clip with its ground truth."""
    from streetwatch.datasets.synth.video import VideoParams, write_video

    params = VideoParams(kind, seed, seconds, size, fps, park_seconds)
    started = time.perf_counter()
    try:
        truth = write_video(out, params, workers=workers, overwrite=force,
                            progress=_Progress("rendering"))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    elapsed = time.perf_counter() - started
    violations = [o for o in truth["objects"] if o["violation"]]
    click.echo(f"rendered {truth['frames']} frames in {elapsed:.1f} s into {out}: "
               f"{len(truth['objects'])} labelled objects, {len(violations)} violations")
    for event in truth.get("events", []):
        click.echo(f"  event {event['kind']:<8} {event['class']:<16} "
                   f"{event['start_s']:7.1f}-{event['end_s']:7.1f} s")
