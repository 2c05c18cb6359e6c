"""Why a trained MoE head's gate does (not) specialise: per held-out frame, which expert explains
each pixel best (after the fused depth's median scale fit) near depth edges and on surfaces,
which expert the gate picks there, how much the gate logits vary over the image, and the fused
prediction's error (mean |log(gt / pred)|) on surfaces and in the edge band.

    python scripts/probe_moe_gate.py moe3d_ros/models/demo --scenes 2 --frames 4
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from moe3d_ros.io.checkpoint import load_any
from moe3d_ros.eval import metrics as M
from moe3d_ros.eval.protocols import SyntheticProtocol, synthetic_windows


def shares(index: np.ndarray, mask: np.ndarray, count: int) -> str:
    return " ".join(f"{v:.2f}" for v in np.bincount(index[mask], minlength=count)[:count] / max(int(mask.sum()), 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an MoE model folder")
    parser.add_argument("--scenes", type=int, default=2)
    parser.add_argument("--frames", type=int, default=4)
    args = parser.parse_args()
    model, _ = load_any(args.model)
    model.eval()
    if model.config.depth_head != "moe":
        parser.error(f"{args.model} has no MoE depth head")
    for window in synthetic_windows(SyntheticProtocol(scenes=args.scenes, frames=args.frames), model.config.img_size):
        with torch.no_grad():
            mixture = model(window.images, heads=("depth",)).mixture
        experts = mixture.expert_depth[0].numpy()
        count = experts.shape[1]
        for i in range(experts.shape[0]):
            gt, valid, fused = window.depth[i], window.valid[i], mixture.depth[0, i].numpy()
            scale = M.fit_scale(fused, gt, valid)
            best = np.abs(experts[i] * scale - gt[None]).argmin(axis=0)
            band = M.discontinuity_band(gt, valid)
            surfaces = valid & ~band
            winner = mixture.winner[0, i].numpy()
            log_error = np.abs(np.log(np.where(valid, gt, 1.0) / np.maximum(fused * scale, 1e-9)))
            logit_std = mixture.gate_logits[0, i].std(dim=(1, 2)).numpy()
            print(f"{window.name} frame {i}: best expert edges [{shares(best, band, count)}] surfaces [{shares(best, surfaces, count)}]"
                  f" | gate picks edges [{shares(winner, band, count)}] surfaces [{shares(winner, surfaces, count)}]"
                  f" | logit std [{' '.join(f'{v:.3f}' for v in logit_std)}] | |log error| edges {log_error[band].mean():.3f}"
                  f" surfaces {log_error[surfaces].mean():.3f}")


if __name__ == "__main__":
    main()
