#!/usr/bin/env python3
"""The MoE3D mechanism, isolated: a DPT head and an MoE head trained side by side on the same
fixed features, on the same frames, for the same number of steps, under the uncertainty the real
head faces.

The features stand in for a backbone that knows the depth distribution inside each token but not
where inside the token an edge runs: per 14x14 patch, the nearest and the farthest log
ground-truth depth (soft bins) and the share of its pixels on the near side, mixed by one fixed
random projection into the heads' token width (the same tokens for both heads and all four of the
DPT's input layers). The full-resolution image, which shows where the edge runs, reaches only the
MoE head's gate. So a regression head can only blend the two sides across a patch that holds an
edge, while the mixture's experts can hold both sides (expert k learns the k / (K - 1) local
quantile of the depth where its 15 px square holds a depth step above 5%: local_quantile_nll;
elsewhere both learn the pixel's own depth, so they agree on a sloped floor) and its gate, reading
the image, can switch at the edge: its winner steps. Both heads are the package's own
(model/heads), trained with the package's losses (a Laplace NLL with confidence for the DPT
head; the local-quantile objective and a gate-entropy term for the MoE head); scored on held-out
frames with the evaluation's metrics, mixed pixels and the 1 px edge F1 among them.

    python scripts/head_mechanism.py                      # the study's run (about 15 minutes on one CPU core)
    python scripts/head_mechanism.py --steps 4 --train-frames 8 --eval-frames 2 --height 56 --width 84   # seconds
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from moe3d_ros.data.synthetic import SyntheticConfig, default_intrinsics, generate_sequence
from moe3d_ros.data.synthetic.config import WORLDS
from moe3d_ros.eval import metrics as M
from moe3d_ros.model import MoEConfig, preset
from moe3d_ros.model.heads import DPTHead
from moe3d_ros.model.heads.dpt_head import activate_depth
from moe3d_ros.model.heads.moe_head import MoEDepthHead
from moe3d_ros.train.losses import gate_entropy, local_quantile_nll, mixture_nll, winner_takes_all_nll

PATCH = 14
QUANTILE_WINDOW = 15  # odd, about a patch: the square whose nearest and farthest depth the experts learn
DEPTH_BINS = torch.linspace(np.log(0.5), np.log(12.0), 48)  # log-depth code: the heads' LayerNorm keeps a pattern, not a level
DEPTH_WIDTH = 0.12  # of each bin's Gaussian, in log depth
SHARE_BINS = torch.linspace(0.0, 1.0, 12)  # the near side's share of a patch, as soft bins
SHARE_WIDTH = 0.08
TRAIN_SEED0, EVAL_SEED0 = 0, 900000  # the synthetic protocol's split
SCORED = ("abs_rel", "boundary_f1", "boundary_f1_1px", "mixed_pixel_ratio", "flying_ratio")


def render(seed0: int, count: int, config: SyntheticConfig) -> dict[str, torch.Tensor]:
    """One frame of each of `count` scenes: images [N, 3, H, W] in [0, 1], depth and valid [N, H, W]."""
    sequences = [generate_sequence(seed0 + i, 1, config) for i in range(count)]
    return {
        "images": torch.from_numpy(np.stack([s.images[0] for s in sequences])).permute(0, 3, 1, 2).float() / 255,
        "depth": torch.from_numpy(np.stack([s.depth[0] for s in sequences])).float(),
        "valid": torch.from_numpy(np.stack([s.valid[0] for s in sequences])),
    }


def depth_code(log_depth: torch.Tensor) -> torch.Tensor:
    """[N, 1, h, w] log depth -> [N, bins, h * w] soft bins."""
    return torch.exp(-(((log_depth.flatten(2) - DEPTH_BINS[None, :, None]) / DEPTH_WIDTH) ** 2))


def coarse_tokens(frames: dict[str, torch.Tensor], width: int, seed: int = 0) -> torch.Tensor:
    """[N, P, width]: per patch the nearest and farthest log depth of its valid pixels (soft bins)
    and the share of them nearer to the nearest than to the farthest (as soft bins too): where a
    patch straddles an edge, both sides' depths and how much of each, but not which pixel has which."""
    valid = frames["valid"][:, None]
    log_depth = frames["depth"].clamp_min(1e-3).log()[:, None]
    near = -F.max_pool2d(torch.where(valid, -log_depth, -1e3), PATCH)
    far = F.max_pool2d(torch.where(valid, log_depth, -1e3), PATCH)
    up = lambda t: F.interpolate(t, scale_factor=PATCH, mode="nearest")  # noqa: E731
    near_side = (valid & ((log_depth - up(near)).abs() <= (up(far) - log_depth).abs())).float()
    share = F.avg_pool2d(near_side, PATCH) / F.avg_pool2d(valid.float(), PATCH).clamp_min(1e-6)
    share_code = torch.exp(-(((share.flatten(2) - SHARE_BINS[None, :, None]) / SHARE_WIDTH) ** 2))
    features = torch.cat([4.0 * depth_code(near), 4.0 * depth_code(far), 4.0 * share_code], dim=1).transpose(1, 2)
    projection = torch.randn(features.shape[-1], width, generator=torch.Generator().manual_seed(seed)) / features.shape[-1] ** 0.5
    return features @ projection


