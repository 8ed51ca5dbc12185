"""Frame sources on real small files: the time sampler, geotagged photos with EXIF written by
Pillow, an mp4 written by OpenCV (with a GPS track), and a live stream fed by a fake camera."""

from __future__ import annotations

import functools
import itertools
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from live_helpers import wait_until
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from streetwatch.datasets.synth.geo import GpsFix, csv_text
from streetwatch.inference.gps import GpsTrack, read_csv
from streetwatch.inference.sources import (
    ImageSource,
    Sampler,
    SourceError,
    StreamSource,
    VideoSource,
    probe_video,
    read_ahead,
)
from streetwatch.inference.types import Frame

T0 = datetime(2026, 5, 12, 2, 0, 0, tzinfo=UTC)
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
ORIENTATION, DATETIME_ORIGINAL, OFFSET_TIME_ORIGINAL = 0x0112, 0x9003, 0x9011
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON, GPS_IMG_DIRECTION = 1, 2, 3, 4, 17


# The stream tests poll fast and give up early: their fakes answer in microseconds.
wait_for = functools.partial(wait_until, timeout_s=2.0, poll_s=0.002)


# -- sampling -------------------------------------------------------------------------------

def kept(sampler: Sampler, times: list[float]) -> list[float]:
    return [t for t in times if sampler.keep(t)]


def test_sampler_keeps_the_first_frame_at_each_tick() -> None:
    times = [i * 0.04 for i in range(75)]  # 25 fps for 3 s
    got = kept(Sampler(2.0), times)
    assert len(got) == 6
    for k, t in enumerate(got):
        assert 0.5 * k - 1e-6 <= t < 0.5 * k + 0.04


def test_sampler_without_fps_keeps_every_frame() -> None:
    times = [i * 0.04 for i in range(75)]
    assert kept(Sampler(None), times) == times


def test_sampler_follows_time_not_frame_count() -> None:
    # A burst, a stall and a catch-up: one frame per half-second tick that has any frames,
    # no catching up on the ticks that had none, and a grid that starts at the first frame.
    times = [100.0, 100.01, 100.02, 100.6, 100.61, 100.62, 100.63, 101.4, 102.2, 102.21,
             103.05]
    assert kept(Sampler(2.0), times) == [100.0, 100.6, 101.4, 102.2, 103.05]


def test_sampler_keeps_ticks_despite_float_error() -> None:
    times = [i / 30 for i in range(90)]  # 30 fps for 3 s, sampled at 10 fps
    assert len(kept(Sampler(10.0), times)) == 30


@pytest.mark.parametrize("fps", [0.0, -1.0])
def test_fps_must_be_positive(fps: float) -> None:
    with pytest.raises(SourceError, match="fps must be positive"):
        Sampler(fps)
    with pytest.raises(SourceError, match="fps must be positive"):
        StreamSource("rtsp://cam", fps=fps)


# -- images and photos ----------------------------------------------------------------------

def rational(value: float) -> IFDRational:
    return IFDRational(round(value * 100), 100)


def write_photo(path: Path, rgb: tuple[int, int, int], taken: str | None = None,
                offset: str | None = None, gps: tuple[float, float] | None = None,
                orientation: int | None = None, size: tuple[int, int] = (40, 20)) -> Path:
    """A JPEG with EXIF DateTimeOriginal (+ OffsetTimeOriginal) and a GPS IFD as degrees,
    minutes, seconds rationals with N/S, E/W references."""
    image = Image.new("RGB", size, rgb)
    exif = Image.Exif()
    if orientation is not None:
        exif[ORIENTATION] = orientation
    if taken is not None:
        sub = exif.get_ifd(EXIF_IFD)
        sub[DATETIME_ORIGINAL] = taken
        if offset is not None:
            sub[OFFSET_TIME_ORIGINAL] = offset
    if gps is not None:
        gps_ifd = exif.get_ifd(GPS_IFD)
        for (ref_tag, value_tag, refs), value in zip(
                ((GPS_LAT_REF, GPS_LAT, "NS"), (GPS_LON_REF, GPS_LON, "EW")), gps, strict=True):
            degrees = abs(value)
            d = int(degrees)
            m = int((degrees - d) * 60)
            s = (degrees - d - m / 60) * 3600
            gps_ifd[ref_tag] = refs[0] if value >= 0 else refs[1]
            gps_ifd[value_tag] = (IFDRational(d, 1), IFDRational(m, 1), rational(s))
        gps_ifd[GPS_IMG_DIRECTION] = IFDRational(905, 10)
    image.save(path, quality=95, exif=exif)
    return path


