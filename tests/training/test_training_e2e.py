"""The whole training side on a handful of tiny generated images, one epoch:
train -> eval -> export (parity) -> INT8 -> register -> verify, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from streetwatch.datasets.synth.dataset import write_synth_dataset
from streetwatch.models.registry import Registry
from streetwatch.models.taxonomy import TAXONOMY
from streetwatch.service.cli import main


def sw(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def ok(*args: str | Path) -> Result:
    result = sw(*args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch run on 8 synthetic 128x96 images, validated on 4."""
    root = tmp_path_factory.mktemp("e2e")
    write_synth_dataset(root / "train", images=8, seed=11, size=(128, 96), split="train")
    write_synth_dataset(root / "val", images=4, seed=12, size=(128, 96), split="val")
    write_synth_dataset(root / "test", images=4, seed=13, size=(128, 96), split="test")
    ok("train", "--data", root / "train", "--data", f"{root / 'val'}:2",
       "--holdout", root / "test", "--imgsz", "64", "--epochs", "1", "--batch", "4",
       "--out", root / "run")
    return root


def test_run_folder_records_how_it_was_made(trained: Path) -> None:
    run = trained / "run"
    assert (run / "weights" / "best.pt").is_file() and (run / "weights" / "last.pt").is_file()
    command = (run / "command.txt").read_text()
    assert "streetwatch train --data" in command and "--imgsz 64" in command
    record = json.loads((run / "run.json").read_text())
    assert record["state"] == "finished" and record["config"]["imgsz"] == 64
    assert [d["weight"] for d in record["data"]] == [1.0, 2.0]
    assert all(len(d["fingerprint"]) == 64 for d in record["data"])
    assert json.loads((run / "result.json").read_text())["epochs"] == 1
    # the precision it trained in (bf16 where the CPU has it natively) is what ultralytics used
    import yaml

    from streetwatch.training.precision import resolve

    assert record["precision"] == resolve("auto")
    amp = yaml.safe_load((run / "args.yaml").read_text())["amp"]
    assert amp == ("bf16" if record["precision"] == "bf16" else False)


def test_eval_writes_metrics_plots_and_report(trained: Path) -> None:
    out = trained / "eval"
    ok("eval", "--model", trained / "run/weights/best.pt", "--data", trained / "test",
       "--out", out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"classes", "all", "model", "data"}
    assert set(metrics["classes"]) <= set(TAXONOMY.keys)
    for row in [*metrics["classes"].values(), metrics["all"]]:
        assert set(row) == {"precision", "recall", "ap50", "ap50_95", "instances"}
    assert metrics["data"]["images"] == 4 and metrics["model"]["imgsz"] == 64
    quiet = metrics["operating_point"]["violation_free_images"]
    assert set(quiet) == {"images", "with_false_alarm", "false_alarms", "false_alarms_per_image"}
    assert (out / "confusion_matrix.png").is_file() and (out / "pr_curve.png").is_file()
    report = (out / "report.md").read_text()
    assert "| class | instances |" in report
    for example in (out / "examples").iterdir():  # every crop is linked from the report
        assert f"examples/{example.name}" in report