def token_dict(tokens: torch.Tensor, layers: tuple[int, ...]) -> dict[int, torch.Tensor]:
    return {layer: tokens[:, None] for layer in layers}  # [B, S=1, P, C] for each input layer of the head


def train(head: torch.nn.Module, tokens: torch.Tensor, frames: dict[str, torch.Tensor], args: argparse.Namespace) -> float:
    """Adam over random mini-batches of frames; returns seconds. The MoE head learns with its
    warm-up objective (local quantiles, or winner-takes-all) for `wta_steps`, then the mixture NLL;
    a gate-entropy term throughout."""
    moe = isinstance(head, MoEDepthHead)
    layers = head.layers
    hw = tuple(frames["depth"].shape[-2:])
    optimizer = torch.optim.Adam(head.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    for step in range(args.steps):
        pick = torch.from_numpy(rng.choice(len(tokens), args.batch, replace=False))
        target, valid = frames["depth"][pick][:, None], frames["valid"][pick][:, None]  # [B, S=1, H, W]
        if moe:
            out = head.mixture(token_dict(tokens[pick], layers), 0, hw, frames["images"][pick][:, None])
            log_gate = out.log_gate
            if step < args.wta_steps and args.warm_up == "local_quantiles":
                loss = local_quantile_nll(out.expert_depth, out.expert_conf, log_gate, target, valid, "laplace",
                                          QUANTILE_WINDOW, args.quantile_step_ratio)
            elif step < args.wta_steps:
                loss = winner_takes_all_nll(out.expert_depth, out.expert_conf, log_gate, target, valid, "laplace")
            else:
                loss = mixture_nll(out.expert_depth, out.expert_conf, log_gate, target, valid, "laplace")
            loss = loss + args.entropy_weight * gate_entropy(log_gate, valid)
        else:
            depth, conf = activate_depth(head(token_dict(tokens[pick], layers), 0, hw).flatten(0, 1))
            depth, conf = depth.unflatten(0, target.shape[:2])[:, :, None], conf.unflatten(0, target.shape[:2])[:, :, None]
            loss = mixture_nll(depth, conf, torch.zeros_like(depth), target, valid, "laplace")  # one expert: Laplace NLL
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


@torch.no_grad()
def predict(head: torch.nn.Module, tokens: torch.Tensor, frames: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray | None]:
    """Depth [N, H, W] (the MoE head: the winning expert's) and the winning expert per pixel."""
    hw = tuple(frames["depth"].shape[-2:])
    if isinstance(head, MoEDepthHead):
        head.fusion = "winner"
        out = head.mixture(token_dict(tokens, head.layers), 0, hw, frames["images"][:, None])
        return out.depth[:, 0].numpy(), out.winner[:, 0].numpy()
    depth, _ = activate_depth(head(token_dict(tokens, head.layers), 0, hw).flatten(0, 1))
    return depth.numpy(), None


def mean_of_finite(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def score(depth: np.ndarray, winner: np.ndarray | None, frames: dict[str, torch.Tensor], intrinsics: np.ndarray) -> dict[str, float]:
    """The evaluation's metrics, averaged over frames (NaN-aware where a frame has no edge)."""
    rows = []
    for i in range(len(depth)):
        gt, valid = frames["depth"][i].numpy(), frames["valid"][i].numpy()
        row = {
            "abs_rel": M.depth_metrics(depth[i], gt, valid)["abs_rel"],
            "boundary_f1": M.boundary_f1(depth[i], gt, valid),
            "boundary_f1_1px": M.depth_edge_f1(depth[i], gt, valid),
            "mixed_pixel_ratio": M.mixed_pixel_ratio(depth[i], gt, valid),
            "flying_ratio": M.flying_points(depth[i], gt, valid, intrinsics)["flying_ratio"],
        }
        if winner is not None:
            row["gate_switches_near_edges"] = 1.0 - M.gate_switches_off_edges(winner[i], gt, valid)
            row["expert_shares"] = np.bincount(winner[i][valid].ravel(), minlength=int(winner.max()) + 1) / valid.sum()
        rows.append(row)
    result = {key: mean_of_finite([r[key] for r in rows]) for key in rows[0] if key != "expert_shares"}
    if winner is not None:  # (one length for all frames: minlength is the largest winner of any frame)
        result["expert_shares"] = [round(float(s), 3) for s in np.mean([r["expert_shares"] for r in rows], axis=0)]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=84, help="a multiple of 14 (the token grid: 6 x 8 at 84 x 112)")
    parser.add_argument("--width", type=int, default=112)
    parser.add_argument("--style", default="natural", choices=("natural", "hard"), help="the generator's texture style")
    parser.add_argument("--world", default="plausible", choices=WORLDS, help="the generator's world")
    parser.add_argument("--train-frames", type=int, default=128, help="one frame each of this many training scenes")
    parser.add_argument("--eval-frames", type=int, default=16, help="one frame each of this many held-out scenes")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--experts", type=int, default=2)
    parser.add_argument("--warm-up", default="local_quantiles", choices=("local_quantiles", "best"),
                        help="MoE: local-quantile targets or relaxed winner-takes-all, for --wta-steps")
    parser.add_argument("--quantile-step-ratio", type=float, default=1.05,
                        help="MoE: the local quantiles only where the square holds a depth step above this ratio, "
                             "elsewhere the pixel's own depth (0: the quantiles everywhere)")
    parser.add_argument("--wta-steps", type=int, default=10**9, help="MoE: steps of the warm-up objective (then the mixture NLL)")
    parser.add_argument("--entropy-weight", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    config = SyntheticConfig(height=args.height, width=args.width, texture_style=args.style, world=args.world)
    intrinsics = default_intrinsics(config)
    train_frames = render(TRAIN_SEED0, args.train_frames, config)
    eval_frames = render(EVAL_SEED0, args.eval_frames, config)
    vggt = dataclasses.replace(preset("tiny"), img_size=args.width)
    heads = {
        "dpt": DPTHead(vggt, output_dim=2),
        "moe": MoEDepthHead(vggt.with_moe(MoEConfig(num_experts=args.experts, gate_image=True, gate_layers=2))),
    }
    train_tokens = coarse_tokens(train_frames, vggt.head_dim_in)
    eval_tokens = coarse_tokens(eval_frames, vggt.head_dim_in)
    results: dict[str, dict] = {}
    for name, head in heads.items():
        torch.manual_seed(args.seed)
        seconds = train(head, train_tokens, train_frames, args)
        head.eval()
        results[name] = {**score(*predict(head, eval_tokens, eval_frames), eval_frames, intrinsics), "train_s": round(seconds, 1)}
    dpt, moe = results["dpt"], results["moe"]
    results["moe_over_dpt"] = {k: moe[k] / dpt[k] if dpt[k] else float("nan") for k in SCORED}
    results["settings"] = vars(args) | {"json": str(args.json) if args.json else None}
    print(f"{args.eval_frames} held-out frames ({args.style} textures, {args.world} world), {args.steps} steps each, "
          "same tokens for both heads")
    print(f"{'':28}{'DPT':>10}{'MoE winner':>12}{'MoE / DPT':>11}")
    for key in SCORED:
        print(f"{key:28}{dpt[key]:>10.4f}{moe[key]:>12.4f}{results['moe_over_dpt'][key]:>11.3f}")
    print(f"{'gate switches near edges':28}{'':>10}{moe['gate_switches_near_edges']:>12.3f}")
    print(f"{'expert shares':28}{'':>10}{' '.join(f'{s:.2f}' for s in moe['expert_shares']):>12}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
