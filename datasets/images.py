"""Reading image files safely: size, hash, and a clear error for bad files."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from streetwatch.models.files import sha256_file  # noqa: F401 (part of this module's API)

# What ultralytics will load as training images (its IMG_FORMATS, less the exotic ones).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})

# EXIF orientations that rotate by 90 degrees: width and height swap once applied.
_TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION = 0x0112


class ImageFileError(ValueError):
    """An image file that is empty, unreadable or truncated."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class ImageInfo:
    """What a dataset records about an image file.

    Attributes:
        width: Width in pixels as displayed (after EXIF orientation), which is what OpenCV
            and ultralytics load and what normalised labels refer to.
        height: Height in pixels, likewise.
        sha256: Hex digest of the file's bytes.
    """

    width: int
    height: int
    sha256: str


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def inspect_image(path: Path) -> ImageInfo:
    """Decode an image fully and return its displayed size and hash.

    Decoding the whole file (not just the header) is what catches truncated files, which
    OpenCV would silently fill with grey.

    Raises:
        ImageFileError: for a missing, zero-byte, unrecognised, corrupt or truncated file.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageFileError(path, f"cannot read file ({exc.strerror})") from exc
    return inspect_image_bytes(data, path)


def inspect_image_bytes(data: bytes, path: Path) -> ImageInfo:
    """Like :func:`inspect_image` for bytes already in memory; ``path`` names them in errors."""
    if not data:
        raise ImageFileError(path, "zero-byte file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(BytesIO(data)) as image:
                image.load()
                width, height = image.size
                orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except UnidentifiedImageError as exc:
        raise ImageFileError(path, "not a recognised image format") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
        # PIL reports truncation as OSError("image file is truncated ...").
        raise ImageFileError(path, f"corrupt or truncated image ({exc})") from exc
    if orientation in _TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    if width < 1 or height < 1:
        raise ImageFileError(path, f"image has no pixels ({width}x{height})")
    return ImageInfo(width=width, height=height, sha256=sha256_bytes(data))