def test_photos_come_out_in_capture_order_in_utc_with_their_place(tmp_path: Path) -> None:
    # Named so that name order is not time order.
    write_photo(tmp_path / "a_late.jpg", (200, 10, 10), "2026:05:12 10:00:05", "+08:00",
                gps=(31.2304, 121.4737))
    write_photo(tmp_path / "b_early.jpg", (10, 200, 10), "2026:05:12 10:00:01",  # no zone
                gps=(-33.8688, -70.6693))
    write_photo(tmp_path / "c_mid.jpg", (10, 10, 200), "2026:05:11 21:00:03", "-05:00")
    source = ImageSource(tmp_path, source_id="walk")
    assert len(source) == 3
    frames = list(source)
    assert [f.index for f in frames] == [0, 1, 2]
    assert [f.source_id for f in frames] == ["walk"] * 3
    assert [f.captured_at for f in frames] == [T0 + timedelta(seconds=s) for s in (1, 3, 5)]
    assert all(f.captured_at.utcoffset() == timedelta(0) for f in frames)
    early, mid, late = frames
    # BGR pixels, the photo's colours.
    assert np.abs(early.image[10, 20].astype(int) - (10, 200, 10)).max() <= 3
    assert np.abs(mid.image[10, 20].astype(int) - (200, 10, 10)).max() <= 3
    assert np.abs(late.image[10, 20].astype(int) - (10, 10, 200)).max() <= 3
    assert early.image.shape == (20, 40, 3) and early.image.dtype == np.uint8
    assert mid.location is None
    assert late.location is not None and early.location is not None
    assert late.location.lat == pytest.approx(31.2304, abs=1e-6)
    assert late.location.lon == pytest.approx(121.4737, abs=1e-6)
    assert late.location.heading == pytest.approx(90.5)
    assert early.location.lat == pytest.approx(-33.8688, abs=1e-6)
    assert early.location.lon == pytest.approx(-70.6693, abs=1e-6)


def test_a_photo_without_offset_takes_the_given_zone(tmp_path: Path) -> None:
    write_photo(tmp_path / "p.jpg", (0, 0, 0), "2026:05:12 10:00:01")
    (frame,) = ImageSource(tmp_path / "p.jpg", timezone="UTC")
    assert frame.captured_at == datetime(2026, 5, 12, 10, 0, 1, tzinfo=UTC)
    assert frame.source_id == "p"


