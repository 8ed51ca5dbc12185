"""Checks on ultralytics weight files before they are handed to ultralytics."""

from __future__ import annotations

import zipfile
from pathlib import Path


class WeightsError(ValueError):
    """A weights file that is missing or cannot be a PyTorch checkpoint."""


def check_weights(path: Path) -> None:
    """Fail early and clearly on a missing, empty or corrupt ``.pt`` file.

    A torch checkpoint is a zip archive; checking the archive is cheap and catches truncated
    downloads and copies, which torch would otherwise report as an unpickling error.

    Raises:
        WeightsError: naming the file and what is wrong with it.
    """
    if not path.exists():
        raise WeightsError(f"{path}: weights file not found")
    if path.suffix != ".pt":
        raise WeightsError(f"{path}: expected a .pt weights file")
    if path.stat().st_size == 0:
        raise WeightsError(f"{path}: weights file is empty")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({exc})") from None
    if bad is not None:
        raise WeightsError(f"{path}: corrupt PyTorch checkpoint (member {bad!r} fails its CRC)")
