"""bench/bench_gpu.py and bench/gpu_memory.py run on the CPU with a small preset and write their results."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_gpu_benchmark_smoke_on_the_cpu(tmp_path):
    run = subprocess.run([sys.executable, str(BENCH / "bench_gpu.py"), "--preset", "tiny", "--frames", "1,2", "--repeats", "1",
                          "--device", "cpu", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((tmp_path / "bench_gpu.json").read_text())
    assert set(results["forward"]) == {"1", "2"} and results["forward"]["2"]["ours_MoE_s"] > 0
    rows = results["node_path"].values()
    assert len(rows) == 5 * 3 and all(row["total_s"] > 0 for row in rows)
    assert all(row["depth_max_rel_diff_vs_plain"] < 1e-4 for row in rows)  # every option keeps the plain path's depth
    table = (tmp_path / "bench_gpu.md").read_text()
    assert "| 1 camera, window 4 | +encoder cache |" in table and "running on cpu without CUDA graphs" in table


def test_memory_benchmark_smoke_on_the_cpu(tmp_path):
    run = subprocess.run([sys.executable, str(BENCH / "gpu_memory.py"), "--device", "cpu", "--windows", "40", "--every", "20",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((tmp_path / "gpu_memory.json").read_text())
    assert list(results["readings"]) == ["20", "40"] and results["encoder_cache_entries"] == 8
    assert "max_rss_mib" in results["growth_mib"]
