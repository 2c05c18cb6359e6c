"""moe3d-eval end to end with small models: the synthetic benchmark's smallest setting (report,
JSON, figures, ratios, speed, resume), and the 7-Scenes and NYU protocols on tiny folders in
their published layouts."""
from __future__ import annotations

import dataclasses
import json
import shutil

import cv2
import numpy as np
import pytest
import torch

from moe3d_ros.io.checkpoint import save_model
from moe3d_ros.cli import eval as eval_cli
from moe3d_ros.cli.eval import main as eval_main
from moe3d_ros.eval import protocols
from moe3d_ros.data.synthetic import SyntheticConfig, generate_scene
from moe3d_ros.model import VGGT, MoEConfig, preset


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny MoE model and a tiny DPT model at 224 px (random weights: the pipeline is under test)."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    moe = VGGT(dataclasses.replace(preset("tiny").with_moe(MoEConfig(num_experts=2)), img_size=224))
    torch.nn.init.normal_(moe.depth_head.gate.conv2.weight, std=0.5)
    dpt = VGGT(dataclasses.replace(preset("tiny"), img_size=224))
    return save_model(moe, folder / "moe"), save_model(dpt, folder / "dpt")


def _run(args: list[str]) -> int:
    return eval_main([*args, "--device", "cpu"])


