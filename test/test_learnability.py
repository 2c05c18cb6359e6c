"""scripts/learnability.py (the ladder of reports/learnability/): a tiny run trains, scores, resumes
from its checkpoint without logging a step twice, and the report draws its curves and table."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "learnability.py"


def learnability(tmp_path: Path, *args: str) -> str:
    command = [sys.executable, str(SCRIPT), *args, "--runs", str(tmp_path / "runs"), "--reports", str(tmp_path / "reports")]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def steps_of(path: Path) -> list[int]:
    with open(path, newline="") as fh:
        return [int(row["step"]) for row in csv.DictReader(fh)]


@pytest.mark.slow
def test_a_tiny_run_trains_scores_resumes_and_reports(tmp_path):
    tiny = ("train", "--model", "unet", "--batch", "2", "--eval-every", "2", "--eval-scenes", "1", "--warmup", "1")
    learnability(tmp_path, *tiny, "--frames", "4")
    run = tmp_path / "runs" / "unet_plausible"
    assert steps_of(run / "eval.csv") == [1, 2]
    final = json.loads((run / "final.json").read_text())
    assert set(final) == {"issue_8", "more_16", "floating_8"}
    assert all(0.0 < scores["abs_rel"] < 10.0 for scores in final.values())
    assert (tmp_path / "reports" / "unet_plausible.png").stat().st_size > 0

    with open(run / "eval.csv", "a") as fh:  # a step logged by a run stopped before its next checkpoint
        fh.write("3,6,1.0,0.5,0.0,0.0,0.5\n")
    out = learnability(tmp_path, *tiny, "--frames", "8")
    assert "resumed" in out and "at step 2" in out
    assert steps_of(run / "eval.csv") == [1, 2, 3, 4]

    table = learnability(tmp_path, "report")
    assert table.count("| unet_plausible | 2.73 M | 8 |") == 3
    assert all((tmp_path / "reports" / f"curves_{key}.png").exists() for key in ("abs_rel", "mixed_pixel_ratio"))
