"""The package is installable as documented: every folder ships, the serving install has no
torch, the layers import only downwards, and the one console command answers."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["models", "datasets", "inference", "training", "service"]
# What each layer may import from the project (DESIGN.md section 2).
ALLOWED = {
    "models": {"models"},
    "datasets": {"models", "datasets"},
    "inference": {"models", "datasets", "inference"},
    "training": {"models", "datasets", "inference", "training"},
    "service": {"models", "datasets", "inference", "service"},
}
TRAIN_ONLY = {"torch", "torchvision", "ultralytics", "albumentations"}


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_package_folder_is_listed() -> None:
    setuptools = _pyproject()["tool"]["setuptools"]  # type: ignore[index]
    listed = set(setuptools["packages"])
    found = {
        "streetwatch." + ".".join(init.parent.relative_to(ROOT).parts)
        for layer in LAYERS
        for init in (ROOT / layer).rglob("__init__.py")
    }
    assert found == listed, f"missing from packages: {found - listed}; stale: {listed - found}"
    assert set(setuptools["package-dir"]) == {f"streetwatch.{layer}" for layer in LAYERS}


def _closure(requirements: list[str]) -> set[str]:
    """Names of installed distributions a set of requirements pulls in, transitively."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += [Requirement(r) for r in importlib.metadata.requires(name) or []]
        except importlib.metadata.PackageNotFoundError:
            continue
    return seen


def test_serving_install_does_not_pull_torch() -> None:
    base = _pyproject()["project"]["dependencies"]  # type: ignore[index]
    closure = _closure(list(base))
    assert "onnxruntime" in closure
    assert not closure & TRAIN_ONLY, f"the base install pulls {closure & TRAIN_ONLY}"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", LAYERS)
def test_layers_import_only_downwards(layer: str) -> None:
    for path in (ROOT / layer).rglob("*.py"):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "streetwatch" and len(parts) > 1:
                assert parts[1] in ALLOWED[layer], f"{path}: imports {name}"
            if layer in ("inference", "service", "datasets", "models"):
                assert parts[0] not in TRAIN_ONLY, f"{path}: imports {name} (train extra only)"


def test_no_import_time_side_effects_in_cli() -> None:
    """Importing the command must not import the heavy areas it only names."""
    code = (
        "import sys, streetwatch.service.cli;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'torch', 'ultralytics', 'matplotlib', 'cv2'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_console_command_lists_its_groups() -> None:
    command = Path(sys.executable).with_name("streetwatch")
    out = subprocess.run([str(command), "--help"], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "data" in out.stdout and "models" in out.stdout
