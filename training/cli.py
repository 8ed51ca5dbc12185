"""``streetwatch train``, ``average``, ``eval`` and ``export``: the commands of the train extra."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from streetwatch.inference.detector import ModelError
from streetwatch.models.cli import REGISTRY_OPTION, open_registry
from streetwatch.models.files import ConfigFileError
from streetwatch.models.registry import RegistryError
from streetwatch.training.average import AverageError, Ingredient, average
from streetwatch.training.config import load_config
from streetwatch.training.datamix import DataMixError, DataSource
from streetwatch.training.evaluate import EvalError, evaluate
from streetwatch.training.export import ExportError
from streetwatch.training.pipeline import run_export
from streetwatch.training.register import record_evaluation
from streetwatch.training.train import RunError, train
from streetwatch.training.weights import WeightsError, check_weights

T = TypeVar("T")
_USER_ERRORS = (ConfigFileError, DataMixError, RunError, WeightsError)


def _command_line(ctx: click.Context) -> str:
    """The command as parsed, options spelled out, so that it can be run again."""
    words = ["streetwatch", ctx.info_name or "train"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if not isinstance(param, click.Option) or value is None or value is False:
            continue
        if param.is_flag:
            words.append(param.opts[0])
        elif param.multiple:
            for item in value:
                words += [param.opts[0], str(item)]
        else:
            words += [param.opts[0], str(value)]
    return shlex.join(words)


def _each(parse: Callable[[str], T]) -> Callable[[click.Context, click.Parameter,
                                                   tuple[str, ...]], list[T]]:
    """A click callback that parses every value of a repeated option; a ValueError
    becomes click's usage error naming the option."""
    def callback(ctx: click.Context, param: click.Parameter,
                 values: tuple[str, ...]) -> list[T]:
        try:
            return [parse(v) for v in values]
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return callback


@click.command("train")
@click.option("--data", "sources", multiple=True, required=True, callback=_each(DataSource.parse),
              metavar="DIR[:WEIGHT]",
              help="A streetwatch dataset to train on (repeatable). Its train split trains, its "
                   "val split validates; WEIGHT repeats its training images (default 1).")
@click.option("--holdout", "holdouts", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="An evaluation-only dataset: no training image may be one of its images.")
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="Recipe YAML, or the name of a shipped one (street). Default: built-in.")
@click.option("--model", help="Model YAML (yolo11n.yaml) or a local .pt; overrides the config.")
@click.option("--imgsz", type=int, help="Image size; overrides the config.")
@click.option("--epochs", type=int, help="Epochs of the schedule; overrides the config.")
@click.option("--batch", type=int, help="Batch size; overrides the config.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Run folder.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last epoch.")
@click.option("--parent", metavar="NAME:VERSION",
              help="Fine-tune a registered model (its .pt); the new card records it as parent.")
@REGISTRY_OPTION
def train_command(sources: list[DataSource], holdouts: tuple[Path, ...], config_path: Path | None,
                  model: str | None, imgsz: int | None, epochs: int | None, batch: int | None,
                  out: Path, resume: bool, parent: str | None,
                  registry_root: Path | None) -> None:
    """Train a detector on one or more streetwatch datasets (ultralytics, offline).

    Checks every dataset (validation, taxonomy, no evaluation image among the training
    images) before anything is written. Ctrl-C or a lost machine leaves a run that --resume
    continues.
    """
    try:
        if parent is not None:
            if model is not None:
                raise click.UsageError("give --model or --parent, not both")
            registry = open_registry(registry_root)
            model = str(registry.artefact_path(registry.card(parent), "pt"))
        config = load_config(config_path).with_overrides(
            model=model, imgsz=imgsz, epochs=epochs, batch=batch)
        result = train(sources, config, out, command=_command_line(click.get_current_context()),
                       holdouts=list(holdouts), resume=resume, parent=parent)
    except (*_USER_ERRORS, RegistryError) as exc:
        raise click.ClickException(str(exc)) from None
    except ValueError as exc:  # pydantic's, from an override out of range
        raise click.ClickException(f"bad option: {exc}") from None
    click.echo(f"trained {result.epochs} epochs in {result.seconds / 60:.1f} min "
               f"({result.seconds_per_epoch:.0f} s/epoch); best weights: {result.best}")


@click.command("average")
@click.option("--model", "ingredients", multiple=True, required=True,
              callback=_each(Ingredient.parse), metavar="RUN/weights/X.pt[:SHARE]",
              help="A checkpoint of a training run (repeatable, at least two, all fine-tuned "
                   "from one start); SHARE weighs it (default 1).")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Run folder to write (weights/best.pt, run.json, command.txt).")
@click.option("--parent", metavar="NAME:VERSION",
              help="The registered model the ingredients were fine-tuned from, for the card.")
def average_command(ingredients: list[Ingredient], out: Path, parent: str | None) -> None:
    """Average the weights of several training runs into one model (a "model soup").

    Runs fine-tuned from the same weights can be averaged into one detector that costs one
    model's inference. The result is a run folder that `streetwatch export` packages like
    any other; its card lists every dataset the ingredients trained on.
    """
    try:
        best = average(ingredients, out, command=_command_line(click.get_current_context()),
                       parent=parent)
    except (*_USER_ERRORS, AverageError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"averaged {len(ingredients)} checkpoints: {best}")


