"""Importers: read a labelled source in a known format and write a streetwatch dataset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from streetwatch.datasets.importers.coco import scan_coco
from streetwatch.datasets.importers.common import (
    ClassMap,
    ImporterError,
    ImportReport,
    SourceScan,
    import_scan,
)
from streetwatch.datasets.importers.cvat import scan_cvat
from streetwatch.datasets.importers.labelme import scan_labelme
from streetwatch.datasets.importers.voc import scan_voc
from streetwatch.datasets.importers.yolo import scan_yolo


def _yolo(source: Path, images_dir: Path | None) -> SourceScan:
    if images_dir is not None:
        raise ImporterError("--images does not apply to YOLO sources: data.yaml names the folders")
    return scan_yolo(source)


SCANNERS: dict[str, Callable[[Path, Path | None], SourceScan]] = {
    "yolo": _yolo,
    "coco": scan_coco,
    "voc": scan_voc,
    "labelme": scan_labelme,
    "cvat": scan_cvat,
}

__all__ = ["SCANNERS", "ClassMap", "ImportReport", "ImporterError", "SourceScan", "import_scan"]
