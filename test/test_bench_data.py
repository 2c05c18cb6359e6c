"""bench/bench_data.py runs the real Trainer on the CPU for every batch size x worker count asked for."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_data_benchmark_smoke_on_the_cpu(tmp_path):
    run = subprocess.run([sys.executable, str(BENCH / "bench_data.py"), "--workers", "0,1", "--batch", "1,2", "--steps", "1",
                          "--device", "cpu", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((tmp_path / "bench_data.json").read_text())
    assert results["device"] == "cpu"
    assert [(row["batch"], row["workers"]) for row in results["rows"]] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    for row in results["rows"]:
        assert row["sampler_frames_per_s"] > 0 and row["step_s"] > 0
        assert row["frames_per_s"] == row["batch"] * 4 / row["step_s"]  # 4-frame windows (config/demo_dpt.yaml)
        assert 0.0 <= row["data_wait_share"] <= 1.0
