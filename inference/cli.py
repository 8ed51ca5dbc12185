"""``streetwatch detect``: find violations in photos, a video (with a GPS track), or a stream."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Literal

import click
from tqdm import tqdm

from streetwatch.inference.camera import CameraError, load_camera
from streetwatch.inference.cases import (
    CaseBuilder,
    EvidenceStore,
    GridError,
    GridIndex,
    ModelRef,
    Place,
    Source,
)
from streetwatch.inference.clips import ClipRecorder
from streetwatch.inference.detector import Detector, DetectorConfig, ModelError
from streetwatch.inference.geolocate import Lens
from streetwatch.inference.gps import GpsTrack, TrackError, read_track
from streetwatch.inference.pipeline import RunStats, VideoSink, run
from streetwatch.inference.rules import (
    DEFAULT_FPS_FIXED,
    DEFAULT_FPS_MOVING,
    MOVING_CONFIRM_FRAMES,
    RuleEngine,
)
from streetwatch.inference.sources import (
    IMAGE_SUFFIXES,
    ImageSource,
    SourceError,
    StreamSource,
    VideoSource,
)
from streetwatch.inference.types import Frame
from streetwatch.models.cli import REGISTRY_OPTION, open_registry
from streetwatch.models.files import staged_directory
from streetwatch.models.registry import ModelCard, RegistryError

_ERRORS = (SourceError, TrackError, CameraError, ModelError, RegistryError, GridError)


def open_model(text: str | None, registry_root: Path | None) -> tuple[Path, ModelCard | None]:
    """``--model``: an .onnx path, ``NAME:VERSION[/KIND]``, or (None) the promoted model."""
    if text is not None and not (":" in text and not Path(text).exists()):
        return Path(text), None
    registry = open_registry(registry_root)
    ref = text or registry.promoted()
    if ref is None:
        raise RegistryError(f"no model promoted in {registry.root}; pass --model "
                            "(an .onnx file or NAME:VERSION) or promote one")
    ref, _, kind = ref.partition("/")
    card = registry.card(ref)
    return registry.artefact_path(card, kind or "onnx"), card


def _stride_multiple(_ctx: click.Context, _param: click.Parameter,
                     value: int | None) -> int | None:
    if value is not None and value % 32:
        raise click.BadParameter(f"{value} is not a multiple of 32 (the model's stride)")
    return value


@click.command("detect")
@click.argument("source")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Output folder: candidates.jsonl and evidence/ (written whole at the end).")
@click.option("--model", "model_text", metavar="PATH|NAME:VERSION[/KIND]",
              help="An .onnx model or a registered one [default: the promoted model].")
@click.option("--gps", "gps_path", type=click.Path(path_type=Path),
              help="The vehicle's GPS track (GPX, NMEA or CSV) for a dashcam video.")
@click.option("--gps-offset", type=float, default=0.0, show_default=True,
              help="Seconds to add to video time to get GPS time.")
@click.option("--start", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"]),
              help="UTC time of the video's first frame [default: the track's start].")
@click.option("--camera", "camera_path", type=click.Path(path_type=Path),
              help="A fixed camera's YAML: zones and rules.")
@click.option("--vehicle", help="The patrol vehicle's id (for dashcam footage).")
@click.option("--grid", "grid_path", type=click.Path(path_type=Path),
              help="GeoJSON of grid cells (properties.grid_id) to place cases in.")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True),
              help=f"Frames per second to sample from video [default: {DEFAULT_FPS_FIXED:g} "
                   f"with --camera, else {DEFAULT_FPS_MOVING:g}: a passing object needs "
                   f"{MOVING_CONFIRM_FRAMES} frames].")
@click.option("--hfov", type=click.FloatRange(10, 170), default=Lens.hfov_deg, show_default=True,
              help="A vehicle camera's horizontal field of view in degrees, to place what it "
                   "sees from the rays of its sightings (a wrong value moves a place across "
                   "the street, not along it).")
@click.option("--camera-yaw", type=click.FloatRange(-180, 180), default=Lens.yaw_deg,
              show_default=True,
              help="A vehicle camera's optical axis against the direction of travel, degrees "
                   "clockwise (90: looking right).")
@click.option("--conf", type=click.FloatRange(0, 1), default=0.25, show_default=True,
              help="Detector confidence threshold.")
@click.option("--case-conf", type=click.FloatRange(0, 1), default=0.4, show_default=True,
              help="Confidence a track needs to become a case.")
@click.option("--imgsz", type=click.IntRange(64, 4096), callback=_stride_multiple,
              help="Run the model at this input size, a multiple of 32 [default: the one it "
                   "records]; larger sees far objects better at a cost that grows with the "
                   "pixels (README, \"Why 736 px\").")
@click.option("--duration", type=float,
              help="Stop a stream after this many seconds (or Ctrl-C: what was found is kept).")
@click.option("--clip-seconds", type=click.FloatRange(0, 60), default=0.0, show_default=True,
              help="Add to each video case a WebM clip of this many seconds before its last "
                   "sighting (0: none).")
@click.option("--save-video", is_flag=True, help="Also write an annotated video.")
@click.option("--force", is_flag=True, help="Replace an existing --out.")
@REGISTRY_OPTION
def detect_command(source: str, out: Path, model_text: str | None, gps_path: Path | None,
                   gps_offset: float, start: datetime | None, camera_path: Path | None,
                   vehicle: str | None, grid_path: Path | None, fps: float | None,
                   hfov: float, camera_yaw: float, conf: float,
                   case_conf: float, imgsz: int | None, duration: float | None, clip_seconds: float,
                   save_video: bool, force: bool, registry_root: Path | None) -> None:
    """Find violations in SOURCE: an image, a folder of photos, a video file, or an
    rtsp:// / http:// stream. Writes OUT/candidates.jsonl (one case candidate per line) and
    OUT/evidence/ (annotated frame, crop and frame per case, named by sha256)."""
    fps = fps or (DEFAULT_FPS_FIXED if camera_path else DEFAULT_FPS_MOVING)
    try:
        if out.exists() and any(out.iterdir()) and not force:
            raise SourceError(f"{out}: already exists; choose another --out or --force")
        model_path, card = open_model(model_text, registry_root)
        # frames are decoded by a reader thread on the same cores: the detector must not spin
        detector = Detector.open(model_path, card, DetectorConfig(conf=conf, spin=False),
                                 imgsz=imgsz)
        camera = load_camera(camera_path) if camera_path else None
        grid = GridIndex(grid_path) if grid_path else None
        track = read_track(gps_path) if gps_path else None
        frames, photos, total = _open_source(source, fps, track, gps_offset, start, duration)
        streaming = _is_stream(source)
    except _ERRORS as exc:
        raise click.ClickException(str(exc)) from None

    kind: Literal["camera", "vehicle", "upload"] = (
        "camera" if camera else ("vehicle" if vehicle or track else "upload"))
    source_id = camera.id if camera else (vehicle or Path(source).stem or source)
    place = Place(lat=camera.location.lat, lon=camera.location.lon) \
        if camera and camera.location else None
    try:
        with staged_directory(out) as staging:
            info = detector.info
            builder = CaseBuilder(
                EvidenceStore(staging / "evidence"),
                ModelRef(name=info.name, version=info.version, sha256=info.sha256),
                Source(kind=kind, id=source_id), grid=grid, fixed_location=place,
                clips=ClipRecorder(clip_seconds, fps=fps) if clip_seconds and not photos
                else None)
            rules = RuleEngine(camera, default_confidence=case_conf,
                               confirm_frames=1 if photos else MOVING_CONFIRM_FRAMES)
            sink = VideoSink(staging / "annotated.mp4", fps) if save_video else None
            stats = RunStats()
            with tqdm(total=total, unit="frame", desc="detect", disable=None) as bar:
                try:
                    run(frames, detector, rules, builder, fps=fps, single_frame=photos,
                        lens=Lens(hfov_deg=hfov, yaw_deg=camera_yaw),
                        sink=sink, progress=bar.update, stats=stats)
                except KeyboardInterrupt:
                    if not streaming:
                        raise  # a file run stopped half-way is not a result: keep nothing
                    click.echo("stopped: writing what was found so far", err=True)
                finally:
                    if sink is not None:
                        sink.close()
            with (staging / "candidates.jsonl").open("w", encoding="utf-8") as handle:
                for case in builder.candidates:
                    handle.write(case.model_dump_json() + "\n")
    except _ERRORS as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{stats.frames} frames; detections: " + (", ".join(
        f"{k} {v}" for k, v in sorted(stats.detections.items())) or "none"))
    counts = builder.summary()
    click.echo(f"{len(builder.candidates)} case candidate(s)" + (": " + ", ".join(
        f"{k} {v}" for k, v in sorted(counts.items())) if counts else ""))
    click.echo(f"written: {out / 'candidates.jsonl'}")


def _open_source(source: str, fps: float, track: GpsTrack | None, gps_offset: float,
                 start: datetime | None,
                 duration: float | None) -> tuple[Iterable[Frame], bool, int | None]:
    """The frames of SOURCE, whether they are independent photos, and how many to expect."""
    if _is_stream(source):
        stream = StreamSource(source, fps=fps)
        return _for(stream, duration if duration else math.inf), False, None
    path = Path(source)
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        images = ImageSource(path)
        return images, True, len(images)
    video = VideoSource(path, fps=fps, start=start, track=track, offset_s=gps_offset)
    expected = int(video.info.seconds * fps) + 1 if video.info.seconds else None
    return video, False, expected


def _is_stream(source: str) -> bool:
    return source.startswith(("rtsp://", "rtmp://", "http://", "https://"))


def _for(stream: StreamSource, seconds: float) -> Iterator[Frame]:
    """A stream's frames for ``seconds`` of stream time, then stop it."""
    first: datetime | None = None
    try:
        for frame in stream:
            first = first or frame.captured_at
            if (frame.captured_at - first).total_seconds() > seconds:
                return
            yield frame
    finally:
        stream.stop()
