"""The streetwatch class taxonomy: the one list of classes every layer uses.

Class ids are positions in ``TAXONOMY.classes``; a model card records ``TAXONOMY.version`` so a
model trained on one list of classes is never served against another.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ClassInfo:
    """One detector class.

    Attributes:
        id: Index in the detector's output.
        key: Stable machine name, used in configs, labels and the API.
        name_en: English display name.
        name_zh: Chinese display name (zh-CN), as city staff call it.
        color_bgr: Colour for drawing boxes, OpenCV channel order.
        dispatch_codes: Default dispatch category codes (GB/T 30428.2 event classes as city
            platforms implement them); the first is used unless configuration says otherwise.
            Empty when the class has no national code and needs a local extension code.
        can_be_case: Whether a detection of this class can become a case by itself.
            ``vehicle`` is context: it becomes ``illegal_parking`` only through a zone rule.
        description: What counts, and the hard negatives that do not.
    """

    id: int
    key: str
    name_en: str
    name_zh: str
    color_bgr: tuple[int, int, int]
    dispatch_codes: tuple[str, ...]
    can_be_case: bool
    description: str

    @property
    def color_hex(self) -> str:
        """The drawing colour as ``#rrggbb`` for web pages and plots."""
        b, g, r = self.color_bgr
        return f"#{r:02x}{g:02x}{b:02x}"


@dataclass(frozen=True)
class Taxonomy:
    """An ordered, versioned list of classes."""

    version: str
    classes: tuple[ClassInfo, ...]

    def __post_init__(self) -> None:
        for position, info in enumerate(self.classes):
            if info.id != position:
                raise ValueError(
                    f"class {info.key!r} has id {info.id}, expected {position}: ids are positions"
                )
        keys = [c.key for c in self.classes]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate class keys in taxonomy {self.version}: {keys}")

    def __len__(self) -> int:
        return len(self.classes)

    def __iter__(self) -> Iterator[ClassInfo]:
        return iter(self.classes)

    @property
    def keys(self) -> list[str]:
        """Class keys in id order (the ``names`` list of a YOLO data.yaml)."""
        return [c.key for c in self.classes]

    @property
    def names(self) -> dict[int, str]:
        """``{id: key}``, the form ultralytics and ONNX metadata use."""
        return {c.id: c.key for c in self.classes}

    def by_key(self, key: str) -> ClassInfo:
        """The class with this key.

        Raises:
            KeyError: naming the unknown key and listing the valid ones.
        """
        for info in self.classes:
            if info.key == key:
                return info
        raise KeyError(f"unknown class {key!r}; valid classes: {', '.join(self.keys)}")

    def by_id(self, class_id: int) -> ClassInfo:
        """The class with this id.

        Raises:
            KeyError: when the id is out of range.
        """
        if not 0 <= class_id < len(self.classes):
            raise KeyError(f"class id {class_id} out of range 0..{len(self.classes) - 1}")
        return self.classes[class_id]


TAXONOMY = Taxonomy(
    version="1",
    classes=(
        ClassInfo(
            id=0,
            key="street_vending",
            name_en="Street vending",
            name_zh="占道经营",
            color_bgr=(0, 140, 255),
            dispatch_codes=("0501", "0504"),
            can_be_case=True,
            description="Stalls, carts, tricycles, goods laid out on the sidewalk or "
            "carriageway. Not: shops behind their own frontage, people walking with bags.",
        ),
        ClassInfo(
            id=1,
            key="illegal_parking",
            name_en="Illegal parking",
            name_zh="机动车乱停放",
            color_bgr=(0, 0, 230),
            dispatch_codes=("0505",),
            can_be_case=True,
            description="A motor vehicle parked on a sidewalk, crossing, blind path or marked "
            "no-parking area. Not: vehicles driving, vehicles in marked bays.",
        ),
        ClassInfo(
            id=2,
            key="ground_lock",
            name_en="Ground lock",
            name_zh="私装地锁",
            color_bgr=(200, 0, 200),
            dispatch_codes=(),
            can_be_case=True,
            description="Privately installed parking locks, folding arches, pins on parking "
            "spaces or sidewalks. Not: official bollards in a row, fire hydrants.",
        ),
        ClassInfo(
            id=3,
            key="cable_clutter",
            name_en="Overhead cable clutter",
            name_zh="架空线缆乱拉乱挂",
            color_bgr=(255, 160, 0),
            dispatch_codes=("0408",),
            can_be_case=True,
            description="Tangled, sagging, bundled or hanging overhead wires, 'spider webs' "
            "on poles. Not: a few neat parallel lines on a proper pole.",
        ),
        ClassInfo(
            id=4,
            key="unauthorized_ad",
            name_en="Unauthorized small ad",
            name_zh="非法小广告",
            color_bgr=(0, 220, 220),
            dispatch_codes=("0201", "0202"),
            can_be_case=True,
            description="Posters and small ads stuck on walls, poles, boxes, windows; "
            "unapproved banners. Not: lawful shop signs, traffic signs.",
        ),
        ClassInfo(
            id=5,
            key="vehicle",
            name_en="Vehicle",
            name_zh="车辆",
            color_bgr=(160, 160, 160),
            dispatch_codes=(),
            can_be_case=False,
            description="Any other motor vehicle: context for the parking rules, never a "
            "case by itself.",
        ),
    ),
)
