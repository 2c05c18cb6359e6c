"""Whether a model's aggregator does any work: its depth AbsRel on the held-out synthetic scenes
as trained, with every frame-attention or global-attention residual branch switched off (layer
scales zeroed), and with each frame predicted alone instead of in its window; how much frame 0's
depth moves when the window's other frames are replaced by noise; the mean layer scale per block
kind. A VGGT whose aggregator layer scales never leave their 0.01 start is a monocular encoder.

    python scripts/probe_backbone_use.py moe3d_ros/models/demo_dpt --scenes 8 --frames 4
"""
from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from moe3d_ros.io.checkpoint import load_any
from moe3d_ros.eval import metrics as M
from moe3d_ros.eval.protocols import SyntheticProtocol, synthetic_windows
from moe3d_ros.eval.runner import Window

BLOCK_KINDS = ("patch_embed.blocks", "frame_blocks", "global_blocks")


def layer_scales(model: torch.nn.Module, kind: str) -> list[torch.nn.Parameter]:
    return [p for name, p in model.named_parameters() if f"aggregator.{kind}." in name and name.endswith("gamma")]


@contextmanager
def branches_off(model: torch.nn.Module, kind: str) -> Iterator[None]:
    """Zero the layer scales of one block kind, so its blocks pass their input through unchanged."""
    scales = layer_scales(model, kind)
    saved = [p.detach().clone() for p in scales]
    with torch.no_grad():
        for p in scales:
            p.zero_()
    try:
        yield
    finally:
        with torch.no_grad():
            for p, value in zip(scales, saved):
                p.copy_(value)


def depth(model: torch.nn.Module, images: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(images, heads=("depth",)).depth[0].numpy()


def abs_rel(prediction: np.ndarray, window: Window) -> float:
    return float(np.mean([M.depth_metrics(prediction[i], window.depth[i], window.valid[i])["abs_rel"] for i in range(len(prediction))]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model folder")
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--frames", type=int, default=4)
    args = parser.parse_args()
    model = load_any(args.model)[0].eval()
    generator = torch.Generator().manual_seed(0)
    scores: dict[str, list[float]] = {"as trained": [], "frame attention off": [], "global attention off": [], "each frame alone": []}
    moved = []
    for window in synthetic_windows(SyntheticProtocol(scenes=args.scenes, frames=args.frames), model.config.img_size):
        trained = depth(model, window.images)
        scores["as trained"].append(abs_rel(trained, window))
        for kind, label in (("frame_blocks", "frame attention off"), ("global_blocks", "global attention off")):
            with branches_off(model, kind):
                scores[label].append(abs_rel(depth(model, window.images), window))
        alone = np.stack([depth(model, window.images[i : i + 1])[0] for i in range(len(window.images))])
        scores["each frame alone"].append(abs_rel(alone, window))
        noisy = window.images.clone()
        noisy[1:] = torch.rand(noisy[1:].shape, generator=generator)
        moved.append(float(np.mean(np.abs(depth(model, noisy)[0] - trained[0]) / trained[0])))
    print(f"{args.model}: {args.scenes} held-out scenes x {args.frames} frames, AbsRel (mean over scenes)")
    for label, values in scores.items():
        print(f"  {label:<22} {np.mean(values):.5f}")
    print(f"  frame 0's depth moves by {np.mean(moved):.4f} (mean relative) when the other frames are noise")
    for kind in BLOCK_KINDS:
        print(f"  mean |layer scale| of aggregator.{kind}: {np.mean([p.abs().mean().item() for p in layer_scales(model, kind)]):.4f}")


if __name__ == "__main__":
    main()
