"""The README's first command, short: demo camera -> moe3d_node (bundled demo model) -> outputs
over DDS, live numbers against the ground truth, then a PLY and a PNG panel."""
from __future__ import annotations

import os
import subprocess

import cv2
import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed (ROS 2 or the ros-jazzy-rclpy wheel)")

from moe3d_ros.io.checkpoint import DEMO_MODEL_DIR  # noqa: E402
from moe3d_ros.io.export import read_ply  # noqa: E402
from moe3d_ros.paths import executable  # noqa: E402
from ros_harness import domain_id  # noqa: E402


@pytest.mark.e2e
def test_demo_runs_end_to_end(tmp_path):
    assert (DEMO_MODEL_DIR / "config.json").exists(), "the bundled demo model is missing"
    out = tmp_path / "demo"
    cmd = [executable("moe3d-demo"), "--duration", "6", "--out", str(out), "--domain-id", str(domain_id(4))]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=dict(os.environ, OMP_NUM_THREADS="1"))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "SYNTHETIC DEMO MODEL" in output  # the node says loudly which model it runs
    assert "AbsRel" in output and "boundary F1" in output and "first depth received" in output
    points, colors = read_ply(out / "cloud.ply")
    assert len(points) > 1000 and colors.shape == points.shape
    assert (out / "panel.png").stat().st_size > 10_000
    tiles = next(line for line in output.splitlines() if "panel tiles:" in line).split("panel tiles: ")[1].split(" | ")
    for caption in ("camera image", "prediction x", "ground truth (same colours)", "rel. error 0-0.25, AbsRel",
                    "gating (expert shares)", "fused cloud, side view"):  # every tile docs/demo-model.md lists
        assert any(tile.startswith(caption) for tile in tiles), (caption, tiles)
    assert len(tiles) == 6 and cv2.imread(str(out / "panel.png")).shape[1] == 3 * 224  # two full rows of three
    live = [line for line in output.splitlines() if "depth out" in line]
    assert live and "nan" not in live[-1].split("AbsRel")[1].split("|")[0]


def test_moe3d_infer_without_a_checkpoint_uses_the_bundled_model(tmp_path, caplog):
    from moe3d_ros.cli.infer import main

    assert main(["--synthetic", "900000", "--frames", "2", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "cloud.ply").exists() and (tmp_path / "depth_001.png").exists()
    assert "BUNDLED SYNTHETIC DEMO MODEL" in caplog.text


@pytest.mark.e2e
def test_demo_compare_runs_the_dpt_baseline_beside_and_draws_both_also_under_blur(tmp_path):
    out = tmp_path / "compare"
    cmd = [executable("moe3d-demo"), "--compare", "--duration", "8", "--rate", "2", "--blur-row", "2", "--out", str(out),
           "--domain-id", str(domain_id(4) + 100)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    finals = [line for line in output.splitlines() if line.startswith("moe3d-demo: final ")]
    assert [line.split("final ")[1][:6] for line in finals] == ["MoE | ", "DPT | "], finals
    assert all("nan" not in line.split("AbsRel")[1].split("|")[0] for line in finals)  # both heads scored live
    tiles = next(line for line in output.splitlines() if "panel tiles:" in line).split("panel tiles: ")[1].split(" | ")
    for caption in ("camera image", "MoE prediction x", "ground truth (same colours)", "MoE rel. error", "gating (expert shares)",
                    "DPT prediction x", "DPT rel. error", "MoE cloud, oblique view", "DPT cloud, oblique view"):
        assert any(tile.startswith(caption) for tile in tiles), (caption, tiles)
    assert len(tiles) == 12 and cv2.imread(str(out / "panel.png")).shape[1] == 3 * 224  # four full rows, no blank tile
    assert "images now Gaussian blur 2 px" in output  # the camera's blur, switched at run time for the last row
    assert tiles[9] == "camera image, 2 px blur" and [tile.split(",")[0] for tile in tiles[10:]] == \
        ["MoE cloud of this frame", "DPT cloud of this frame"]
    clouds = [tile for tile in tiles if "oblique view" in tile]
    assert all("% of edge pixels mixed" in tile for tile in clouds), clouds  # the panel says how many points are strung
