"""bench/bench_gpu.py runs on the CPU with a small preset and writes its JSON and markdown."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "bench_gpu.py"


def test_gpu_benchmark_smoke_on_the_cpu(tmp_path):
    run = subprocess.run([sys.executable, str(SCRIPT), "--preset", "tiny", "--frames", "1,2", "--repeats", "1", "--device", "cpu",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((tmp_path / "bench_gpu.json").read_text())
    assert set(results["forward"]) == {"1", "2"} and results["forward"]["2"]["ours_MoE_s"] > 0
    assert len(results["node_path"]) == 6 and all(row["total_s"] > 0 for row in results["node_path"].values())
    assert "| 1 camera, window 4, 640x480 | on |" in (tmp_path / "bench_gpu.md").read_text()
