"""The benchmark scripts (bench_gpu.py, gpu_memory.py, bench_data.py) run on the CPU with small settings and write their results."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_bench(script: str, out: Path, *args: str) -> None:
    run = subprocess.run([sys.executable, str(BENCH / script), *args, "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]


def test_gpu_benchmark_smoke_on_the_cpu(tmp_path):
    run_bench("bench_gpu.py", tmp_path, "--preset", "tiny", "--frames", "1,2", "--repeats", "1", "--device", "cpu")
    results = json.loads((tmp_path / "bench_gpu.json").read_text())
    assert set(results["forward"]) == {"1", "2"} and results["forward"]["2"]["ours_MoE_s"] > 0
    rows = results["node_path"].values()
    assert len(rows) == 5 * 3 and all(row["total_s"] > 0 for row in rows)
    assert all(row["depth_max_rel_diff_vs_plain"] < 1e-4 for row in rows)  # every option keeps the plain path's depth
    table = (tmp_path / "bench_gpu.md").read_text()
    assert "| 1 camera, window 4 | +encoder cache |" in table and "running on cpu without CUDA graphs" in table


def test_memory_benchmark_smoke_on_the_cpu(tmp_path):
    run_bench("gpu_memory.py", tmp_path, "--device", "cpu", "--windows", "40", "--every", "20")
    results = json.loads((tmp_path / "gpu_memory.json").read_text())
    assert list(results["readings"]) == ["20", "40"] and results["encoder_cache_entries"] == 8
    assert "max_rss_mib" in results["growth_mib"]


def test_data_benchmark_smoke_on_the_cpu(tmp_path):
    """bench_data.py runs the real Trainer for every batch size x worker count asked for."""
    run_bench("bench_data.py", tmp_path, "--workers", "0,1", "--batch", "1,2", "--steps", "1", "--device", "cpu")
    results = json.loads((tmp_path / "bench_data.json").read_text())
    assert results["device"] == "cpu"
    assert [(row["batch"], row["workers"]) for row in results["rows"]] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    for row in results["rows"]:
        assert row["sampler_frames_per_s"] > 0 and row["step_s"] > 0
        assert row["frames_per_s"] == row["batch"] * 4 / row["step_s"]  # 4-frame windows (config/demo_dpt.yaml)
        assert 0.0 <= row["data_wait_share"] <= 1.0