def test_synthetic_benchmark_smallest_setting(models, tmp_path, capsys):
    moe, dpt = models
    out = tmp_path / "report"
    args = ["--protocol", "synthetic", "--scenes", "2", "--frames", "2", "--checkpoint", str(moe), "--baseline", str(dpt),
            "--out", str(out), "--figures", "1"]
    assert _run(args) == 0
    printed = capsys.readouterr().out
    assert "moe_winner / dpt:" in printed and "moe_surface / dpt:" in printed and "moe_mean / dpt:" in printed
    result = json.loads((out / "results.json").read_text())
    assert set(result["summary"]) == {"dpt", "moe_winner", "moe_surface", "moe_mean"}
    for system, values in result["summary"].items():
        for key in ("abs_rel", "delta1", "boundary_f1", "flying_ratio", "band_chamfer", "acc_mean", "comp_mean", "nc_mean"):
            assert key in values and np.isfinite(values[key]), (system, key)
    ratio = result["ratio_to_dpt"]["moe_winner"]["abs_rel"]
    assert ratio == pytest.approx(result["summary"]["moe_winner"]["abs_rel"] / result["summary"]["dpt"]["abs_rel"])
    speed = result["speed"]
    assert speed["moe"]["depth_head_s"] > 0 and speed["dpt"]["aggregator_s"] > 0 and "moe_over_dpt" in speed
    report = (out / "report.md").read_text()
    assert "moe_winner / dpt" in report and "moe_mean / dpt" in report
    assert "boundary F1" in report and "MoE / DPT measured in this run" in report
    figure = cv2.imread(str(out / "figure_synthetic_900000.png"))
    assert figure is not None and figure.shape[0] > 400
    assert (figure[40:80, -figure.shape[1] // 4:] < 250).any()  # no blank tile: the first row ends with the edge band
    assert len(list((out / "scenes").glob("*.json"))) == 2
    # Resumable: a second run reuses every scene and reports the same numbers.
    assert _run(args) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["summary"] == result["summary"]
    # A scene cached by an older metric set is scored again, not reused.
    cached = sorted((out / "scenes").glob("*.json"))[0]
    stale = json.loads(cached.read_text())
    stale["metrics"] = stale["metrics"][:-1]
    stale["systems"]["dpt"]["abs_rel"] = 99.0
    cached.write_text(json.dumps(stale))
    assert _run(args) == 0
    assert json.loads((out / "results.json").read_text())["summary"] == result["summary"]
    # The same folder with other settings is refused instead of mixing results.
    assert _run([*args[:3], "3", *args[4:]]) == 2


def test_cached_scenes_scored_for_other_systems_are_not_reused():
    """Scenes cached before a fusion was added lack its system: the run's fingerprint differs."""
    args = eval_cli.parse_args(["--protocol", "synthetic", "--scenes", "2"])
    before = eval_cli.fingerprint(args, ["moe", "dpt"], ["moe_winner", "moe_mean", "dpt"])
    assert eval_cli.fingerprint(args, ["moe", "dpt"], ["moe_winner", "moe_surface", "moe_mean", "dpt"]) != before
    assert eval_cli.fingerprint(args, ["moe", "dpt"], ["moe_winner", "moe_mean", "dpt"]) == before
    between = eval_cli.parse_args(["--protocol", "synthetic", "--scenes", "2", "--filter-edge-test", "between"])
    assert eval_cli.fingerprint(between, ["moe", "dpt"], ["moe_winner", "moe_mean", "dpt"]) != before  # published_* differ


def test_dpt_alone_has_no_ratios(models, tmp_path):
    _, dpt = models
    out = tmp_path / "dpt_only"
    assert _run(["--protocol", "synthetic", "--scenes", "1", "--frames", "1", "--checkpoint", str(dpt), "--out", str(out), "--figures", "0"]) == 0
    result = json.loads((out / "results.json").read_text())
    assert set(result["summary"]) == {"dpt"} and result["ratio_to_dpt"] == {}


def _write_7scenes(root, frames: int = 41) -> None:
    """A 7-Scenes test sequence rendered from a synthetic scene: frames 0 and 40 are real views,
    the others repeat frame 0 (the dense protocol reads only every 40th)."""
    config = SyntheticConfig(height=480, width=640)
    scene = generate_scene(3, config)
    k = np.array([[585.0, 0, 320], [0, 585.0, 240], [0, 0, 1]])  # 7-Scenes' fixed intrinsics
    poses = scene.camera_path(2, seed=3)
    sequence = root / "chess" / "seq-01"
    sequence.mkdir(parents=True)
    (root / "chess" / "TestSplit.txt").write_text("sequence1\n")
    (root / "chess" / "TrainSplit.txt").write_text("sequence2\n")
    rendered = []
    for pose in poses:
        image, depth, valid = scene.render(pose, k, 480, 640)
        rendered.append((image, np.where(valid, depth * 1000, 65535).astype(np.uint16), pose))
    for index in range(frames):
        image, depth_mm, pose = rendered[1] if index == 40 else rendered[0]
        stem = sequence / f"frame-{index:06d}"
        cv2.imwrite(str(stem) + ".color.png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(stem) + ".depth.png", depth_mm)
        (sequence / f"frame-{index:06d}.pose.txt").write_text("".join(" ".join(f"{v:.9e}" for v in row) + "\n" for row in pose))


def test_7scenes_dense_protocol(models, tmp_path, monkeypatch):
    moe, dpt = models
    monkeypatch.setitem(protocols.RECONSTRUCTION_POINTS, "7scenes", 20_000)  # the protocol's 100k: ICP takes seconds
    root = tmp_path / "7scenes"
    _write_7scenes(root)
    out = tmp_path / "report_7s"
    assert _run(["--protocol", "7scenes", "--data-root", str(root), "--density", "dense", "--checkpoint", str(moe),
                 "--baseline", str(dpt), "--out", str(out), "--figures", "1"]) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["meta"]["frames"] == 2 and "dense" in result["meta"]["protocol"]
    assert np.isfinite(result["summary"]["dpt"]["acc_mean"]) and np.isfinite(result["summary"]["moe_winner"]["nc_mean"])


def test_nyu_protocol_on_official_splits(models, tmp_path):
    from test_eval_datasets import write_official_splits

    _, dpt = models
    root = write_official_splits(tmp_path / "nyu").parent
    out = tmp_path / "report_nyu"
    assert _run(["--protocol", "nyu", "--data-root", str(root), "--checkpoint", str(dpt), "--out", str(out), "--figures", "1"]) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["meta"]["scenes"] == 2  # the two test images
    assert "acc_mean" not in result["summary"]["dpt"] and np.isfinite(result["summary"]["dpt"]["abs_rel"])


def test_two_dpt_models_are_refused_rather_than_one_replacing_the_other(models, tmp_path, caplog):
    _, dpt = models
    args = ["--protocol", "synthetic", "--scenes", "1", "--frames", "2", "--checkpoint", str(dpt), "--baseline", str(dpt),
            "--out", str(tmp_path / "report")]
    assert _run(args) == 2
    assert "has a DPT depth head" in caplog.text and "without --baseline" in caplog.text


def test_missing_dataset_is_a_clear_error(models, tmp_path, caplog):
    moe, _ = models
    assert _run(["--protocol", "nrgbd", "--data-root", str(tmp_path / "absent"), "--checkpoint", str(moe), "--out", str(tmp_path / "r")]) == 2
    assert "absent" in caplog.text


def test_default_is_the_bundled_demo(tmp_path, capsys, caplog):
    from moe3d_ros.io.checkpoint import DEMO_MODEL_DIR

    if not (DEMO_MODEL_DIR / "config.json").exists():
        pytest.fail("the bundled demo model is missing")
    out = tmp_path / "demo_report"
    assert _run(["--protocol", "synthetic", "--scenes", "1", "--frames", "2", "--out", str(out), "--figures", "0"]) == 0
    assert "SYNTHETIC DEMO MODEL" in caplog.text
    result = json.loads((out / "results.json").read_text())
    assert {"dpt", "moe_winner", "moe_mean"} <= set(result["summary"])
    shutil.rmtree(out)
