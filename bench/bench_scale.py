#!/usr/bin/env python3
"""Metric scale and its steadiness, measured as the node forms windows (no ROS, no DDS).

Held-out synthetic sequences (seeds 900000 on) at `--rate` Hz run through a FrameWindow as the
node's (one camera, window_size 4, keyframe_spacing 0.5 s) and the bundled demo model. Each
window's newest frame is scored like the published depth:
- metric AbsRel: published depth (model units x the tracker's scale) against the exact depth, no
  scale fit; the oracle: the same depth with its own best scale (median ratio) per frame;
- jitter: median |change of log(implied scale)| from frame to frame, where the implied scale is
  the median ratio of exact to published depth (0 = the published depth keeps one unit).
Sources, as the demo camera gives them: `depth`: a LiDAR-like sparse depth (1% of pixels, 2%
noise, 3% outliers); `odometry`: positions integrated from increments with 2% noise, a camera
mounted 0.2 m ahead of and 0.1 m above the base, against the camera's own baselines measured
from the images and the predicted depth (outputs.visual_baseline, the node's default);
`odometry (camera head)`: against the baselines of the model's predicted poses.

    python bench/bench_scale.py [--sequences 8] [--frames 36] [--rate 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

MODES = ("relative", "depth", "odometry", "odometry (camera head)")
TARGETS = {"depth": 1.10, "odometry": 1.10, "odometry (camera head)": 1.10}
JITTER_TARGET = 0.01


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=8)
    parser.add_argument("--frames", type=int, default=36)
    parser.add_argument("--rate", type=float, default=3.0, help="frame rate of the camera [Hz]")
    parser.add_argument("--window-size", type=int, default=4)
    parser.add_argument("--keyframe-spacing", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    import torch

    from moe3d_ros.io.checkpoint import load_for_inference
    from moe3d_ros.data.synthetic import generate_sequence
    from moe3d_ros.inference.engine import EngineConfig, InferenceEngine
    from moe3d_ros.outputs.postprocess import camera_poses
    from moe3d_ros.outputs.scale import ScaleRefused, ScaleTracker, depth_measurement, model_values_at, odometry_log_ratios, robust_log_fit
    from moe3d_ros.outputs.visual_baseline import visual_log_ratios
    from moe3d_ros.data.sensors import SimulatedSensors
    from moe3d_ros.intake.window import FrameWindow, StampedFrame

    torch.set_num_threads(args.threads)
    model, description = load_for_inference("")
    engine = InferenceEngine(model, EngineConfig(device="cpu"))
    results = {mode: {"abs_rel": [], "oracle": [], "jitter": []} for mode in MODES}
    start = time.perf_counter()
    for index in range(args.sequences):
        seed = 900_000 + index
        seq = generate_sequence(seed, args.frames)
        sensors = SimulatedSensors(seed)
        clock = [0.0]
        window = FrameWindow(1, args.window_size, args.keyframe_spacing, stale_after=1e9, clock=lambda: clock[0])
        trackers = {mode: ScaleTracker(mode.split(" ")[0]) for mode in MODES}
        odometry = sensors.odometry_track(seq.cam_to_world, args.rate)
        implied = {mode: [] for mode in MODES}
        for t in range(args.frames):
            stamp = int((t + 1) * 1e9 / args.rate)
            clock[0] = t / args.rate
            window.add(StampedFrame(0, stamp, t))
            snapshot = window.take(timeout=0)
            frames = [f.payload for f in snapshot.frames]
            pred = engine.run([seq.images[f] for f in frames])
            depths = {f.stamp_ns: pred.depth[i] for i, f in enumerate(snapshot.frames)}
            measurements = {"relative": None}
            try:
                lidar = [sensors.sparse_depth(seq.depth[f], seq.valid[f], f) for f in frames]
                measurements["depth"] = depth_measurement(list(pred.depth), lidar, pred.transforms, [0])
            except ScaleRefused as exc:
                measurements["depth"] = exc
            positions, _ = camera_poses(pred)
            metric = [odometry.camera_position(f.stamp_ns) for f in snapshot.frames]
            try:
                measurements["odometry (camera head)"] = robust_log_fit(odometry_log_ratios(positions, metric, 0.1), min_samples=1)
            except ScaleRefused as exc:
                measurements["odometry (camera head)"] = exc
            k_model = [t.intrinsics_to_model(torch.from_numpy(seq.intrinsics[f])).numpy() for t, f in zip(pred.transforms, frames)]
            try:
                ratios = visual_log_ratios(list(pred.images), list(pred.depth), k_model, metric, 0.1)
                measurements["odometry"] = robust_log_fit(ratios, min_samples=1)
            except ScaleRefused as exc:
                measurements["odometry"] = exc
            # Score the newest frame as published.
            v, u = np.nonzero(seq.valid[t])
            predicted, inside = model_values_at(pred.depth[0], pred.transforms[0], u, v)
            truth = seq.depth[t][v[inside], u[inside]].astype(np.float64)
            predicted = predicted.astype(np.float64)
            oracle = float(np.median(truth / predicted))
            oracle_abs_rel = float(np.mean(np.abs(oracle * predicted - truth) / truth))
            for mode in MODES:
                estimate = trackers[mode].update(depths, measurements[mode])
                published = estimate.scale * predicted
                if mode != "relative":
                    results[mode]["abs_rel"].append(float(np.mean(np.abs(published - truth) / truth)))
                    results[mode]["oracle"].append(oracle_abs_rel)
                implied[mode].append(np.log(np.median(truth / published)))
        for mode in MODES:
            steps = np.abs(np.diff(implied[mode][args.window_size:]))  # after the first full window
            results[mode]["jitter"].extend(steps.tolist())
        print(f"sequence {seed}: done ({time.perf_counter() - start:.0f} s)", flush=True)
    print(f"\n{args.sequences} held-out sequences x {args.frames} frames at {args.rate:g} Hz, window_size {args.window_size}, "
          f"keyframe_spacing {args.keyframe_spacing} s; model: {description}\n")
    print("| scale source | metric AbsRel (no fit) | oracle AbsRel (per-frame scale) | ratio | target | jitter (median abs dlog) | p90 | target |")
    print("|---|---:|---:|---:|---|---:|---:|---|")
    for mode in MODES:
        r = results[mode]
        jitter = statistics.median(r["jitter"])
        p90 = float(np.percentile(r["jitter"], 90))
        jitter_ok = "reached" if jitter <= JITTER_TARGET else "**not reached**"
        if mode == "relative":
            print(f"| relative | - | - | - | - | {jitter:.4f} | {p90:.4f} | <= 0.01: {jitter_ok} |")
            continue
        abs_rel, oracle = float(np.mean(r["abs_rel"])), float(np.mean(r["oracle"]))
        ratio = abs_rel / oracle
        ok = "reached" if ratio <= TARGETS[mode] else "**not reached**"
        print(f"| {mode} | {abs_rel:.4f} | {oracle:.4f} | {ratio:.3f} | <= {TARGETS[mode]:.2f}: {ok} | {jitter:.4f} | {p90:.4f} | <= 0.01: {jitter_ok} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
