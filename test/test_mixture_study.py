"""scripts/mixture_study.sh trains a row, then (WINDOWS=1) that row on 4-frame windows with the camera
head from its final checkpoint, keeping the row's own head and losses, and (BLUR) the window row on
blurred frames (tiny settings: the script is under test; START: the model every row starts from)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ("train.steps=1 train.warmup_steps=1 train.batch_size=1 data.crop_hw=[56,56] data.target_width=56 "
        "output.checkpoint_every=1")


def run_study(tmp_path: Path, *rows: str, **knobs: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "RUNS": str(tmp_path / "runs"), "POOL": str(tmp_path / "pool"),
           "TRAIN_SET": TINY, **knobs}
    return subprocess.run(["bash", str(ROOT / "scripts" / "mixture_study.sh"), *rows], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_window_stage_trains_a_finished_row_on_windows_with_its_own_head(tmp_path):
    rendered = subprocess.run([sys.executable, str(ROOT / "scripts" / "render_pool.py"), "--out", str(tmp_path / "pool"),
                               "--scenes", "1", "--frames", "4", "--hw", "56", "56"], capture_output=True, text=True)
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    early = run_study(tmp_path, "recipe", WINDOWS="1")  # the row has not been trained yet
    assert early.returncode != 0 and "recipe has not finished" in early.stderr
    start = str(ROOT / "moe3d_ros" / "models" / "demo_dpt")
    for knobs in ({"START": start}, {"WINDOWS": "1", "START": start}):
        run = run_study(tmp_path, "recipe", **knobs)
        assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-2000:]
    runs = tmp_path / "runs"
    row = json.loads((runs / "recipe" / "train_config.json").read_text())
    windows = json.loads((runs / "recipe_windows" / "train_config.json").read_text())
    assert row["data"]["frames"] == 1 and row["loss"]["camera_weight"] == 0 and row["model"]["checkpoint"] == start
    assert windows["model"]["checkpoint"] == str(runs / "recipe" / "checkpoints" / "final")
    assert windows["data"]["frames"] == 4 and windows["loss"]["camera_weight"] > 0
    assert windows["loss"]["scale_invariant_scope"] == "window"
    assert windows["train"]["gate_temperature_start"] == 0  # the row's annealed gate is not made soft again
    assert windows["model"]["moe"] == row["model"]["moe"] and windows["loss"]["warm_up_targets"] == "local_quantiles"
    again = run_study(tmp_path, "recipe", WINDOWS="1")
    assert again.returncode == 0 and "recipe_windows finished" in again.stdout
    unwindowed = run_study(tmp_path, "recipe", BLUR="2")
    assert unwindowed.returncode == 2 and "set WINDOWS=1 too" in unwindowed.stderr
    blurred = run_study(tmp_path, "recipe", WINDOWS="1", BLUR="2")
    assert blurred.returncode == 0, blurred.stderr[-3000:] + blurred.stdout[-2000:]
    blur = json.loads((runs / "recipe_windows_blur" / "train_config.json").read_text())
    assert blur["model"]["checkpoint"] == str(runs / "recipe_windows" / "checkpoints" / "final")
    assert blur["data"]["blur_max"] == 2.0 and blur["train"]["seed"] != windows["train"]["seed"] and blur["data"]["frames"] == 4 and blur["model"]["moe"] == row["model"]["moe"]
