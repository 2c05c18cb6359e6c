"""The probe scripts of reports/studies/ run on one held-out scene and print what the studies quote from them."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_script(name: str, *args: str) -> str:
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def edge_cue_shares(style: str, world: str = "floating") -> list[tuple[float, float]]:
    """(image edges near a depth edge, depth edges shown) per colour threshold, from the probe (on the
    floating world, where issue 20 set its targets)."""
    out = run_script("probe_edge_cues.py", "--scenes", "2", "--frames", "2", "--style", style, "--world", world)
    rows = [line.split() for line in out.splitlines() if re.match(r"\s+0\.\d+\s", line)]
    assert [row[0] for row in rows] == ["0.02", "0.05", "0.10", "0.20"] and f"{style} textures" in out
    return [(float(near), float(shown)) for _, near, shown in rows]


def test_edge_cue_probe_reports_shares_per_colour_threshold():
    shares = edge_cue_shares("hard")
    assert all(0.0 <= s <= 1.0 for pair in shares for s in pair)
    # a higher colour threshold keeps fewer image edges, so it can only show fewer depth edges
    assert [shown for _, shown in shares] == sorted((shown for _, shown in shares), reverse=True)
    assert shares[0][1] > 0.5  # rendered depth edges are colour edges too


def test_natural_textures_make_colour_edges_mostly_depth_edges():
    """Issue 20's targets at the 0.05 step: >= 40% of colour edges near a depth edge, >= 95% of
    depth edges shown; the hard style stays far below the first (2 scenes here, 8 in the study)."""
    natural, hard = edge_cue_shares("natural")[1], edge_cue_shares("hard")[1]
    assert natural[0] >= 0.40 and natural[1] >= 0.95, natural
    assert hard[0] < 0.25, hard


def test_depth_error_probe_scores_a_model_beside_its_references():
    out = run_script("probe_depth_errors.py", "moe3d_ros/models/demo_dpt", "--scenes", "1", "--frames", "2")
    scores = {line[:40].strip(): float(line[40:].split()[0]) for line in out.splitlines()[2:]}
    assert list(scores) == ["constant", "gt blurred 2 px", "gt blurred 4 px", "gt blurred 8 px", "moe3d_ros/models/demo_dpt"]
    assert scores["gt blurred 2 px"] < scores["gt blurred 4 px"] < scores["gt blurred 8 px"] < scores["constant"]


def test_backbone_use_probe_scores_the_model_with_its_aggregator_branches_off():
    out = run_script("probe_backbone_use.py", "moe3d_ros/models/demo_dpt", "--scenes", "1", "--frames", "2")
    scores = {line[:24].strip(): float(line[24:]) for line in out.splitlines()[1:5]}
    assert list(scores) == ["as trained", "frame attention off", "global attention off", "each frame alone"]
    assert all(0.0 < value < 1.0 for value in scores.values())
    assert "when the other frames are noise" in out
    scales = [float(line.rsplit(":", 1)[1]) for line in out.splitlines() if "mean |layer scale|" in line]
    assert len(scales) == 3 and scales[0] > 0.5  # the encoder starts its layer scales at 1.0


def test_head_mechanism_trains_both_heads_on_the_same_tokens_and_scores_them(tmp_path):
    """A smoke run of scripts/head_mechanism.py (4 steps, through the mixture-NLL phase too): both
    heads train, are scored, and the ratios are theirs. The ratios themselves: the short run below."""
    results_path = tmp_path / "mechanism.json"
    run_script("head_mechanism.py", "--steps", "4", "--wta-steps", "2", "--train-frames", "8", "--eval-frames", "2",
               "--height", "56", "--width", "84", "--json", str(results_path))
    results = json.loads(results_path.read_text())
    for head in ("dpt", "moe"):
        assert np.isfinite(results[head]["abs_rel"]) and 0.0 <= results[head]["flying_ratio"] <= 1.0
    assert results["moe_over_dpt"]["abs_rel"] == results["moe"]["abs_rel"] / results["dpt"]["abs_rel"]
    assert abs(sum(results["moe"]["expert_shares"]) - 1.0) < 1e-6 and len(results["moe"]["expert_shares"]) <= 2


@pytest.mark.slow
def test_head_mechanism_short_run_the_winner_steps_where_the_regression_head_blends(tmp_path):
    """The mechanism's short version (the study's settings, but 150 steps and 32 frames at 56x84:
    about a minute): on the same tokens, which hold both sides' depths but not where the edge runs,
    the MoE winner leaves fewer mixed pixels and finds more 1 px depth edges than the DPT head, with
    both experts winning. Seeds 0-2 gave 0.36-0.65x mixed pixels and 2.2-2.8x edge F1 on one machine
    and 0.82x mixed on another (CI): the bounds are the direction, which must hold on any CPU, not
    one machine's trajectory. AbsRel (1.09-1.27x at this budget) is the full run's to report."""
    results_path = tmp_path / "mechanism.json"
    run_script("head_mechanism.py", "--steps", "150", "--train-frames", "32", "--eval-frames", "8",
               "--height", "56", "--width", "84", "--json", str(results_path))
    results = json.loads(results_path.read_text())
    ratios = results["moe_over_dpt"]
    assert ratios["mixed_pixel_ratio"] < 1.0, results
    assert ratios["boundary_f1_1px"] > 1.0, results
    assert min(results["moe"]["expert_shares"]) >= 0.05, results
