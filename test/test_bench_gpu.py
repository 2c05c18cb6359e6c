"""The benchmark scripts (bench_gpu.py, gpu_memory.py, bench_data.py) run on the CPU with small settings (the
224 px demo preset: 2.5 M parameters against VGGT-1B's 1.2 G) and write their results."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


def run_bench(script: str, out: Path, *args: str) -> None:
    run = subprocess.run([sys.executable, str(BENCH / script), *args, "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]


def test_gpu_benchmark_smoke_on_the_cpu(tmp_path):
    run_bench("bench_gpu.py", tmp_path, "--preset", "demo", "--frames", "1,2", "--repeats", "1", "--device", "cpu",
              "--options", "+encoder cache,+CUDA graph")
    results = json.loads((tmp_path / "bench_gpu.json").read_text())
    assert set(results["forward"]) == {"1", "2"} and results["forward"]["2"]["ours_MoE_s"] > 0
    rows = results["node_path"].values()
    assert len(rows) == 3 * 3 and all(row["total_s"] > 0 for row in rows)  # plain and the two asked for, 3 camera setups
    assert all(row["depth_max_rel_diff_vs_plain"] < 1e-4 for row in rows)  # every option keeps the plain path's depth
    table = (tmp_path / "bench_gpu.md").read_text()
    assert "| 1 camera, window 4 | +encoder cache |" in table and "running on cpu without CUDA graphs" in table


def test_memory_benchmark_smoke_on_the_cpu(tmp_path):
    run_bench("gpu_memory.py", tmp_path, "--device", "cpu", "--preset", "demo", "--windows", "6", "--every", "3")
    results = json.loads((tmp_path / "gpu_memory.json").read_text())
    assert list(results["readings"]) == ["3", "6"] and results["encoder_cache_entries"] == 8  # 4 + one new frame a window
    assert "max_rss_mib" in results["growth_mib"]


def test_data_benchmark_smoke_on_the_cpu(tmp_path):
    """bench_data.py runs the real Trainer for every worker count asked for (on the demo
    recipe's step 1 with the tiny preset and 2-frame windows at 84x112: the script is under test)."""
    config = yaml.safe_load((ROOT / "config" / "demo_dpt.yaml").read_text())
    config["model"]["preset"] = "tiny"
    config["data"].update(frames=2, target_width=112, synthetic_hw=[84, 112])
    (tmp_path / "tiny_dpt.yaml").write_text(yaml.safe_dump(config))
    run_bench("bench_data.py", tmp_path, "--workers", "0,1", "--batch", "2", "--steps", "1", "--device", "cpu",
              "--config", str(tmp_path / "tiny_dpt.yaml"))
    results = json.loads((tmp_path / "bench_data.json").read_text())
    assert results["device"] == "cpu"
    assert [(row["batch"], row["workers"]) for row in results["rows"]] == [(2, 0), (2, 1)]
    for row in results["rows"]:
        assert row["sampler_frames_per_s"] > 0 and row["step_s"] > 0
        assert row["frames_per_s"] == row["batch"] * 2 / row["step_s"]  # 2-frame windows
        assert 0.0 <= row["data_wait_share"] <= 1.0
