"""Fast CPU training: bf16 autocast and channels last inside ultralytics' trainer, for one
``train`` call only."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from streetwatch.training import precision


class _Model:
    """Stands in for ``ultralytics.YOLO``: records the callbacks added to it."""

    def __init__(self) -> None:
        self.callbacks: list[tuple[str, object]] = []

    def add_callback(self, event: str, callback: object) -> None:
        self.callbacks.append((event, callback))


def test_bf16_autocast_on_the_cpu_only_within_the_block() -> None:
    import ultralytics.engine.trainer as trainer_module

    def trainer_autocast() -> Any:
        return vars(trainer_module)["autocast"](torch.bfloat16, device="cpu")

    with pytest.raises(RuntimeError, match="bfloat16"):  # ultralytics' own: CUDA only
        trainer_autocast()
    model = _Model()
    with precision.cpu_training(model):
        with trainer_autocast():
            assert torch.is_autocast_enabled("cpu")
            assert torch.get_autocast_dtype("cpu") == torch.bfloat16
            conv = torch.nn.Conv2d(3, 4, 3)
            assert conv(torch.randn(1, 3, 8, 8)).dtype == torch.bfloat16
        # fp32 runs pass False: no autocast at all
        with vars(trainer_module)["autocast"](False, device="cpu"):
            assert not torch.is_autocast_enabled("cpu")
    with pytest.raises(RuntimeError, match="bfloat16"):
        trainer_autocast()
    assert [event for event, _ in model.callbacks] == ["on_pretrain_routine_end"]


def test_the_trainer_is_moved_to_channels_last() -> None:
    class Trainer:
        model = torch.nn.Conv2d(3, 8, 3)
        ema = None

    model = _Model()
    with precision.cpu_training(model):
        pass
    (_, callback), = model.callbacks
    trainer = Trainer()
    callback(trainer)  # type: ignore[operator]
    assert trainer.model.weight.is_contiguous(memory_format=torch.channels_last)


def test_auto_means_bf16_only_where_the_cpu_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "native_bf16", lambda: True)
    assert precision.resolve("auto") == "bf16"
    monkeypatch.setattr(precision, "native_bf16", lambda: False)
    assert precision.resolve("auto") == "fp32"
    assert precision.resolve("bf16") == "bf16"
    assert precision.ultralytics_amp("bf16") == "bf16"
    assert precision.ultralytics_amp("fp32") is False
