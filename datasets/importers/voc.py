"""Read Pascal VOC XML annotations (``Annotations/*.xml`` with ``JPEGImages/``, or XML files
beside their images as LabelImg writes them).

Splits come from ``ImageSets/Main/{train,val,test}.txt`` when present. VOC pixel
coordinates are 1-based; they are shifted to 0-based edges.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from streetwatch.datasets.importers.common import (
    ImporterError,
    SourceBox,
    SourceImage,
    SourceScan,
)


def _text(node: Element, path: str) -> str | None:
    found = node.find(path)
    return found.text.strip() if found is not None and found.text else None


def _split_lists(root: Path) -> dict[str, str]:
    splits: dict[str, str] = {}
    main = root / "ImageSets" / "Main"
    for split in ("train", "val", "test"):
        listing = main / f"{split}.txt"
        if listing.exists():
            for line in listing.read_text(encoding="utf-8").split("\n"):
                if line.strip():
                    splits[line.split()[0]] = split
    return splits


def scan_voc(source: Path, images_dir: Path | None = None) -> SourceScan:
    """Read a VOC folder.

    Raises:
        ImporterError: when there are no XML files.
    """
    annotations = source / "Annotations"
    xml_dir = annotations if annotations.is_dir() else source
    files = sorted(xml_dir.rglob("*.xml"))
    if not files:
        raise ImporterError(f"{source}: no VOC .xml files in it or in Annotations/")
    if images_dir is None:
        images_dir = source / "JPEGImages" if (source / "JPEGImages").is_dir() else None
    splits = _split_lists(source)
    scan = SourceScan("voc", source, [], [])
    for path in files:
        where = path.relative_to(source).as_posix()
        try:
            tree = ElementTree.parse(path).getroot()
        except (ElementTree.ParseError, DefusedXmlException) as exc:
            scan.problems.append((where, f"unreadable XML ({exc}); image not imported"))
            continue
        if tree is None or tree.tag != "annotation":
            scan.problems.append((where, "not a VOC <annotation> file; not imported"))
            continue
        filename = _text(tree, "filename") or f"{path.stem}.jpg"
        folder = images_dir if images_dir is not None else path.parent
        image_path = folder / filename
        try:
            size = (round(float(_text(tree, "size/width") or 0)),
                    round(float(_text(tree, "size/height") or 0)))
        except ValueError:
            scan.problems.append((where, "<size> is not numeric; image size taken from the file"))
            size = (0, 0)
        declared = size if size[0] > 0 and size[1] > 0 else None
        image = SourceImage(
            relative=image_path.relative_to(source).as_posix()
            if image_path.is_relative_to(source) else filename,
            split=splits.get(path.stem, "train"),
            path=image_path,
            declared_size=declared,
        )
        for index, obj in enumerate(tree.findall("object")):
            at = f"{where}: object[{index}]"
            label = _text(obj, "name")
            if label is None:
                scan.problems.append((at, "object without <name>"))
                continue
            try:
                x1, y1, x2, y2 = (float(_text(obj, f"bndbox/{k}") or "nan")
                                  for k in ("xmin", "ymin", "xmax", "ymax"))
            except ValueError:
                scan.problems.append((at, "bndbox coordinates are not numbers"))
                continue
            if label not in scan.classes:
                scan.classes.append(label)
            image.boxes.append(SourceBox(label, (x1 - 1, y1 - 1, x2, y2), False, at))
        scan.images.append(image)
    return scan
