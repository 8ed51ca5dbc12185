"""Frame sources: images and geotagged photos, video files (with a GPS track for dashcams),
and live streams. Each yields timestamped ``Frame``s, sampled at N fps by true timestamps.

Sampling keeps the first frame at or after each tick of a ``1/fps`` grid that starts at the
first frame, so a variable-frame-rate file is sampled by when frames happened, not by how
many there were.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from streetwatch.inference.gps import GpsTrack
from streetwatch.inference.types import BGRImage, Frame, Location

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".ts", ".m4v", ".flv", ".webm"})
DEFAULT_TZ = "Asia/Shanghai"


class SourceError(ValueError):
    """A source that cannot give frames; the message names the file or URL."""


class Sampler:
    """Keeps a frame when its timestamp reaches the next tick of a ``1/fps`` grid."""

    def __init__(self, fps: float | None) -> None:
        if fps is not None and fps <= 0:
            raise SourceError(f"--fps must be positive, got {fps}")
        self.period = 0.0 if fps is None else 1.0 / fps
        self.next: float | None = None

    def keep(self, t: float) -> bool:
        """Whether the frame at ``t`` seconds is kept (call in time order)."""
        if self.next is not None and t + 1e-6 < self.next:
            return False
        if self.period:
            base = t if self.next is None else self.next
            self.next = base + (math.floor((t + 1e-6 - base) / self.period) + 1) * self.period
        return True


# -- images and photos ----------------------------------------------------------------------

def _exif_time(exif: Any, zone: ZoneInfo) -> datetime | None:
    sub = exif.get_ifd(0x8769)  # Exif IFD
    text = sub.get(0x9003) or exif.get(0x0132)  # DateTimeOriginal, else DateTime
    if not text:
        return None
    try:
        local = datetime.strptime(str(text).strip(), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    offset = sub.get(0x9011)  # OffsetTimeOriginal, "+08:00"
    if offset:
        try:
            return datetime.fromisoformat(local.isoformat() + str(offset)).astimezone(UTC)
        except ValueError:
            pass
    return local.replace(tzinfo=zone).astimezone(UTC)


def _exif_location(exif: Any) -> Location | None:
    gps = exif.get_ifd(0x8825)
    if not gps or 2 not in gps or 4 not in gps:
        return None

    def degrees(value: Any, ref: Any) -> float:
        d, m, s = (float(v) for v in value)
        sign = -1 if str(ref).upper() in ("S", "W") else 1
        return sign * (d + m / 60 + s / 3600)

    try:
        lat = degrees(gps[2], gps.get(1, "N"))
        lon = degrees(gps[4], gps.get(3, "E"))
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None
    heading = float(gps[17]) if 17 in gps else None  # GPSImgDirection
    return Location(lat, lon, heading, None)


class Photo(NamedTuple):
    """A photo read from its file."""

    image: BGRImage
    captured: datetime
    location: Location | None
    as_stored: bool  # a JPEG whose picture needed no turning: the file is the image

    def frame(self, source_id: str, index: int, path: Path) -> Frame:
        """The photo as a frame (``path`` is its file)."""
        return Frame(source_id, index, self.captured, self.image, self.location,
                     original=path if self.as_stored else None)


def read_photo(path: Path, zone: ZoneInfo) -> Photo:
    """A photo upright (EXIF orientation applied), its capture time (UTC) and GPS position.

    Without an EXIF time, the file's modification time stands in.

    Raises:
        SourceError: the file is not a readable image.
    """
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as opened:  # reads the header only
            exif = opened.getexif()
            kind = opened.format
            upright = exif.get(0x0112, 1) == 1
            image: BGRImage | None = None
            if kind in ("JPEG", "MPO") or upright:
                # OpenCV decodes several times faster than Pillow, BGR as we need it, and
                # applies a JPEG's EXIF orientation itself
                decoded = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
                image = None if decoded is None else np.asarray(decoded, np.uint8)
            if image is None:
                turned = ImageOps.exif_transpose(opened).convert("RGB")
                image = np.ascontiguousarray(np.asarray(turned)[:, :, ::-1])
    except Exception as exc:  # Pillow and its plugins raise many types on bad bytes
        raise SourceError(f"{path}: not a readable image ({exc})") from None
    captured = _exif_time(exif, zone) or datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return Photo(image, captured, _exif_location(exif), as_stored=kind == "JPEG" and upright)


def photo_time(path: Path, zone: ZoneInfo) -> datetime:
    """A photo's capture time from its EXIF header alone (no pixels decoded).

    Raises:
        SourceError: the file is not an image Pillow can open.
    """
    from PIL import Image

    try:
        with Image.open(path) as opened:
            exif = opened.getexif()
    except Exception as exc:  # Pillow and its plugins raise many types on bad bytes
        raise SourceError(f"{path}: not a readable image ({exc})") from None
    return _exif_time(exif, zone) or datetime.fromtimestamp(path.stat().st_mtime, UTC)


@dataclass
class ImageSource:
    """One image file, or every image in a folder, as frames in order of capture time.

    Headers are read up front (to order the photos and to refuse a non-image before any
    work); pixels are decoded one photo at a time, so a folder of any size fits in memory.
    """

    path: Path
    source_id: str = ""
    timezone: str = DEFAULT_TZ

    def __post_init__(self) -> None:
        if not self.path.exists():
            raise SourceError(f"{self.path}: not found")
        if self.path.is_dir():
            files = sorted(p for p in self.path.iterdir()
                           if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not files:
                raise SourceError(f"{self.path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        elif self.path.suffix.lower() in IMAGE_SUFFIXES:
            files = [self.path]
        else:
            raise SourceError(f"{self.path}: not an image ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self.source_id = self.source_id or self.path.stem
        zone = ZoneInfo(self.timezone)
        timed = sorted((photo_time(path, zone), path) for path in files)
        self.files = [path for _, path in timed]

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[Frame]:
        zone = ZoneInfo(self.timezone)
        for index, path in enumerate(self.files):
            yield read_photo(path, zone).frame(self.source_id, index, path)


# -- video files ----------------------------------------------------------------------------

@dataclass
class VideoInfo:
    """What a video file says about itself."""

    fps: float
    frames: int
    width: int
    height: int

    @property
    def seconds(self) -> float:
        return self.frames / self.fps if self.fps > 0 else 0.0


def probe_video(path: Path) -> VideoInfo:
    """Open a video and check that it has frames.

    Raises:
        SourceError: not found, not a video, or no frame can be decoded.
    """
    if not path.is_file():
        raise SourceError(f"{path}: not found")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise SourceError(f"{path}: not a readable video")
        ok, _ = capture.read()
        if not ok:
            raise SourceError(f"{path}: the video has no decodable frames")
        info = VideoInfo(float(capture.get(cv2.CAP_PROP_FPS) or 0.0),
                         int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
                         int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                         int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        capture.release()
    return info


@dataclass
class VideoSource:
    """A video file sampled at ``fps``, each frame placed in time and, with a track, on the map.

    Attributes:
        start: UTC time of the first frame. Default: the track's first fix (dashcams start
            recording and logging together), else the file's modification time minus its
            duration (cameras close the file when they stop).
        track: The vehicle's GPS track; it must cover the whole video.
        offset_s: Seconds to add to video time to get track time (a known clock skew).
    """

    path: Path
    fps: float | None = None
    start: datetime | None = None
    track: GpsTrack | None = None
    offset_s: float = 0.0
    source_id: str = ""
    info: VideoInfo = field(init=False)

    def __post_init__(self) -> None:
        if self.start is not None and self.start.tzinfo is None:
            raise SourceError(f"{self.path}: the start time {self.start} has no time zone")
        self.info = probe_video(self.path)
        Sampler(self.fps)  # checks fps
        self.source_id = self.source_id or self.path.stem
        if self.start is None:
            if self.track is not None:
                self.start = self.track.start - timedelta(seconds=self.offset_s)
            else:
                mtime = datetime.fromtimestamp(self.path.stat().st_mtime, UTC)
                self.start = mtime - timedelta(seconds=self.info.seconds)
        if self.track is not None:
            begin = self.start + timedelta(seconds=self.offset_s)
            end = begin + timedelta(seconds=self.info.seconds)
            if not self.track.covers(begin, end):
                raise SourceError(
                    f"{self.track.source}: the GPS track covers {self.track.start:%H:%M:%S} to "
                    f"{self.track.end:%H:%M:%S} UTC, but {self.path.name} runs from "
                    f"{begin:%H:%M:%S} to {end:%H:%M:%S} (offset {self.offset_s:+.1f} s); give "
                    "the right track or --gps-offset")

    def __iter__(self) -> Iterator[Frame]:
        assert self.start is not None
        capture = cv2.VideoCapture(str(self.path))
        sampler = Sampler(self.fps)
        index = 0
        try:
            while capture.grab():
                t = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                if not sampler.keep(t):
                    continue
                ok, image = capture.retrieve()
                if not ok:
                    raise SourceError(f"{self.path}: frame at {t:.2f} s cannot be decoded")
                captured = self.start + timedelta(seconds=t)
                location = None
                if self.track is not None:
                    location = self.track.at(captured + timedelta(seconds=self.offset_s))
                yield Frame(self.source_id, index, captured, np.asarray(image, np.uint8),
                            location)
                index += 1
        finally:
            capture.release()


T = TypeVar("T")


def read_ahead(items: Iterable[T], depth: int = 2) -> Generator[T, None, None]:
    """``items``, drawn by a background thread up to ``depth`` ahead, so that decoding the
    next frame overlaps detecting this one (OpenCV and onnxruntime release the GIL). An
    error of the source is raised here, in order; stopping early stops the thread and
    closes the source."""
    if depth <= 0:
        yield from items
        return
    ahead: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=depth)
    stop, end = threading.Event(), object()

    def put(entry: tuple[Any, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                ahead.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put((item, None)):
                    return
            put((end, None))
        except BaseException as exc:  # handed to the consumer, raised there
            put((end, exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()  # a generator's finally (releasing a capture) runs here

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ahead.get()
            if item is end:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=10)


# -- live streams ---------------------------------------------------------------------------

class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` a stream uses."""

    def isOpened(self) -> bool: ...
    def read(self) -> tuple[bool, Any]: ...
    def release(self) -> None: ...