def _resolve_model(text: str, registry_root: Path | None) -> tuple[Path, str | None, str]:
    """``PATH`` or a registry ``NAME:VERSION[/KIND]`` -> (file, ref or None, artefact kind)."""
    if ":" in text and not Path(text).exists():
        ref, _, kind = text.partition("/")
        kind = kind or "onnx"
        registry = open_registry(registry_root)
        card = registry.card(ref)
        return registry.artefact_path(card, kind), ref, kind
    path = Path(text)
    kind = "int8" if path.name.endswith(".int8.onnx") else path.suffix.lstrip(".")
    return path, None, kind


@click.command("eval")
@click.option("--model", "model_text", required=True, metavar="PATH|NAME:VERSION[/KIND]",
              help="A .pt or .onnx file, or a registered model (KIND: onnx (default), int8, pt); "
                   "a registered model's card records the result.")
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="A streetwatch dataset.")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test",
              show_default=True)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Report folder.")
@click.option("--baseline", "baseline_text", metavar="PATH|NAME:VERSION[/KIND]",
              help="Another model evaluated on the same data; the report shows per-class deltas "
                   "(with 95 % intervals when both are .onnx).")
@click.option("--imgsz", type=int, help="Image size [default: the model's].")
@click.option("--conf", type=click.FloatRange(0, 1), default=0.25, show_default=True,
              help="Operating point for the example counts and crops.")
@click.option("--examples", type=click.IntRange(0, 1000), default=3, show_default=True,
              help="Crops per class in the report of each kind (found, false alarms, missed), "
                   "most confident first; raise it to audit every false alarm.")
@REGISTRY_OPTION
def eval_command(model_text: str, data: Path, split: str, out: Path, baseline_text: str | None,
                 imgsz: int | None, conf: float, examples: int,
                 registry_root: Path | None) -> None:
    """Evaluate a model: metrics.json, confusion matrix, PR curves and a report of examples.

    An .onnx model's AP50 comes with a 95 % interval from resampling the images (bootstrap),
    so a figure can be read with its uncertainty.
    """
    try:
        model, ref, kind = _resolve_model(model_text, registry_root)
        baseline, base_ref, base_kind = _resolve_model(baseline_text, registry_root) \
            if baseline_text else (None, None, "")
        metrics = evaluate(model, data, out, split=split, baseline=baseline, imgsz=imgsz,
                           conf=conf, examples=examples)
        # Both cards get the evaluation, so the promotion gate can compare them on it.
        for model_ref, model_kind, folder in ((ref, kind, out), (base_ref, base_kind,
                                                                 out / "baseline")):
            if model_ref is not None:
                scored = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
                key = record_evaluation(open_registry(registry_root), model_ref, scored,
                                        model_kind)
                click.echo(f"recorded as {key!r} in {model_ref}'s card")
    except (*_USER_ERRORS, EvalError, RegistryError, ModelError) as exc:
        raise click.ClickException(str(exc)) from None
    for key, row in [*metrics["classes"].items(), ("all", metrics["all"])]:
        click.echo(f"{key:<16} P {row['precision']:.3f}  R {row['recall']:.3f}  "
                   f"AP50 {row['ap50']:.3f}  AP50-95 {row['ap50_95']:.3f}  "
                   f"n {row['instances']}")
    refused = metrics["operating_point"]["rejected_false_alarms"]
    if refused["boxes"]:
        click.echo(f"reviewer-rejected false alarms raised again: {refused['repeated']} of "
                   f"{refused['boxes']} on {refused['images']} images "
                   f"(rate {refused['rate']:.4f})")
    click.echo(f"report: {out / 'report.md'}")


@click.command("export")
@click.option("--model", "weights", required=True, type=click.Path(path_type=Path),
              help="Trained weights (RUN/weights/best.pt).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder [default: RUN/export beside the weights].")
@click.option("--imgsz", type=int, help="Input size [default: the training size].")
@click.option("--data", "check_data", type=click.Path(path_type=Path),
              help="Dataset whose images check parity and, with --int8, the INT8 accuracy "
                   "(test split, else val) [default: the first --calib].")
@click.option("--int8", is_flag=True, help="Also write an INT8 (static QDQ) model.")
@click.option("--calib", type=click.Path(path_type=Path), multiple=True,
              help="Dataset whose train and val images calibrate INT8 (repeatable: the images "
                   "are spread over all of them).")
@click.option("--calib-images", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--register", "ref", metavar="NAME:VERSION",
              help="Register the .pt, .onnx (and INT8) with a card in the registry.")
@click.option("--notes", default="", help="Free text for the card.")
@REGISTRY_OPTION
def export_command(weights: Path, out: Path | None, imgsz: int | None, check_data: Path | None,
                   int8: bool, calib: tuple[Path, ...], calib_images: int, ref: str | None,
                   notes: str, registry_root: Path | None) -> None:
    """Export to ONNX (onnxslim) and check parity; optionally INT8 and registration."""
    check_data = check_data or (calib[0] if calib else None)
    try:
        if check_data is None:
            raise ExportError("parity needs sample images: give --data DATA (or --calib)")
        if int8 and not calib:
            raise ExportError("--int8 needs --calib DATA (real images to calibrate on)")
        if ref is not None:
            registry = open_registry(registry_root)
            if registry.card_path(ref).exists():
                raise RegistryError(f"{ref}: already registered in {registry.root}; "
                                    "a version is registered once, give a new version")
        check_weights(weights)
        summary = run_export(weights, out or weights.resolve().parent.parent / "export",
                             imgsz=imgsz, check_data=check_data, int8=int8, calib=list(calib),
                             calib_images=calib_images, ref=ref, notes=notes,
                             registry=open_registry(registry_root) if ref else None,
                             echo=click.echo)
    except (*_USER_ERRORS, ExportError, EvalError, RegistryError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"written: {', '.join(summary['files'].values())}")