def test_a_photo_without_exif_time_uses_the_file_time(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(path)
    os.utime(path, (T0.timestamp(), T0.timestamp()))
    (frame,) = ImageSource(path)
    assert frame.captured_at == T0 and frame.location is None
    assert frame.image[0, 0].tolist() == [3, 2, 1]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    for y in range(20):
        image.putpixel((0, y), (255, 0, 0))  # the left column is red
        image.putpixel((1, y), (255, 0, 0))
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # shown rotated 90 degrees clockwise
    image.save(tmp_path / "turned.png", exif=exif)
    (frame,) = ImageSource(tmp_path / "turned.png")
    assert frame.image.shape == (40, 20, 3)
    assert (frame.image[0, :, 2] == 255).all()  # the left column is now the top row (BGR)
    assert (frame.image[-1, :, 2] == 0).all()


def test_exif_orientation_on_a_jpeg(tmp_path: Path) -> None:
    write_photo(tmp_path / "upright.jpg", (9, 9, 9), "2026:05:12 10:00:01")
    write_photo(tmp_path / "turned.jpg", (9, 9, 9), "2026:05:12 10:00:02", orientation=6)
    upright, turned = ImageSource(tmp_path)
    assert upright.image.shape == (20, 40, 3)
    assert turned.image.shape == (40, 20, 3)


def _truncated_jpeg(path: Path) -> None:
    write_photo(path, (5, 5, 5), size=(256, 256))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("corrupt", ["garbage", "truncated"])
def test_a_corrupt_photo_is_named(tmp_path: Path, corrupt: str) -> None:
    """Garbage is refused when the source opens (headers are read up front); a truncated
    photo when its pixels are decoded, one photo at a time."""
    write_photo(tmp_path / "a_good.jpg", (9, 9, 9), "2026:05:12 10:00:01")
    bad = tmp_path / "b_bad.jpg"
    if corrupt == "garbage":
        bad.write_bytes(b"\xff\xd8 this is not really a jpeg" * 10)
    else:
        _truncated_jpeg(bad)
    write_photo(tmp_path / "c_good.jpg", (9, 9, 9), "2026:05:12 10:00:02")
    frames: list[Frame] = []
    with pytest.raises(SourceError, match=r"b_bad\.jpg: not a readable image"):
        frames.extend(ImageSource(tmp_path))
    # the truncated file has no EXIF time: its file time (today) sorts it after both photos
    assert len(frames) == (0 if corrupt == "garbage" else 2)


def test_an_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no images"):
        ImageSource(tmp_path)


def test_a_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a photo\n")
    (tmp_path / "sub.jpg").mkdir()
    with pytest.raises(SourceError, match="no images"):
        ImageSource(tmp_path)


def test_a_non_image_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a photo\n")
    with pytest.raises(SourceError, match=r"notes\.txt: not an image"):
        ImageSource(path)


def test_a_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "fake.jpg"
    path.write_text("not a photo\n")
    with pytest.raises(SourceError, match=r"fake\.jpg: not a readable image"):
        list(ImageSource(path))


def test_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"nowhere: not found"):
        ImageSource(tmp_path / "nowhere")


# -- video files ----------------------------------------------------------------------------

