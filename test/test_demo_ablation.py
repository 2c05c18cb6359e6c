"""scripts/demo_ablation.sh (the MoE ablation of reports/studies/) trains and scores its variants with tiny settings."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "demo_ablation.sh"


def run_ablation(tmp_path: Path, *variants: str, **knobs: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "RUNS": str(tmp_path / "runs"), "REPORTS": str(tmp_path / "reports"), **knobs}
    return subprocess.run(["bash", str(SCRIPT), *variants], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_variants_train_in_parallel_and_are_scored_against_one_dpt_baseline(tmp_path):
    run = run_ablation(tmp_path, "best_targets", STEPS="2", FRAMES="2", SCENES="1", FIGURES="0", PARALLEL="1")
    assert run.returncode == 0, run.stderr[-3000:]
    runs = tmp_path / "runs"  # the DPT baseline is trained first because it is missing
    configs = {name: json.loads((runs / name / "train_config.json").read_text()) for name in ("dpt", "best_targets")}
    assert configs["dpt"]["model"]["depth_head"] == "dpt" and configs["dpt"]["loss"]["entropy_weight"] == 0
    assert configs["best_targets"]["model"]["depth_head"] == "moe"
    assert configs["best_targets"]["loss"]["warm_up_targets"] == "best" and configs["best_targets"]["loss"]["winner_takes_all_steps"] == 100
    for config in configs.values():  # the knobs reach every run, all start from the bundled backbone
        assert config["train"]["steps"] == 2 and config["data"]["frames"] == 2
        assert config["model"]["checkpoint"] == "moe3d_ros/models/demo_dpt"
    results = json.loads((tmp_path / "reports" / "best_targets" / "results.json").read_text())
    assert results["meta"]["scenes"] == 1 and str(runs / "dpt" / "model") in results["meta"]["models"]
    assert {"moe_winner", "moe_mean", "dpt"} <= set(results["summary"])
    assert (runs / "best_targets.train_variant.log").is_file()


def test_unknown_variant_is_refused_with_the_choices(tmp_path):
    run = run_ablation(tmp_path, "no_such_variant")
    assert run.returncode == 2
    assert "unknown variant no_such_variant" in run.stderr and "best_targets" in run.stderr
    assert not (tmp_path / "runs").exists()


def test_a_failed_parallel_run_fails_the_script_and_names_its_log(tmp_path):
    run = run_ablation(tmp_path, "recipe", PARALLEL="1", PYTHON=str(tmp_path / "missing-python"))
    assert run.returncode != 0
    assert f"train_variant recipe failed, see {tmp_path / 'runs'}/recipe.train_variant.log" in run.stderr
    assert not (tmp_path / "reports").exists()  # nothing is scored after a failed training
