"""Where a model's AbsRel on the held-out synthetic scenes comes from: per-scene AbsRel (the
benchmark averages frames per scene, then scenes) next to reference predictors scored the same
way: a constant depth (no information) and the ground truth blurred by a Gaussian (what a model
that gets the layout right but blurs every edge by sigma pixels would score).

    python scripts/probe_depth_errors.py moe3d_ros/models/demo_dpt --scenes 8 --frames 4
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from moe3d_ros.io.checkpoint import load_any
from moe3d_ros.eval import metrics as M
from moe3d_ros.eval.protocols import SyntheticProtocol, synthetic_windows

BLUR_SIGMAS_PX = (2, 4, 8)


def blurred(gt: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian_filter(np.where(valid, gt, np.median(gt[valid])), sigma)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="model folders")
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--frames", type=int, default=4)
    args = parser.parse_args()
    models = {path: load_any(path)[0].eval() for path in args.models}
    img_size = next(iter(models.values())).config.img_size
    names = ["constant"] + [f"gt blurred {s} px" for s in BLUR_SIGMAS_PX] + list(models)
    per_scene: dict[str, list[float]] = {name: [] for name in names}
    scene_names = []
    for window in synthetic_windows(SyntheticProtocol(scenes=args.scenes, frames=args.frames), img_size):
        scene_names.append(window.name)
        frames: dict[str, list[float]] = {name: [] for name in names}
        predictions = {}
        for path, model in models.items():
            with torch.no_grad():
                predictions[path] = model(window.images, heads=("depth",)).depth[0].numpy()
        for i in range(window.depth.shape[0]):
            gt, valid = window.depth[i], window.valid[i]
            candidates = {"constant": np.ones_like(gt)}
            candidates.update({f"gt blurred {s} px": blurred(gt, valid, s) for s in BLUR_SIGMAS_PX})
            candidates.update({path: prediction[i] for path, prediction in predictions.items()})
            for name, depth in candidates.items():
                frames[name].append(M.depth_metrics(depth, gt, valid)["abs_rel"])
        for name in names:
            per_scene[name].append(float(np.mean(frames[name])))
    print("AbsRel per scene (mean of its frames) and over scenes, after a per-image median scale fit")
    print(f"{'predictor':<40} {'mean':>7}  " + " ".join(f"{n.split('_')[-1]:>7}" for n in scene_names))
    for name in names:
        print(f"{name:<40} {np.mean(per_scene[name]):7.4f}  " + " ".join(f"{v:7.3f}" for v in per_scene[name]))


if __name__ == "__main__":
    main()
