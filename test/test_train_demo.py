"""scripts/train_demo.sh runs its stages in order, each from the one before, resumes or skips what
is done, and trains the two heads of stage 3 side by side (tiny settings: the script is under test)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ("model.preset=tiny train.steps=2 train.warmup_steps=1 train.batch_size=1 data.workers=0 data.synthetic_hw=[42,56] "
        "data.target_width=56 output.checkpoint_every=1")


def run_stages(runs: Path, *stages: str, train_set: str = TINY) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "RUNS": str(runs), "TRAIN_SET": train_set}
    return subprocess.run(["bash", str(ROOT / "scripts" / "train_demo.sh"), *stages], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_stages_chain_resume_and_skip(tmp_path):
    runs = tmp_path / "runs"
    run = run_stages(runs, "pretrain", "windows", "heads")
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-2000:]
    configs = {name: json.loads((runs / name / "train_config.json").read_text())
               for name in ("demo_pretrain", "demo_dpt", "demo_dpt_head", "demo_moe")}
    assert configs["demo_pretrain"]["data"]["frames"] == 1 and configs["demo_pretrain"]["model"]["checkpoint"] is None
    assert configs["demo_dpt"]["model"]["checkpoint"] == str(runs / "demo_pretrain" / "checkpoints" / "final")
    for head in ("demo_dpt_head", "demo_moe"):  # both heads start from stage 2, aggregator frozen, same budget
        assert configs[head]["model"]["checkpoint"] == str(runs / "demo_dpt" / "checkpoints" / "final")
        assert configs[head]["train"]["backbone"] == "frozen" and configs[head]["train"]["steps"] == 2
    assert configs["demo_moe"]["model"]["depth_head"] == "moe" and configs["demo_dpt_head"]["model"]["depth_head"] == "dpt"
    times = (runs / "times.txt").read_text().split()
    assert times[0::3] == ["demo_pretrain", "demo_dpt", "demo_dpt_head", "demo_moe"] or \
        times[0::3] == ["demo_pretrain", "demo_dpt", "demo_moe", "demo_dpt_head"]
    again = run_stages(runs, "pretrain")
    assert again.returncode == 0 and "demo_pretrain already finished" in again.stdout


def test_unknown_stage_is_refused(tmp_path):
    run = run_stages(tmp_path / "runs", "pretrain", "fly")
    assert run.returncode == 2 and "unknown stage fly" in run.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_mixture_stage_trains_both_rows_from_the_dpt_head_stage_then_on_windows_then_blurred(tmp_path):
    runs = tmp_path / "runs"
    rendered = subprocess.run([sys.executable, str(ROOT / "scripts" / "render_pool.py"), "--out", str(runs / "pool"),
                               "--scenes", "1", "--frames", "4", "--hw", "42", "56"], capture_output=True, text=True)
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    run = run_stages(runs, "pretrain", "windows", "heads", "mixture", train_set=TINY + " data.crop_hw=[42,56]")
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-2000:]
    study = runs / "mixture_study"
    for row, head in (("dpt", "dpt"), ("recipe", "moe")):
        single = json.loads((study / row / "train_config.json").read_text())
        windows = json.loads((study / f"{row}_windows" / "train_config.json").read_text())
        assert single["model"]["checkpoint"] == str(runs / "demo_dpt_head" / "model")  # the whole 3a model
        assert single["data"]["frames"] == 1 and single["data"]["paths"] == [str(runs / "pool")]
        assert windows["model"]["checkpoint"] == str(study / row / "checkpoints" / "final") and windows["data"]["frames"] == 4
        blurred = json.loads((study / f"{row}_windows_blur" / "train_config.json").read_text())
        assert single["model"]["depth_head"] == windows["model"]["depth_head"] == blurred["model"]["depth_head"] == head
        assert blurred["model"]["checkpoint"] == str(study / f"{row}_windows" / "checkpoints" / "final")
        assert blurred["data"]["blur_max"] == 2.0 and blurred["data"]["frames"] == 4
    assert "mixture" in (runs / "times.txt").read_text()