VIDEO_FPS, VIDEO_FRAMES, VIDEO_W, VIDEO_H = 10, 30, 64, 48


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s at 10 fps, 64x48; frame i is filled with the value i * 5."""
    path = tmp_path_factory.mktemp("video") / "dashcam.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), VIDEO_FPS,
                             (VIDEO_W, VIDEO_H))
    assert writer.isOpened()
    for i in range(VIDEO_FRAMES):
        writer.write(np.full((VIDEO_H, VIDEO_W, 3), i * 5, np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="module")
def decoded(video: Path) -> list[npt.NDArray[np.uint8]]:
    """Every frame of the video as OpenCV decodes it."""
    capture = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(np.asarray(image, np.uint8))
    capture.release()
    assert len(frames) == VIDEO_FRAMES
    return frames


def test_probe_video(video: Path) -> None:
    info = probe_video(video)
    assert (info.fps, info.frames, info.width, info.height) == (10.0, 30, 64, 48)
    assert info.seconds == pytest.approx(3.0)


def test_video_sampled_at_2_fps(video: Path, decoded: list[npt.NDArray[np.uint8]]) -> None:
    frames = list(VideoSource(video, fps=2.0, start=T0))
    assert len(frames) == 6
    assert [f.index for f in frames] == list(range(6))
    assert [f.captured_at for f in frames] == [T0 + timedelta(seconds=0.5 * k)
                                               for k in range(6)]
    for k, frame in enumerate(frames):
        assert frame.source_id == "dashcam" and frame.location is None
        assert frame.image.shape == (VIDEO_H, VIDEO_W, 3) and frame.image.dtype == np.uint8
        assert np.array_equal(frame.image, decoded[5 * k])  # frames 0, 5, 10, ...
        assert abs(float(frame.image.mean()) - 25 * k) < 4  # value i * 5, give or take codec


def test_video_without_fps_gives_every_frame(video: Path) -> None:
    frames = list(VideoSource(video, start=T0, source_id="cam"))
    assert len(frames) == VIDEO_FRAMES
    assert frames[-1].captured_at == T0 + timedelta(seconds=2.9)
    assert frames[0].source_id == "cam"


def test_video_start_defaults_to_mtime_minus_duration(video: Path) -> None:
    first = next(iter(VideoSource(video, fps=2.0)))
    expected = datetime.fromtimestamp(video.stat().st_mtime, UTC) - timedelta(seconds=3)
    assert first.captured_at == expected


def write_track(path: Path, seconds: int = 6) -> GpsTrack:
    """A fix a second from T0 for ``seconds`` s, driving north 1e-4 degree a second."""
    fixes = [GpsFix(T0 + timedelta(seconds=s), 31.23 + s * 1e-4, 121.47, 11.0, 0.0)
             for s in range(seconds + 1)]
    path.write_text(csv_text(fixes), encoding="utf-8")
    return read_csv(path)


def test_video_frames_are_placed_on_the_track(video: Path, tmp_path: Path) -> None:
    track = write_track(tmp_path / "track.csv")
    frames = list(VideoSource(video, fps=2.0, track=track))  # start: the track's first fix
    assert [f.captured_at for f in frames] == [T0 + timedelta(seconds=0.5 * k)
                                               for k in range(6)]
    for k, frame in enumerate(frames):
        assert frame.location is not None
        assert frame.location.lat == pytest.approx(31.23 + 0.5 * k * 1e-4, abs=1e-9)
        assert frame.location.lon == pytest.approx(121.47)
        assert frame.location.heading == 0.0 and frame.location.speed_mps == 11.0


def test_video_offset_shifts_the_track(video: Path, tmp_path: Path) -> None:
    track = write_track(tmp_path / "track.csv")
    frames = list(VideoSource(video, fps=2.0, start=T0, track=track, offset_s=1.5))
    assert frames[0].captured_at == T0  # video time is not moved, only the lookup
    for k, frame in enumerate(frames):
        assert frame.location is not None
        assert frame.location.lat == pytest.approx(31.23 + (0.5 * k + 1.5) * 1e-4, abs=1e-9)
    # Without a start, the video starts where the shifted track does.
    shifted = VideoSource(video, fps=2.0, track=track, offset_s=1.5)
    assert shifted.start == T0 - timedelta(seconds=1.5)


def test_a_track_that_does_not_cover_the_video(video: Path, tmp_path: Path) -> None:
    track = write_track(tmp_path / "track.csv", seconds=6)
    with pytest.raises(SourceError, match="covers") as caught:
        VideoSource(video, fps=2.0, start=T0 + timedelta(seconds=5), track=track)
    assert "track.csv" in str(caught.value) and "dashcam.mp4" in str(caught.value)
    with pytest.raises(SourceError, match="covers"):
        VideoSource(video, start=T0 - timedelta(hours=1), track=track)


def test_a_zero_byte_video(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(SourceError, match=r"empty\.mp4: (not a readable|.*no decodable)"):
        VideoSource(path)


def test_a_text_file_named_mp4(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("these are not the frames you are looking for\n" * 20)
    with pytest.raises(SourceError, match=r"notes\.mp4: (not a readable video|.*no decodable)"):
        VideoSource(path)


def test_a_missing_video(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"gone\.mp4: not found"):
        VideoSource(tmp_path / "gone.mp4")


def test_video_fps_must_be_positive(video: Path) -> None:
    with pytest.raises(SourceError, match="fps must be positive"):
        VideoSource(video, fps=0)


# -- live streams ---------------------------------------------------------------------------

def numbered(n: int) -> npt.NDArray[np.uint8]:
    """A tiny image that carries its serial number (low byte in blue, high byte in green)."""
    image = np.zeros((2, 2, 3), np.uint8)
    image[:, :, 0], image[:, :, 1] = n % 256, n // 256
    return image


class FakeCapture:
    """What ``cv2.VideoCapture`` gives a stream: opened or not, frames, then a failed read."""

    def __init__(self, camera: FakeCamera, opened: bool, frames: int | None) -> None:
        self.camera, self.opened, self.left = camera, opened, frames
        self.released = False

    def isOpened(self) -> bool:
        return self.opened

    def read(self) -> tuple[bool, Any]:
        if self.left is not None:
            if self.left <= 0:
                return False, None
            self.left -= 1
        if self.camera.frame_s:
            time.sleep(self.camera.frame_s)
        image = numbered(self.camera.served)
        self.camera.served += 1
        return True, image

    def release(self) -> None:
        self.released = True


class FakeCamera:
    """An opener: each call plays the next entry of ``script`` (an int: opens and serves that
    many frames, then a read fails; None: serves forever; False: fails to open). After the
    script it fails to open."""

    def __init__(self, script: list[int | bool | None], frame_s: float = 0.0) -> None:
        self.script = list(script)
        self.frame_s = frame_s
        self.served = 0
        self.urls: list[str] = []
        self.captures: list[FakeCapture] = []

    def __call__(self, url: str) -> FakeCapture:
        self.urls.append(url)
        step = self.script.pop(0) if self.script else False
        capture = (FakeCapture(self, False, 0) if step is False
                   else FakeCapture(self, True, None if step is None else int(step)))
        self.captures.append(capture)
        return capture


def stream_thread_alive(source_id: str) -> bool:
    return any(t.name == f"stream {source_id}" and t.is_alive() for t in threading.enumerate())


@pytest.fixture
def streams() -> Iterator[list[StreamSource]]:
    """Sources to stop after the test, pass or fail."""
    started: list[StreamSource] = []
    yield started
    for source in started:
        source.stop()


def serial(frame: Frame) -> int:
    return int(frame.image[0, 0, 0]) + 256 * int(frame.image[0, 0, 1])


@pytest.mark.timeout(10)
def test_stream_reconnects_and_frames_arrive(streams: list[StreamSource]) -> None:
    camera = FakeCamera([False, False, 5, 5])  # two failed opens, 5 frames, drop, 5 frames
    source = StreamSource("rtsp://cam-1/live", source_id="cam-1", buffer=16,
                          backoff_s=(0.01, 0.05), opener=camera)
    streams.append(source)
    frames: list[Frame] = []
    for frame in source:
        frames.append(frame)
        if len(frames) == 10:
            break
    assert [serial(f) for f in frames] == list(range(10))
    assert [f.index for f in frames] == list(range(10))
    assert all(f.source_id == "cam-1" and f.location is None for f in frames)
    assert all(f.captured_at.utcoffset() == timedelta(0) for f in frames)
    assert all(a.captured_at <= b.captured_at for a, b in itertools.pairwise(frames))
    # 2 failed opens + 1 failed read before the second connection served its frames.
    assert source.reconnects >= 3 and source.dropped == 0
    assert camera.urls[:4] == ["rtsp://cam-1/live"] * 4
    source.stop()
    assert not stream_thread_alive("cam-1")
    assert all(c.released for c in camera.captures)


@pytest.mark.timeout(10)
def test_stream_samples_by_clock(streams: list[StreamSource]) -> None:
    ticks = iter(range(1000))
    now = [0.0]

    def ticker() -> float:  # 10 frames a second
        now[0] = next(ticks) / 10
        return now[0]

    def clock() -> datetime:
        return T0 + timedelta(seconds=now[0])

    camera = FakeCamera([20])
    source = StreamSource("rtsp://cam-2", fps=2.0, buffer=16, backoff_s=(0.01, 0.05),
                          opener=camera, clock=clock, ticker=ticker)
    streams.append(source)
    source.start()
    assert wait_for(lambda: source.reconnects >= 1)  # all 20 read and the 21st read failed
    source.stop()
    frames = list(source)  # stopped: iteration drains what is waiting, then ends
    assert [f.captured_at for f in frames] == [T0 + timedelta(seconds=s)
                                               for s in (0.0, 0.5, 1.0, 1.5)]
    assert [serial(f) for f in frames] == [0, 5, 10, 15]


@pytest.mark.timeout(10)
def test_a_full_buffer_drops_the_oldest(streams: list[StreamSource]) -> None:
    camera = FakeCamera([50])
    source = StreamSource("rtsp://cam-3", buffer=4, backoff_s=(0.01, 0.05), opener=camera)
    streams.append(source)
    source.start()  # nobody consumes: the slowest consumer there is
    assert wait_for(lambda: source.reconnects >= 1)
    assert source.dropped == 46
    source.stop()
    frames = list(source)
    assert len(frames) == 4  # never more than `buffer` frames waiting: the newest ones
    assert [serial(f) for f in frames] == [46, 47, 48, 49]


@pytest.mark.timeout(10)
def test_a_slow_consumer_sees_the_present(streams: list[StreamSource]) -> None:
    camera = FakeCamera([None], frame_s=0.001)  # ~1000 frames a second, forever
    source = StreamSource("rtsp://cam-4", buffer=3, backoff_s=(0.01, 0.05), opener=camera)
    streams.append(source)
    seen: list[int] = []
    for frame in source:
        seen.append(serial(frame))
        time.sleep(0.02)  # ~20 frames arrive while we look at one
        if len(seen) == 8:
            break
    assert source.dropped > 0
    assert seen == sorted(set(seen))  # in order, never twice
    assert max(b - a for a, b in itertools.pairwise(seen)) > 1  # skipped the past
    assert camera.served - len(seen) >= source.dropped
    source.stop()
    assert not stream_thread_alive("rtsp://cam-4")


@pytest.mark.timeout(10)
def test_stop_ends_iteration_and_the_thread(streams: list[StreamSource]) -> None:
    camera = FakeCamera([None], frame_s=0.002)
    source = StreamSource("rtsp://cam-5", buffer=4, backoff_s=(0.01, 0.05), opener=camera)
    streams.append(source)
    after_stop = 0
    began = time.monotonic()
    for count, _ in enumerate(source, start=1):
        if count == 3:
            source.stop()
        elif count > 3:
            after_stop += 1
    assert time.monotonic() - began < 2.0
    assert after_stop <= 4  # what was waiting in the buffer, then the end
    assert not stream_thread_alive("rtsp://cam-5")
    assert all(c.released for c in camera.captures)


@pytest.mark.timeout(10)
def test_stop_wakes_a_consumer_waiting_for_a_dead_camera(streams: list[StreamSource]) -> None:
    camera = FakeCamera([])  # never opens
    source = StreamSource("rtsp://cam-6", backoff_s=(0.01, 0.05), opener=camera)
    streams.append(source)
    got: list[Frame] = []
    consumer = threading.Thread(target=lambda: got.extend(source))
    consumer.start()
    assert wait_for(lambda: source.reconnects >= 3)  # backs off and keeps trying
    source.stop()
    consumer.join(timeout=2.0)
    assert not consumer.is_alive()
    assert got == []
    assert not stream_thread_alive("rtsp://cam-6")
    assert all(not c.opened and c.released for c in camera.captures)


def test_read_ahead_keeps_order_and_raises_the_source_error_in_place() -> None:
    def source() -> Iterator[int]:
        yield from range(5)
        raise SourceError("clip.mp4: frame at 2.00 s cannot be decoded")

    seen: list[int] = []
    with pytest.raises(SourceError, match=r"frame at 2\.00 s"):
        for item in read_ahead(source(), depth=2):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]


def test_read_ahead_runs_ahead_of_a_slow_consumer_but_no_further_than_depth() -> None:
    drawn: list[int] = []

    def source() -> Iterator[int]:
        for k in range(10):
            drawn.append(k)
            yield k

    items = read_ahead(source(), depth=3)
    assert next(items) == 0
    assert wait_until(lambda: len(drawn) >= 4)  # 1, 2, 3 wait in the queue; 4 is held
    time.sleep(0.2)
    assert len(drawn) <= 5
    assert list(items) == list(range(1, 10))


def test_stopping_early_closes_the_source_in_its_thread() -> None:
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            yield from itertools.count()
        finally:
            closed.set()  # where a video source releases its capture

    items = read_ahead(source(), depth=2)
    assert [next(items), next(items)] == [0, 1]
    items.close()
    assert closed.wait(5)
    assert not any(t.name == "read-ahead" for t in threading.enumerate())
