"""Read "CVAT for images 1.1" XML (``annotations.xml``).

Boxes and polygons (as their extent) become boxes; polylines, points and tags are reported.
Classes are the labels declared in ``<meta>``. A project export's ``subset`` attribute
(Train / Validation / Test) gives the split. Frames of a video ("interpolation") task form
one group, so they never straddle splits.
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
    split_from_name,
)

_NOT_BOXES = ("polyline", "points", "cuboid", "skeleton", "ellipse", "mask", "tag")


def _float(node: Element, key: str) -> float:
    return float(node.attrib[key])


def _polygon_extent(points: str) -> tuple[float, float, float, float]:
    pairs = [tuple(float(v) for v in p.split(",")) for p in points.split(";") if p]
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    return min(xs), min(ys), max(xs), max(ys)


def scan_cvat(source: Path, images_dir: Path | None = None) -> SourceScan:
    """Read a CVAT 1.1 XML file, or ``annotations.xml`` in a folder.

    Raises:
        ImporterError: for a missing or unreadable XML file.
    """
    xml = source / "annotations.xml" if source.is_dir() else source
    try:
        root = ElementTree.parse(xml).getroot()
    except FileNotFoundError:
        raise ImporterError(f"{xml}: not found") from None
    except (ElementTree.ParseError, DefusedXmlException) as exc:
        raise ImporterError(f"{xml}: unreadable XML ({exc})") from None
    if root is None or root.tag != "annotations":
        found = "nothing" if root is None else f"<{root.tag}>"
        raise ImporterError(f"{xml}: root element is {found}, expected <annotations>")
    base = xml.parent
    if images_dir is None:
        images_dir = base / "images" if (base / "images").is_dir() else base
    declared = [_label.text.strip() for _label in root.iterfind(".//meta//labels/label/name")
                if _label.text]
    video_task = (root.findtext(".//meta/task/mode") or "").strip() == "interpolation"
    task = (root.findtext(".//meta/task/name") or xml.stem).strip()
    scan = SourceScan("cvat", source, list(dict.fromkeys(declared)), [])
    for image_node in root.iter("image"):
        name = image_node.attrib.get("name", "")
        where = f"{xml.name}: image {name!r}"
        try:
            size: tuple[int, int] | None = (int(image_node.attrib["width"]),
                                            int(image_node.attrib["height"]))
        except (KeyError, ValueError):
            size = None
        image = SourceImage(
            relative=name,
            split=split_from_name(image_node.attrib.get("subset", "")) or "train",
            path=images_dir / name,
            declared_size=size,
            group=f"cvat-task:{task}" if video_task else None,
        )
        for index, shape in enumerate(image_node):
            at = f"{where} <{shape.tag}>[{index}]"
            label = shape.attrib.get("label", "")
            if shape.tag in _NOT_BOXES:
                scan.problems.append((at, f"<{shape.tag}> ({label}) is not a box"))
                continue
            try:
                if shape.tag == "box":
                    xyxy = tuple(_float(shape, k) for k in ("xtl", "ytl", "xbr", "ybr"))
                elif shape.tag == "polygon":
                    xyxy = _polygon_extent(shape.attrib["points"])
                else:
                    scan.problems.append((at, f"unknown shape <{shape.tag}>"))
                    continue
            except (KeyError, ValueError, IndexError):
                scan.problems.append((at, "coordinates missing or not numbers"))
                continue
            if label not in scan.classes:
                scan.classes.append(label)
            image.boxes.append(SourceBox(label, xyxy, normalized=False, where=at))  # type: ignore[arg-type]
        scan.images.append(image)
    return scan
