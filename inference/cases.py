"""Case candidates: a violation with its evidence, place and provenance, deduplicated.

A track yields at most one candidate. A new one merges into an open candidate of the same
category when it is the same problem seen again, within ``merge_window_s``: on one fixed
camera when the boxes overlap by ``merge_iou``; from a moving camera (dashcam, photos)
when within ``merge_m`` metres by GPS of any place the candidate already holds (its
``places``: a row of posters along a street is one case, each poster on the map). Shots
without a place never merge (:func:`same_problem`; the service applies it again to the
cases it has stored, so another upload of the same problem joins its case). Evidence
files are stored by content (``evidence/<sha256>.jpg``), so a frame shared by several cases
is stored once and any change to a file is detectable.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import shapely
from pydantic import BaseModel, ConfigDict

from streetwatch.inference.boxes import box_iou
from streetwatch.inference.clips import ClipRecorder
from streetwatch.inference.rules import Firing
from streetwatch.inference.types import BGRImage, Frame, Location
from streetwatch.models.taxonomy import TAXONOMY

CASE_NAMESPACE = uuid.UUID("6f1c7a52-3d2e-4a8e-9a51-2f4b0f6c9e10")


class GridError(ValueError):
    """A grid GeoJSON that cannot be used."""


class Evidence(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["annotated", "crop", "frame", "clip"]
    path: str
    sha256: str


class Place(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lat: float
    lon: float


class ModelRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str
    sha256: str | None


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["camera", "vehicle", "upload"]
    id: str


class CaseCandidate(BaseModel):
    """One suspected violation, awaiting review."""

    model_config = ConfigDict(extra="forbid")

    id: str
    category: str
    dispatch_code: str | None
    source: Source
    first_seen: datetime
    last_seen: datetime
    location: Place | None
    grid_cell: str | None
    box: tuple[float, float, float, float]
    frame_size: tuple[int, int]
    confidence: float
    detected: str | None = None  # the detector's class, when a rule made it another category
    evidence: list[Evidence]
    model: ModelRef
    rule: str
    dedup_key: str
    tracks: list[int]
    # Where each of its tracks was placed, its own first: from a moving camera a case holds
    # every sighting of its category within ``merge_m`` of it (a row of posters is one case,
    # and each poster is on the map).
    places: list[Place] = []
    status: Literal["pending_review"] = "pending_review"

    @property
    def frame(self) -> Evidence | None:
        """Its evidence frame: the whole picture of the best sighting."""
        return next((e for e in self.evidence if e.kind == "frame"), None)


class GridIndex:
    """Grid cells (单元网格) from a GeoJSON FeatureCollection of polygons; a cell's id is
    its ``property`` (default ``grid_id``)."""

    def __init__(self, path: Path, property_name: str = "grid_id") -> None:
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
            features = content["features"]
        except FileNotFoundError:
            raise GridError(f"{path}: grid file not found") from None
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise GridError(f"{path}: not a GeoJSON FeatureCollection ({exc})") from None
        self.ids: list[str] = []
        shapes = []
        for i, feature in enumerate(features):
            try:
                shapes.append(shapely.geometry.shape(feature["geometry"]))
                self.ids.append(str(feature["properties"][property_name]))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise GridError(f"{path}: features[{i}]: needs a polygon geometry and "
                                f"properties.{property_name} ({exc})") from None
        self._tree = shapely.STRtree(shapes)
        self._shapes = shapes

    def cell(self, lat: float, lon: float) -> str | None:
        point = shapely.Point(lon, lat)  # GeoJSON is lon, lat
        for index in self._tree.query(point, predicate="intersects"):
            return self.ids[int(index)]
        return None


MERGE_M = 30.0  # a moving camera's sightings this close are one problem
MERGE_IOU = 0.3  # a fixed camera's, when their boxes overlap this much
MERGE_WINDOW_S = 3600.0  # and either only when seen within this long of each other


def same_problem(*, fixed_view: bool, box: tuple[float, ...], place: Place | None,
                 case_box: Sequence[float], case_places: Sequence[Place],
                 merge_m: float = MERGE_M, merge_iou: float = MERGE_IOU) -> bool:
    """Whether a sighting (its box, and where it was seen from) is a case's problem again
    (the category and time are the caller's to check). One camera, one view: the same
    place is the same pixels. A moving camera: by GPS, to any of the case's places (a row
    of posters along a street is one case); shots without a place never merge."""
    if fixed_view:
        return box_iou(case_box, box) >= merge_iou
    return place is not None and any(distance_m(place, p) <= merge_m for p in case_places)


def distance_m(a: Place, b: Place) -> float:
    """Haversine distance in metres."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(h))


