"""Deterministic random weights for the in-project parity fixture: the fixture stores only the
reference outputs, and anyone regenerates the weights from the seed (torch's CPU generator).

Values are O(1) where the reference init would leave a branch silent (LayerScale, tokens), and
scaled by 1/sqrt(fan-in) elsewhere, so every branch of the model matters to the outputs.
"""
from __future__ import annotations

from pathlib import Path

import torch


def randomized_state_dict(shapes: dict[str, torch.Size], seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name in sorted(shapes):
        shape = tuple(shapes[name])
        normal = torch.randn(shape, generator=generator, dtype=torch.float32)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "gamma":
            value = 0.25 + 0.7 * torch.rand(shape, generator=generator)
        elif "token" in name or "pos_embed" in name:
            value = 0.5 * normal
        elif len(shape) >= 2:
            value = normal / (normal[0].numel() ** 0.5)
        elif leaf == "weight" and "norm" in name:
            value = 1.0 + 0.1 * normal
        else:
            value = 0.05 * normal
        state[name] = value
    return state


FIXTURE = Path(__file__).resolve().parent / "fixtures" / "vggt_parity_small.pt"


def load_small_fixture() -> dict:
    """The in-project fixture in the shared fixture's layout: `state_dict` (regenerated from the
    seed for our `tiny` preset with the point head), and per case `images` [S, 3, H, W] in [0, 1],
    `outputs` (reference pose_enc, pose_enc_list, depth [1,S,H,W,1], depth_conf, world_points,
    world_points_conf)."""
    from moe3d_ros.model import VGGT, preset

    data = torch.load(FIXTURE, weights_only=True)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in VGGT(preset(data["preset"]).with_heads(("camera", "depth", "point"))).state_dict().items()}
    cases = {}
    for name, case in data["cases"].items():
        outputs = dict(case["outputs"], pose_enc_list=case["pose_enc_list"])
        cases[name] = {"images": case["pixels"].float() / 255, "outputs": outputs}
    return {"state_dict": randomized_state_dict(shapes, data["seed"]), "cases": cases}