def _open_capture(url: str) -> Capture:
    return cv2.VideoCapture(url)


@dataclass
class StreamSource:
    """An RTSP/HTTP stream read by a background thread that reconnects with backoff.

    Frames are stamped by ``clock`` (UTC) and sampled by ``ticker`` (monotonic, so a clock
    step does not stall sampling). The reader never blocks on a slow consumer: frames wait
    in a buffer of ``buffer`` frames and the oldest is dropped when it is full (a detector
    that falls behind sees the present, not a growing past). Iteration ends when ``stop()``
    is called.
    """

    url: str
    fps: float | None = None
    source_id: str = ""
    buffer: int = 8
    backoff_s: tuple[float, float] = (0.5, 30.0)
    opener: Callable[[str], Capture] = _open_capture
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ticker: Callable[[], float] = time.monotonic
    dropped: int = field(default=0, init=False)
    reconnects: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        Sampler(self.fps)
        if self.buffer < 1:
            raise SourceError(f"{self.url}: the frame buffer must hold at least 1 frame")
        self.source_id = self.source_id or self.url
        self._frames: deque[tuple[datetime, BGRImage]] = deque(maxlen=self.buffer)
        self._ready = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> StreamSource:
        if self._thread is None:
            self._thread = threading.Thread(target=self._read, name=f"stream {self.source_id}",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._ready:
            self._ready.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _read(self) -> None:
        delay = self.backoff_s[0]
        sampler = Sampler(self.fps)  # on the monotonic clock: wall-clock steps (NTP) do not
        while not self._stop.is_set():  # stall sampling
            try:
                served = self._serve(self.opener(self.url), sampler)
            except Exception:  # a broken driver must not kill the reader: reconnect
                log.exception("stream %s: capture failed", self.source_id)
                served = 0
            if self._stop.is_set():
                break
            self.reconnects += 1
            if served:
                delay = self.backoff_s[0]
            log.warning("stream %s: %s; reconnecting in %.1f s", self.source_id,
                        "read failed" if served else "cannot open or read", delay)
            self._stop.wait(delay)
            delay = min(delay * 2, self.backoff_s[1])

    def _serve(self, capture: Capture, sampler: Sampler) -> int:
        """Read frames until the capture fails or the source stops; returns frames read."""
        served = 0
        try:
            if not capture.isOpened():
                return 0
            while not self._stop.is_set():
                ok, image = capture.read()
                if not ok:
                    return served
                served += 1
                tick, now = self.ticker(), self.clock()
                if not sampler.keep(tick):
                    continue
                with self._ready:
                    if len(self._frames) == self._frames.maxlen:
                        self.dropped += 1
                    self._frames.append((now, image))
                    self._ready.notify()
            return served
        finally:
            capture.release()

    def __iter__(self) -> Iterator[Frame]:
        self.start()
        index = 0
        while True:
            with self._ready:
                while not self._frames and not self._stop.is_set():
                    self._ready.wait(timeout=0.5)
                    if self._thread is not None and not self._thread.is_alive():
                        self._stop.set()
                if not self._frames:
                    return
                captured, image = self._frames.popleft()
            yield Frame(self.source_id, index, captured, image, None)
            index += 1