class EvidenceStore:
    """JPEG files named by their sha256 under ``root``. The last image stored is
    remembered by identity, so a frame with several cases in it is encoded once."""

    def __init__(self, root: Path, quality: int = 90) -> None:
        self.root = root
        self.quality = quality
        self._last: tuple[BGRImage, Evidence] | None = None  # holds the image: ids stay valid

    def put(self, image: BGRImage, kind: Literal["annotated", "crop", "frame"]) -> Evidence:
        if self._last is not None and self._last[0] is image:
            return self._last[1].model_copy(update={"kind": kind})
        stored = self._store(image, kind)
        self._last = (image, stored)
        return stored

    def put_frame(self, frame: Frame) -> Evidence:
        """A frame's whole picture: its original file's bytes when it has one (see
        :class:`Frame`), else its pixels encoded."""
        if frame.original is not None:
            return self._write(frame.original.read_bytes(), ".jpg", "frame",
                               linkable=frame.original)
        return self.put(frame.image, "frame")

    def put_clip(self, data: bytes) -> Evidence:
        """A WebM clip (see ``inference.clips``)."""
        return self._write(data, ".webm", "clip")

    def _store(self, image: BGRImage, kind: Literal["annotated", "crop", "frame"]) -> Evidence:
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise ValueError("JPEG encoding of evidence failed")
        return self._write(encoded.tobytes(), ".jpg", kind)

    def _write(self, data: bytes, suffix: str,
               kind: Literal["annotated", "crop", "frame", "clip"],
               linkable: Path | None = None) -> Evidence:
        """Store ``data`` under its hash; when it is the whole of an immutable file
        (``linkable``, e.g. an upload in the service's content-addressed store), as a hard
        link to that file where the file system allows: one copy on disk, and either name
        may be deleted (retention prunes uploads) without touching the other."""
        import hashlib

        digest = hashlib.sha256(data).hexdigest()
        path = self.root / f"{digest}{suffix}"
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")  # two writers never share one
            if linkable is not None:
                with suppress(OSError):  # another file system, or links not allowed: a copy
                    os.link(linkable, tmp)
            if not tmp.exists():
                tmp.write_bytes(data)
            tmp.replace(path)
        return Evidence(kind=kind, path=f"{self.root.name}/{path.name}", sha256=digest)


