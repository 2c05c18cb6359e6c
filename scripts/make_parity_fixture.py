#!/usr/bin/env python3
"""Writes test/fixtures/vggt_parity_small.pt: reference VGGT outputs for the `tiny` configuration
with seeded random weights (test/parity_fixture.py), so the parity tests run for anyone who
clones the project. Needs a local checkout of the reference implementation (upstream commit
a288dd0f, its `vggt` package on --reference) with `einops` installed, and never becomes part of
this project; the tests need only the written file.

    python scripts/make_parity_fixture.py --reference /path/to/checkout [--seed 0]
"""
from __future__ import annotations

import argparse
import sys
import types
from functools import partial
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test"))

OUT = ROOT / "test" / "fixtures" / "vggt_parity_small.pt"
CASES = {"s2_140x182": (2, 140, 182), "s1_126x98": (1, 126, 98)}
HEADS = ("camera", "depth", "point")


def reference_model(reference: Path):
    """The reference VGGT shrunk to our `tiny` preset (the shared fixture's configuration)."""
    sys.path.insert(0, str(reference))
    if "huggingface_hub" not in sys.modules:  # only its mixin is imported, for hub downloads
        sys.modules["huggingface_hub"] = types.SimpleNamespace(PyTorchModelHubMixin=type("PyTorchModelHubMixin", (), {}))
    from vggt.heads.camera_head import CameraHead
    from vggt.heads.dpt_head import DPTHead
    from vggt.layers.attention import MemEffAttention
    from vggt.layers.block import Block
    from vggt.layers.vision_transformer import DinoVisionTransformer
    from vggt.models.aggregator import Aggregator
    from vggt.models.vggt import VGGT as ReferenceVGGT

    model = ReferenceVGGT(img_size=518, patch_size=14, embed_dim=64, enable_track=False)
    model.aggregator = Aggregator(img_size=518, patch_size=14, embed_dim=64, depth=4, num_heads=2, patch_embed="conv",
                                  cached_layer_indices=(0, 1, 2, 3))
    model.aggregator.patch_embed = DinoVisionTransformer(
        img_size=518, patch_size=14, embed_dim=64, depth=2, num_heads=2, mlp_ratio=4, num_register_tokens=4,
        interpolate_antialias=True, interpolate_offset=0.0, block_chunks=0, init_values=1.0,
        block_fn=partial(Block, attn_class=MemEffAttention))
    model.camera_head = CameraHead(dim_in=128, trunk_depth=1, num_heads=4)
    dpt = dict(dim_in=128, features=16, out_channels=[8, 16, 32, 32], intermediate_layer_idx=[0, 1, 2, 3])
    model.depth_head = DPTHead(output_dim=2, activation="exp", conf_activation="expp1", **dpt)
    model.point_head = DPTHead(output_dim=4, activation="inv_log", conf_activation="expp1", **dpt)
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="folder holding the reference `vggt` package")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check-shared", type=Path, help="the shared 28 MB fixture: first check the construction reproduces it")
    args = parser.parse_args(argv)
    from moe3d_ros.model import VGGT, preset
    from parity_fixture import randomized_state_dict

    torch.manual_seed(args.seed)
    reference = reference_model(args.reference)
    if args.check_shared:
        shared = torch.load(args.check_shared, weights_only=True)
        reference.load_state_dict(shared["state_dict"], strict=True)
        case = shared["cases"]["s2_140x182"]
        with torch.no_grad():
            out = reference(case["images"])
        torch.testing.assert_close(out["depth"], case["outputs"]["depth"], atol=1e-6, rtol=1e-6)
        print("construction reproduces the shared fixture")
    ours = VGGT(preset("tiny").with_heads(HEADS))
    shapes = {k: v.shape for k, v in ours.state_dict().items()}
    state = randomized_state_dict(shapes, args.seed)
    reference.load_state_dict(state, strict=True)  # same key names and shapes
    generator = torch.Generator().manual_seed(args.seed + 1)
    cases = {}
    for name, (frames, height, width) in CASES.items():
        pixels = torch.randint(0, 256, (frames, 3, height, width), generator=generator, dtype=torch.uint8)
        with torch.no_grad():
            out = reference(pixels.float() / 255)
        cases[name] = {"pixels": pixels, "outputs": {k: out[k] for k in ("pose_enc", "depth", "depth_conf", "world_points",
                                                                          "world_points_conf")},
                       "pose_enc_list": list(out["pose_enc_list"])}
        for key, value in cases[name]["outputs"].items():
            assert torch.isfinite(value).all(), (name, key)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"seed": args.seed, "reference_commit": "a288dd0f", "preset": "tiny", "cases": cases}, OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