def test_export_int8_register_verify(trained: Path) -> None:
    registry = trained / "registry"
    weights = trained / "run/weights/best.pt"
    result = ok("export", "--model", weights, "--int8", "--calib", trained / "train",
                "--data", trained / "test", "--register", "tiny:1", "--registry", registry)
    assert "parity ok" in result.output and "INT8" in result.output
    summary = json.loads((trained / "run/export/export.json").read_text())
    assert summary["parity"]["raw_box_delta_px"] <= summary["parity"]["raw_max_box_delta_px"]
    assert summary["int8"]["speed"]["speedup"] > 0
    assert set(summary["int8"]["ap50_delta"]) <= set(TAXONOMY.keys)

    # the head's DFL softmax runs over the last axis, in both files (parity held above)
    import onnx

    for name in ("model.onnx", "model.int8.onnx"):
        nodes = [n for n in onnx.load(str(registry / "tiny/1" / name)).graph.node
                 if "/dfl/" in n.name and n.op_type in ("Softmax", "Conv", "MatMul")]
        assert [(n.op_type, [a.i for a in n.attribute if a.name == "axis"]) for n in nodes] \
            == [("Softmax", [3]), ("MatMul", [])], name

    # INT8: the head's conv branches run quantized, SiLUs included; its decoding stays float
    graph = onnx.load(str(registry / "tiny/1/model.int8.onnx")).graph
    consumers = {name: n.op_type for n in graph.node for name in n.input}
    head_sigmoids = {n.name: consumers.get(n.output[0]) for n in graph.node
                     if n.op_type == "Sigmoid" and n.name.startswith("/model.23/")}
    branch = {k: v for k, v in head_sigmoids.items() if "/cv2." in k or "/cv3." in k}
    decoding = {k: v for k, v in head_sigmoids.items() if k not in branch}
    assert branch and set(branch.values()) == {"QuantizeLinear"}, branch
    assert decoding and "QuantizeLinear" not in decoding.values(), decoding

    card = Registry(registry).card("tiny:1")
    assert set(card.artefacts) == {"pt", "onnx", "int8"} and card.imgsz == 64
    # the shipped .pt holds the model only (a checkpoint taken mid-run carries optimizer
    # state five times the model's size)
    import torch

    shipped = torch.load(registry / "tiny/1/model.pt", map_location="cpu", weights_only=False)
    assert shipped["optimizer"] is None and shipped.get("ema") is None
    assert card.classes == TAXONOMY.keys and len(card.training.data) == 2
    assert card.training.epochs == 1 and card.training.command is not None
    assert list(card.metrics) == ["test/test"]
    assert "tiny:1: ok" in ok("models", "verify", "--registry", registry).output

    again = sw("export", "--model", weights, "--data", trained / "test",
               "--register", "tiny:1", "--registry", registry)
    assert again.exit_code == 1 and "already registered" in again.output
    assert sorted(p.name for p in (registry / "tiny").iterdir()) == ["1"]

    # a registered model evaluates by name, against a baseline, and its card records it
    result = ok("eval", "--model", "tiny:1/int8", "--baseline", weights, "--data",
                trained / "val", "--split", "val", "--out", trained / "eval-int8",
                "--registry", registry)
    assert "recorded as 'val/val@int8'" in result.output
    assert "ΔAP50" in (trained / "eval-int8/report.md").read_text()
    assert (trained / "eval-int8/baseline/metrics.json").is_file()
    # an .onnx model's AP50 comes with a bootstrap interval; a .pt baseline has none, so
    # there is no paired one
    metrics = json.loads((trained / "eval-int8/metrics.json").read_text())
    spread = metrics["uncertainty"]["ap50"]
    assert set(spread) == {*metrics["classes"], "all"}
    assert all(lo <= metrics["classes"][k]["ap50"] + 1e-4 and lo <= hi
               for k, (lo, hi) in spread.items() if k != "all")
    assert "baseline_delta" not in metrics
    assert "AP50 95 % interval" in (trained / "eval-int8/report.md").read_text()
    assert Registry(registry).card("tiny:1").metrics["val/val@int8"].artefact == "int8"


def test_eval_refuses_bad_models_and_splits(trained: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"\x00" * 64)
    result = sw("eval", "--model", broken, "--data", trained / "test", "--out", tmp_path / "e")
    assert result.exit_code == 1 and "broken.pt: not a readable PyTorch checkpoint" in result.output
    result = sw("eval", "--model", trained / "run/weights/best.pt", "--data", trained / "test",
                "--split", "train", "--out", tmp_path / "e")
    assert result.exit_code == 1 and "no images in split 'train' (it has: test)" in result.output
    assert not (tmp_path / "e").exists()


def test_fine_tuning_a_registered_model_records_its_parent(trained: Path) -> None:
    from streetwatch.training.register import new_card, training_info

    registry = Registry(trained / "parents")
    weights = trained / "run/weights/best.pt"
    registry.register(new_card("base:1", weights, 64), {"pt": weights})
    run = trained / "child"
    ok("train", "--data", trained / "train", "--data", trained / "val", "--parent", "base:1",
       "--registry", registry.root, "--imgsz", "64", "--epochs", "1", "--batch", "4",
       "--out", run)
    record = json.loads((run / "run.json").read_text())
    assert record["parent"] == "base:1"
    assert record["config"]["model"] == str(registry.root / "base" / "1" / "model.pt")
    assert training_info(run / "weights" / "best.pt")[1] == "base:1"
    both = sw("train", "--data", trained / "train", "--parent", "base:1", "--model", "x.pt",
              "--registry", registry.root, "--out", trained / "never")
    assert both.exit_code == 2 and "not both" in both.output


