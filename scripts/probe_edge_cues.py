"""How well the held-out synthetic images show their depth edges: the cue an image-reading gate has.

A depth edge pixel belongs to a 4-neighbour pair whose true depth ratio exceeds 1.1 (the
benchmark's discontinuity); an image edge pixel to a pair whose colours differ by more than a
threshold in some channel (images in [0, 1]). Per threshold it prints the share of image edge
pixels that lie within 3 px of a depth edge (how often a colour change is a depth edge) and the
share of depth edge pixels with an image edge within 1 px (how often a depth edge shows).

    python scripts/probe_edge_cues.py --scenes 8 --frames 4 [--style natural]
"""
from __future__ import annotations

import argparse

import numpy as np
from scipy.ndimage import binary_dilation

from moe3d_ros.data.synthetic.config import WORLDS
from moe3d_ros.data.synthetic.textures import TEXTURE_STYLES
from moe3d_ros.eval import metrics as M
from moe3d_ros.eval.protocols import SyntheticProtocol, synthetic_windows

THRESHOLDS = (0.02, 0.05, 0.1, 0.2)


def image_edges(image: np.ndarray, threshold: float) -> np.ndarray:
    """[H, W] bool from a [3, H, W] image: pixels of 4-neighbour pairs whose colours differ by > threshold."""
    across_x = np.abs(np.diff(image, axis=2)).max(axis=0) > threshold
    across_y = np.abs(np.diff(image, axis=1)).max(axis=0) > threshold
    return M.pixels_of_pairs(across_x, across_y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--width", type=int, default=224, help="model input width (the demo preset's)")
    parser.add_argument("--style", choices=TEXTURE_STYLES, default="natural", help="the generator's texture style")
    parser.add_argument("--world", choices=WORLDS, default="plausible", help="the generator's world")
    args = parser.parse_args()
    near_depth_edge = {t: [0, 0] for t in THRESHOLDS}  # image edge pixels near a depth edge, all image edge pixels
    shown = {t: [0, 0] for t in THRESHOLDS}  # depth edge pixels with an image edge beside them, all depth edge pixels
    for window in synthetic_windows(SyntheticProtocol(scenes=args.scenes, frames=args.frames, style=args.style, world=args.world), args.width):
        images = window.images.numpy()
        for i in range(window.depth.shape[0]):
            gt, valid = window.depth[i], window.valid[i]
            contour = M.discontinuity_band(gt, valid, width=1)
            band = M.discontinuity_band(gt, valid, width=3)
            for t in THRESHOLDS:
                edges = image_edges(images[i], t) & valid
                near_depth_edge[t][0] += int((edges & band).sum())
                near_depth_edge[t][1] += int(edges.sum())
                shown[t][0] += int((contour & binary_dilation(edges, np.ones((3, 3), dtype=bool))).sum())
                shown[t][1] += int(contour.sum())
    print(f"{args.scenes} held-out scenes x {args.frames} frames, {args.style} textures, {args.world} world; "
          "depth edge: true depth ratio > 1.1")
    print(f"{'colour step >':>14} {'image edges near a depth edge':>30} {'depth edges shown in the image':>31}")
    for t in THRESHOLDS:
        precision = near_depth_edge[t][0] / max(near_depth_edge[t][1], 1)
        recall = shown[t][0] / max(shown[t][1], 1)
        print(f"{t:>14.2f} {precision:>30.3f} {recall:>31.3f}")


if __name__ == "__main__":
    main()