def draw_box(image: BGRImage, box: tuple[float, ...], category: str,
             confidence: float) -> BGRImage:
    """A copy of ``image`` with the box and its label drawn in the class colour."""
    out = image.copy()
    colour = TAXONOMY.by_key(category).color_bgr
    x1, y1, x2, y2 = (round(v) for v in box)
    thickness = max(2, round(max(image.shape[:2]) / 400))
    cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
    label = f"{category} {confidence:.2f}"
    scale = max(0.5, max(image.shape[:2]) / 1600)
    (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    top = max(0, y1 - th - 6)
    cv2.rectangle(out, (x1, top), (x1 + tw + 6, top + th + 6), colour, -1)
    cv2.putText(out, label, (x1 + 3, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), 1, cv2.LINE_AA)
    return out


def crop(image: BGRImage, box: tuple[float, ...], margin: float = 0.25) -> BGRImage:
    """The box with a margin of context around it."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin + 8, (y2 - y1) * margin + 8
    left, top = max(0, math.floor(x1 - mx)), max(0, math.floor(y1 - my))
    right, bottom = min(w, math.ceil(x2 + mx)), min(h, math.ceil(y2 + my))
    return np.ascontiguousarray(image[top:bottom, left:right])


def box_evidence(store: EvidenceStore, image: BGRImage, box: tuple[float, ...],
                 category: str, confidence: float, *, annotate: bool = True) -> list[Evidence]:
    """The evidence of one box on a picture: with ``annotate``, the whole picture with the
    box and its label drawn, and the crop of the box with some context around it."""
    drawn = [store.put(draw_box(image, box, category, confidence), "annotated")] \
        if annotate else []
    return [*drawn, store.put(crop(image, box), "crop")]


@dataclass
class CaseBuilder:
    """Turns firings into candidates, merging repeats (see the module docstring)."""

    evidence: EvidenceStore
    model: ModelRef
    source: Source
    grid: GridIndex | None = None
    fixed_location: Place | None = None
    merge_m: float = MERGE_M
    merge_iou: float = MERGE_IOU
    merge_window_s: float = MERGE_WINDOW_S
    run: str = ""  # names the footage (a job id): two uploads never share a case id
    clips: ClipRecorder | None = None  # when set, each new case gets a short clip too
    # A sighting that matches two open candidates folds the newer into the older; off where
    # candidates are published as they are made (a stream's are stored at once).
    fold: bool = True
    # Whether each candidate gets the whole frame with its box drawn. The service leaves it
    # out: most candidates are rejected or merged, its reviewer page draws the box over the
    # frame, and a confirmed case gets its drawing then, of the box and class as reviewed.
    annotate: bool = True
    candidates: list[CaseCandidate] = field(default_factory=list)

    def see(self, frame: Frame) -> None:
        """Every frame of the footage, in order (for clips)."""
        if self.clips is not None:
            self.clips.see(frame)

    def add(self, firing: Firing, best: Frame,
            nearest: Location | None = None) -> CaseCandidate | None:
        """Record a firing, with the frame of its evidence sighting and, from a moving
        camera, where it stood nearest the object: the case's place, instead of where the
        best sighting was taken.

        Returns:
            The new candidate, or None when it merged into an open one.
        """
        track, category = firing.track, firing.category
        observation = firing.evidence
        box = tuple(float(v) for v in observation.xyxy)
        place = self.fixed_location
        seen_from = nearest or best.location
        if place is None and seen_from is not None:
            place = Place(lat=seen_from.lat, lon=seen_from.lon)
        matches = self._open_matches(category, place, box, track.first_seen)
        if matches:
            open_case, *joined = matches
            open_case.last_seen = max(open_case.last_seen, track.last_seen)
            open_case.tracks.append(track.tracker_id)
            if place is not None and place not in open_case.places:
                open_case.places.append(place)
            if self.fold:
                for other in joined:
                    self._fold(other, open_case)
            return None
        key = (f"{self.run + ':' if self.run else ''}{self.source.kind}:{self.source.id}:"
               f"{category}:{track.first_seen.isoformat()}:{track.tracker_id}")
        evidence = [*box_evidence(self.evidence, best.image, box, category,
                                  observation.confidence, annotate=self.annotate),
                    self.evidence.put_frame(best)]
        clip = self.clips.clip(track, category) if self.clips is not None else None
        if clip is not None:
            evidence.append(self.evidence.put_clip(clip))
        codes = TAXONOMY.by_key(category).dispatch_codes
        candidate = CaseCandidate(
            id=str(uuid.uuid5(CASE_NAMESPACE, key)), category=category,
            dispatch_code=codes[0] if codes else None, source=self.source,
            first_seen=track.first_seen, last_seen=track.last_seen, location=place,
            grid_cell=self.grid.cell(place.lat, place.lon) if self.grid and place else None,
            box=(box[0], box[1], box[2], box[3]),
            frame_size=(best.image.shape[1], best.image.shape[0]),
            confidence=round(observation.confidence, 4),
            detected=TAXONOMY.by_id(observation.class_id).key, evidence=evidence, model=self.model,
            rule=firing.rule, dedup_key=key, tracks=[track.tracker_id],
            places=[place] if place is not None else [])
        self.candidates.append(candidate)
        return candidate

    def _open_matches(self, category: str, place: Place | None, box: tuple[float, ...],
                      seen: datetime) -> list[CaseCandidate]:
        """The open candidates the new sighting is the same problem as, oldest first."""
        window = timedelta(seconds=self.merge_window_s)
        fixed_view = self.source.kind == "camera" or self.fixed_location is not None
        found = []
        for case in self.candidates:
            if case.category != category or seen - case.last_seen > window:
                continue
            if same_problem(fixed_view=fixed_view, box=box, place=place, case_box=case.box,
                            case_places=case.places or ([case.location] if case.location
                                                        else []),
                            merge_m=self.merge_m, merge_iou=self.merge_iou):
                found.append(case)
        return found

    def _fold(self, other: CaseCandidate, into: CaseCandidate) -> None:
        """A sighting that joins two open candidates makes them one (tracks end out of
        order, so two rows of posters can grow towards each other)."""
        into.first_seen = min(into.first_seen, other.first_seen)
        into.last_seen = max(into.last_seen, other.last_seen)
        into.tracks += [t for t in other.tracks if t not in into.tracks]
        into.places += [p for p in other.places if p not in into.places]
        self.candidates.remove(other)

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for case in self.candidates:
            counts[case.category] = counts.get(case.category, 0) + 1
        return counts