def test_average_of_two_checkpoints_exports_and_registers(trained: Path) -> None:
    """A weight average is a run folder that export and the registry take like any other;
    its tensors are the weighted mean of its ingredients'."""
    import torch

    run, out = trained / "run", trained / "averaged"
    best, last = run / "weights/best.pt", run / "weights/last.pt"
    result = ok("average", "--model", best, "--model", f"{last}:3", "--out", out)
    assert str(out / "weights/best.pt") in result.output
    record = json.loads((out / "run.json").read_text())
    assert [(i["weights"], i["share"]) for i in record["config"]["average"]] \
        == [(str(best), 0.25), (str(last), 0.75)]
    assert record["data"] == json.loads((run / "run.json").read_text())["data"]  # once each
    command = (out / "command.txt").read_text()  # what runs it again
    assert f"streetwatch average --model {best} --model {last}:3 --out {out}" in command

    def tensors(path: Path) -> dict[str, torch.Tensor]:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        model = checkpoint["ema"] if checkpoint.get("ema") is not None else checkpoint["model"]
        return {k: v.float() for k, v in model.state_dict().items()}

    a, b, mean = tensors(best), tensors(last), tensors(out / "weights/best.pt")
    floats = [k for k, v in a.items() if v.is_floating_point()]
    assert floats and all(torch.allclose(mean[k], 0.25 * a[k] + 0.75 * b[k], atol=2e-3)
                          for k in floats)

    registry = trained / "registry-averaged"
    ok("export", "--model", out / "weights/best.pt", "--data", trained / "test",
       "--register", "soup:1", "--registry", registry)
    card = Registry(registry).card("soup:1")
    assert card.training.data == {d["path"]: d["fingerprint"] for d in record["data"]}
    assert card.training.config["average"] == record["config"]["average"]
    assert "soup:1: ok" in ok("models", "verify", "--registry", registry).output

    # two .onnx models on the same images get a paired interval for their difference:
    # a model against itself differs by exactly nothing
    onnx = registry / "soup/1/model.onnx"
    ok("eval", "--model", onnx, "--baseline", onnx, "--data", trained / "test",
       "--out", trained / "eval-paired")
    metrics = json.loads((trained / "eval-paired/metrics.json").read_text())
    paired = metrics["baseline_delta"]["ap50"]
    assert set(paired) == {*metrics["classes"], "all"}
    assert all(bounds == [0.0, 0.0] for bounds in paired.values())
    assert "ΔAP50 95 % interval" in (trained / "eval-paired/report.md").read_text()


def test_average_refuses_what_it_cannot_average(trained: Path, tmp_path: Path) -> None:
    import shutil

    import torch

    best = trained / "run/weights/best.pt"

    def refused(*models: str | Path, out: Path = tmp_path / "avg") -> str:
        args: list[str | Path] = ["average", "--out", out]
        for model in models:
            args += ["--model", model]
        result = sw(*args)
        assert result.exit_code != 0, result.output
        assert not (tmp_path / "avg").exists()  # nothing half-written
        return result.output

    assert "at least two" in refused(best)
    assert "the share after ':' must be a number > 0" in refused(best, f"{best}:0")

    loose = tmp_path / "loose.pt"  # a checkpoint outside any run folder
    shutil.copyfile(best, loose)
    assert f"{loose}: not in a run folder" in refused(best, loose)

    def copy_run(name: str) -> Path:
        shutil.copytree(trained / "run", tmp_path / name,
                        ignore=shutil.ignore_patterns("data", "export", "*.png", "*.jpg"))
        return tmp_path / name / "weights/best.pt"

    corrupt = copy_run("corrupt")
    corrupt.write_bytes(b"\x00" * 64)
    assert f"{corrupt}: not a readable PyTorch checkpoint" in refused(best, corrupt)

    renamed = copy_run("renamed")  # another class list
    checkpoint = torch.load(renamed, map_location="cpu", weights_only=False)
    checkpoint["model"].names = {0: "cat", **{k: v for k, v in checkpoint["model"].names.items()
                                              if k}}
    torch.save(checkpoint, renamed)
    assert f"{renamed}: classes ['cat'," in refused(best, renamed)

    other = copy_run("other")  # another architecture
    from ultralytics.nn.tasks import DetectionModel

    checkpoint = torch.load(other, map_location="cpu", weights_only=False)
    nc = len(TAXONOMY.keys)
    model = DetectionModel("yolo11s.yaml", nc=nc, verbose=False)  # type: ignore[no-untyped-call]
    model.names = checkpoint["model"].names
    checkpoint["model"] = model.half()
    torch.save(checkpoint, other)
    assert f"{other}: layer 'model.0.conv.weight' has shape" in refused(best, other)

    changed = copy_run("changed")  # trained on a dataset whose manifest has changed since
    record = json.loads((changed.parent.parent / "run.json").read_text())
    record["data"][0]["fingerprint"] = "0" * 64
    (changed.parent.parent / "run.json").write_text(json.dumps(record))
    assert "the dataset changed between the runs" in refused(best, changed)

    taken = tmp_path / "taken"
    (taken / "keep").mkdir(parents=True)
    assert f"{taken}: already exists" in refused(best, best, out=taken)
    assert [p.name for p in taken.iterdir()] == ["keep"]
