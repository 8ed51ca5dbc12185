"""The model registry and ``streetwatch models``, with a few bytes standing in for models."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from streetwatch.models.files import sha256_file
from streetwatch.models.registry import (
    ClassMetrics,
    Evaluation,
    ModelCard,
    Registry,
    RegistryError,
    default_registry_root,
)
from streetwatch.models.taxonomy import TAXONOMY
from streetwatch.service.cli import main

KEY = "synth-test/test"
FP = "f" * 64
BASE_AP50 = 0.60
Add = Callable[..., ModelCard]


def make_card(ref: str = "a:1", classes: list[str] | None = None) -> ModelCard:
    name, version = ref.split(":")
    return ModelCard(name=name, version=version, created_at=datetime.now(UTC),
                     taxonomy_version=TAXONOMY.version,
                     classes=TAXONOMY.keys if classes is None else classes,
                     imgsz=64, artefacts={})


def metrics(ap50: float) -> ClassMetrics:
    return ClassMetrics(precision=0.5, recall=0.5, ap50=ap50, ap50_95=ap50 / 2, instances=10)


def evaluation(fingerprint: str = FP, **ap50: float) -> Evaluation:
    """Every class at BASE_AP50 except those named in ``ap50``."""
    classes = {key: metrics(ap50.get(key, BASE_AP50)) for key in TAXONOMY.keys}
    return Evaluation(data="/data/synth-test", fingerprint=fingerprint, split="test", images=8,
                      artefact="onnx", classes=classes, all=metrics(BASE_AP50),
                      evaluated_at=datetime.now(UTC))


def run(reg: Registry, *args: str) -> Result:
    """``streetwatch models ARGS --registry ROOT``, as a user types it."""
    return CliRunner().invoke(main, ["models", *args, "--registry", str(reg.root)])


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    src = tmp_path / "build"
    src.mkdir()
    (src / "best.onnx").write_bytes(b"onnx-model")
    (src / "best.int8.onnx").write_bytes(b"int8")
    return {"onnx": src / "best.onnx", "int8": src / "best.int8.onnx"}


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "registry")


@pytest.fixture
def a1(reg: Registry, files: dict[str, Path]) -> ModelCard:
    """a:1, registered with an onnx and an int8 artefact."""
    return reg.register(make_card(), files)


@pytest.fixture
def add(reg: Registry, files: dict[str, Path]) -> Add:
    """``add("a:2", street_vending=0.57)``: register a model evaluated on KEY."""
    def add(ref: str, fingerprint: str = FP, **ap50: float) -> ModelCard:
        reg.register(make_card(ref), files)
        return reg.add_evaluation(ref, KEY, evaluation(fingerprint, **ap50))
    return add


@pytest.fixture
def promoted(add: Add, reg: Registry) -> str:
    """a:1 evaluated at BASE_AP50 everywhere, promoted."""
    add("a:1")
    reg.promote("a:1", by="test")
    return "a:1"


# -- registering ---------------------------------------------------------------------------

def test_register_records_hash_and_size_of_each_artefact(
        reg: Registry, files: dict[str, Path], a1: ModelCard) -> None:
    on_disk = json.loads(reg.card_path("a:1").read_text(encoding="utf-8"))
    assert set(on_disk["artefacts"]) == {"onnx", "int8"}
    for kind, source in files.items():
        entry = on_disk["artefacts"][kind]
        assert entry["sha256"] == sha256_file(source)
        assert entry["bytes"] == source.stat().st_size
        assert (reg.card_path("a:1").parent / entry["file"]).read_bytes() == source.read_bytes()
    assert on_disk["classes"] == TAXONOMY.keys


def test_list_and_show_a_registered_model(reg: Registry, a1: ModelCard) -> None:
    listed = run(reg, "list")
    assert listed.exit_code == 0, listed.output
    assert "a:1" in listed.output and "int8,onnx" in listed.output
    shown = run(reg, "show", "a:1")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["name"] == "a"


def test_a_version_is_registered_once(reg: Registry, files: dict[str, Path], a1: ModelCard) -> None:
    files["onnx"].write_bytes(b"a different model")
    with pytest.raises(RegistryError, match="already registered"):
        reg.register(make_card(), files)
    assert reg.card("a:1").artefacts == a1.artefacts
    assert reg.verify("a:1") == []
    assert list(reg.root.glob("a/.*")) == []  # no staging folder left


@pytest.mark.parametrize(("kinds", "classes", "message"), [
    ({"onnx": "nowhere.onnx"}, TAXONOMY.keys, "not found"),
    ({"tflite": "best.onnx"}, TAXONOMY.keys, "unknown artefact kind"),
    ({"onnx": "best.onnx"}, TAXONOMY.keys[::-1], "not the taxonomy"),
    ({}, TAXONOMY.keys, "nothing to register"),
])
def test_a_bad_registration_leaves_nothing(
        reg: Registry, files: dict[str, Path],
        kinds: dict[str, str], classes: list[str], message: str) -> None:
    build = files["onnx"].parent
    with pytest.raises(RegistryError, match=message):
        reg.register(make_card(classes=classes), {k: build / f for k, f in kinds.items()})
    assert list(reg.root.rglob("*")) == []


def test_a_failed_copy_removes_the_staging_folder(
        reg: Registry, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(src: Path, dst: Path) -> None:
        raise OSError("no space left on device")

    monkeypatch.setattr("streetwatch.models.registry.shutil.copyfile", full_disk)
    with pytest.raises(OSError, match="no space"):
        reg.register(make_card(), files)
    assert list(reg.root.rglob("*")) == [reg.root / "a"]


# -- reading and verifying -----------------------------------------------------------------

def test_verify_an_intact_model(reg: Registry, a1: ModelCard) -> None:
    result = run(reg, "verify")
    assert result.exit_code == 0, result.output
    assert "a:1: ok" in result.output


def test_verify_reports_a_changed_byte(reg: Registry, a1: ModelCard) -> None:
    path = reg.artefact_path(a1, "int8")
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    result = run(reg, "verify", "a:1")
    assert result.exit_code != 0
    assert str(path) in result.output and "sha256" in result.output
    assert "1 model(s) failed" in result.output


def test_verify_reports_a_missing_artefact(reg: Registry, a1: ModelCard) -> None:
    reg.artefact_path(a1, "onnx").unlink()
    result = run(reg, "verify")
    assert result.exit_code != 0
    assert "missing (onnx)" in result.output


def test_a_bad_card_field_names_the_file_and_field(reg: Registry, a1: ModelCard) -> None:
    path = reg.card_path("a:1")
    card = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**card, "imgsz": "big"}), encoding="utf-8")
    with pytest.raises(RegistryError, match="imgsz") as caught:
        reg.card("a:1")
    assert str(path) in str(caught.value)
    result = run(reg, "show", "a:1")
    assert result.exit_code != 0 and "'imgsz'" in result.output


def test_show_defaults_to_the_promoted_model(reg: Registry, promoted: str) -> None:
    result = run(reg, "show")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["version"] == "1"
    assert "* a:1" in run(reg, "list").output


def test_show_without_a_promoted_model_says_so(reg: Registry, a1: ModelCard) -> None:
    result = run(reg, "show")
    assert result.exit_code != 0
    assert "no model is promoted" in result.output


def test_registry_root_comes_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREETWATCH_REGISTRY", str(tmp_path))
    assert default_registry_root() == tmp_path
    assert f"no models in {tmp_path}" in CliRunner().invoke(main, ["models", "list"]).output


# -- promoting -----------------------------------------------------------------------------

def test_the_first_promotion_is_allowed(
        reg: Registry, add: Add, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGNAME", "tester")
    add("a:1")
    result = run(reg, "promote", "a:1")
    assert result.exit_code == 0, result.output
    assert reg.promoted() == "a:1"
    assert reg.history()[-1] | {"at": ""} == {"model": "a:1", "at": "", "by": "tester",
                                              "forced": "False"}


def test_a_class_regression_blocks_promotion(reg: Registry, add: Add, promoted: str) -> None:
    add("a:2", illegal_parking=BASE_AP50 - 0.03)
    result = run(reg, "promote", "a:2")
    assert result.exit_code != 0
    assert "illegal_parking AP50 0.570 is 0.030 below" in result.output
    assert "--force" in result.output
    assert reg.promoted() == "a:1"


def test_force_overrides_the_gate_and_is_recorded(reg: Registry, add: Add, promoted: str) -> None:
    add("a:2", illegal_parking=BASE_AP50 - 0.03)
    result = run(reg, "promote", "a:2", "--force")
    assert result.exit_code == 0, result.output
    assert "forced past" in result.stderr and "illegal_parking" in result.stderr
    assert reg.promoted() == "a:2"
    assert [h["forced"] for h in reg.history()] == ["False", "True"]


def test_a_drop_within_tolerance_passes(reg: Registry, add: Add, promoted: str) -> None:
    add("a:2", illegal_parking=BASE_AP50 - 0.015)
    assert reg.promote("a:2", by="test") == []
    assert reg.promoted() == "a:2"


def test_models_scored_on_different_data_are_not_compared(
        reg: Registry, add: Add, promoted: str) -> None:
    add("a:2", fingerprint="0" * 64)
    result = run(reg, "promote", "a:2")
    assert result.exit_code != 0
    assert "share no evaluation" in result.output


def test_a_model_failing_verification_is_never_promoted(
        reg: Registry, add: Add, promoted: str) -> None:
    card = add("a:2")
    reg.artefact_path(card, "onnx").write_bytes(b"tampered")
    result = run(reg, "promote", "a:2", "--force")
    assert result.exit_code != 0
    assert "fails verification" in result.output
    assert reg.promoted() == "a:1"


# -- what a crash, a hand edit or a bad name leaves -------------------------------------------

def test_staging_left_by_a_killed_register_is_not_a_model(reg: Registry, a1: ModelCard) -> None:
    leftover = reg.root / "a" / ".2.abc123"
    leftover.mkdir()
    (leftover / "card.json").write_text(reg.card_path("a:1").read_text())
    assert [c.ref for c in reg.cards()] == ["a:1"]


def test_a_card_must_name_its_own_folder(reg: Registry, a1: ModelCard) -> None:
    moved = reg.root / "a" / "3"
    reg.card_path("a:1").parent.rename(moved)
    with pytest.raises(RegistryError, match="the card names a:1, but its folder is a:3"):
        reg.card("a:3")


@pytest.mark.parametrize("ref", ["../../x:y", "a:", "A:1", "a:1/../2"])
def test_bad_model_names_are_refused(reg: Registry, ref: str) -> None:
    with pytest.raises(RegistryError, match="NAME:VERSION"):
        reg.card(ref)


def test_an_unreadable_promoted_model_can_be_forced_past(
        reg: Registry, add: Add, promoted: str) -> None:
    reg.card_path(promoted).write_text("{}")
    add("a:2")
    refused = run(reg, "promote", "a:2")
    assert refused.exit_code == 1 and "cannot be read" in refused.output
    assert run(reg, "promote", "a:2", "--force").exit_code == 0
    assert reg.promoted() == "a:2"


def test_registered_files_are_readable_by_other_users(reg: Registry, add: Add) -> None:
    add("a:1")
    reg.promote("a:1", by="test")
    folder = reg.card_path("a:1").parent
    assert folder.stat().st_mode & 0o755 == 0o755
    for path in (reg.card_path("a:1"), reg.root / "registry.json"):
        assert path.stat().st_mode & 0o644 == 0o644


def test_rollback_promotes_the_previous_model_again(reg: Registry, add: Add,
                                                    promoted: str) -> None:
    add("a:2")
    assert run(reg, "promote", "a:2").exit_code == 0
    result = run(reg, "rollback")
    assert result.exit_code == 0 and "rolled back to a:1" in result.output
    assert reg.promoted() == "a:1" and reg.history()[-1]["rollback"] == "True"


def test_rollback_needs_an_earlier_model(reg: Registry, promoted: str) -> None:
    result = run(reg, "rollback")
    assert result.exit_code == 1 and "no earlier promoted model" in result.output
