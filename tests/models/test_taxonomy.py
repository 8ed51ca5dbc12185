from __future__ import annotations

import pytest

from streetwatch.models.taxonomy import TAXONOMY, ClassInfo, Taxonomy


def test_six_classes_in_design_order() -> None:
    assert TAXONOMY.keys == [
        "street_vending", "illegal_parking", "ground_lock", "cable_clutter",
        "unauthorized_ad", "vehicle",
    ]
    assert TAXONOMY.names == dict(enumerate(TAXONOMY.keys))
    assert TAXONOMY.version


def test_only_vehicle_is_context() -> None:
    assert [c.key for c in TAXONOMY if not c.can_be_case] == ["vehicle"]


def test_dispatch_codes_follow_gbt_30428() -> None:
    assert TAXONOMY.by_key("street_vending").dispatch_codes == ("0501", "0504")
    assert TAXONOMY.by_key("illegal_parking").dispatch_codes == ("0505",)
    assert TAXONOMY.by_key("unauthorized_ad").dispatch_codes[0] == "0201"
    assert TAXONOMY.by_key("cable_clutter").dispatch_codes == ("0408",)
    # No national code: a city configures a local extension code.
    assert TAXONOMY.by_key("ground_lock").dispatch_codes == ()


def test_every_class_has_names_and_a_colour() -> None:
    for info in TAXONOMY:
        assert info.name_en and info.name_zh and info.description
        assert all(0 <= v <= 255 for v in info.color_bgr)
        assert info.color_hex.startswith("#") and len(info.color_hex) == 7


def test_lookup_errors_name_the_problem() -> None:
    with pytest.raises(KeyError, match=r"unknown class 'parking'.*illegal_parking"):
        TAXONOMY.by_key("parking")
    with pytest.raises(KeyError, match=r"class id 6 out of range 0\.\.5"):
        TAXONOMY.by_id(6)


def test_ids_must_be_positions() -> None:
    bad = ClassInfo(1, "x", "x", "x", (0, 0, 0), (), True, "")
    with pytest.raises(ValueError, match="has id 1, expected 0"):
        Taxonomy("t", (bad,))
