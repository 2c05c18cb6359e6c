"""Training objective of the MoE depth head, in VGGT's normalised space.

Ground truth is expressed in the first camera's frame and divided by the mean distance of its
valid points to that camera, the normalisation VGGT is trained with; predictions are compared
in that space, so the loss does not depend on the ground truth's global scale.

- Mixture negative log-likelihood of the ground-truth depth under the K experts (Laplace or
  Gaussian, scale = 1 / expert confidence), computed with log-sum-exp.
- Gate entropy times lambda: minimising it pushes every pixel towards one expert.
- A warm-up that makes the experts differ (the first `winner_takes_all_steps` steps): relaxed
  winner-takes-all on the ground truth, or each expert regressing its own local quantile of the
  ground truth (nearest .. farthest depth in a small window), so that next to an edge the experts
  hold the foreground and the background depth and on a surface they agree.
- Optional, for an unfrozen backbone: VGGT-style depth-gradient loss and camera loss.
- Optional: a scale-invariant log-depth L1 (one scale per frame or per window) and multi-scale
  gradient matching of the log depth: the main depth loss of the demo backbone. The
  confidence-weighted likelihood lets a model give up on pixels it gets badly wrong (its gradient
  there is 1 / |error|), which is where relative-error metrics such as AbsRel are decided (a near
  object predicted as the floor behind it); these terms weigh every pixel's relative error alike,
  and `nll_weight` below 1 makes the likelihood (which trains the confidence) the second term.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..model.geometry import cameras_to_pose_encoding, depth_to_world_points


LIKELIHOODS = ("laplace", "gaussian", "log_laplace", "log_gaussian")
QUANTILE_GATE_SCOPES = ("all", "band")


@dataclass(frozen=True)
class LossConfig:
    likelihood: str = "laplace"  # "gaussian", or in log depth (MDA's form): "log_laplace", "log_gaussian"
    nll_weight: float = 1.0  # the (mixture) likelihood with confidence; < 1 makes it second to the terms below
    entropy_weight: float = 1e-4
    gradient_weight: float = 0.0
    scale_invariant_weight: float = 0.0
    scale_invariant_scope: str = "frame"  # one scale per "frame", or per "window" (frames keep one unit)
    gradient_matching_weight: float = 0.0  # multi-scale gradient matching of the log depth (gradient_matching_loss)
    camera_weight: float = 0.0
    camera_iteration_decay: float = 0.6  # weight of refinement iteration i of n: decay^(n-1-i)
    winner_takes_all_steps: int = 0  # first steps: the MoE warm-up below instead of the mixture NLL
    warm_up_targets: str = "best"  # "best": relaxed winner-takes-all; "local_quantiles": see local_quantile_nll
    quantile_window: int = 9  # pixels, odd: the square whose ground-truth quantiles the experts learn
    quantile_step_ratio: float = 0.0  # > 1: the quantiles only where the square holds a depth step above it (local_quantile_targets)
    quantile_gate_scope: str = "all"  # local_quantile_nll's gate term averaged over "all" valid pixels, or the "band" where roles differ

    def __post_init__(self) -> None:
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood {self.likelihood!r} unknown (use one of {LIKELIHOODS})")
        weights = (self.nll_weight, self.entropy_weight, self.gradient_weight, self.scale_invariant_weight,
                   self.gradient_matching_weight, self.camera_weight)
        if min(weights) < 0:
            raise ValueError("loss weights must be non-negative")
        if self.scale_invariant_scope not in ("frame", "window"):
            raise ValueError(f"loss.scale_invariant_scope {self.scale_invariant_scope!r} unknown (use 'frame' or 'window')")
        if self.winner_takes_all_steps < 0:
            raise ValueError("loss.winner_takes_all_steps must be >= 0")
        if self.warm_up_targets not in ("best", "local_quantiles"):
            raise ValueError(f"loss.warm_up_targets {self.warm_up_targets!r} unknown (use 'best' or 'local_quantiles')")
        if self.quantile_window < 3 or self.quantile_window % 2 == 0:
            raise ValueError(f"loss.quantile_window must be an odd number of pixels >= 3, got {self.quantile_window}")
        if self.quantile_step_ratio != 0.0 and self.quantile_step_ratio <= 1.0:
            raise ValueError(f"loss.quantile_step_ratio must be 0 (off) or a depth ratio > 1, got {self.quantile_step_ratio}")
        if self.quantile_gate_scope not in QUANTILE_GATE_SCOPES:
            raise ValueError(f"loss.quantile_gate_scope {self.quantile_gate_scope!r} unknown (use one of {QUANTILE_GATE_SCOPES})")


def normalisation_scale(depth: Tensor, valid: Tensor, extrinsics: Tensor, intrinsics: Tensor) -> Tensor:
    """[B] factor that makes the mean distance of valid points to the first camera 1.

    depth/valid [B, S, H, W]; extrinsics [B, S, 3, 4] camera-from-world with world = frame 0's
    camera (so world points already sit in the first camera's frame).
    """
    points = depth_to_world_points(depth, extrinsics, intrinsics)
    distance = points.norm(dim=-1)
    count = valid.flatten(1).sum(dim=1)
    if bool((count == 0).any()):
        raise ValueError("a training window has no valid ground-truth depth")
    mean = (distance * valid).flatten(1).sum(dim=1) / count
    return 1.0 / mean


def expert_log_likelihood(expert_depth: Tensor, expert_conf: Tensor, target: Tensor, kind: str) -> Tensor:
    """log p_k(target) per expert; expert axis at dim -3 ([..., K, H, W]), target [..., H, W]
    (one for all experts) or [..., K, H, W] (one per expert). The "log_" kinds are densities of
    the log depth (scale 1 / conf in log units): an error costs its ratio, near or far alike."""
    if target.dim() < expert_depth.dim():
        target = target.unsqueeze(-3)
    if kind.startswith("log_"):  # invalid targets (0) are masked out later: keep them finite
        kind, target, expert_depth = kind[4:], target.clamp_min(1e-6).log(), expert_depth.clamp_min(1e-6).log()
    residual = (target - expert_depth) * expert_conf  # error in units of the scale
    log_conf = torch.log(expert_conf)
    if kind == "laplace":
        return log_conf - math.log(2.0) - residual.abs()
    return log_conf - 0.5 * math.log(2.0 * math.pi) - 0.5 * residual.square()


def mixture_nll(expert_depth: Tensor, expert_conf: Tensor, log_gate: Tensor, target: Tensor, valid: Tensor, kind: str) -> Tensor:
    """Mean over valid pixels of -log sum_k w_k p_k(target)."""
    log_joint = log_gate + expert_log_likelihood(expert_depth, expert_conf, target, kind)
    nll = -torch.logsumexp(log_joint, dim=-3)
    return masked_mean(nll, valid)


WTA_RELAXATION = 0.05  # weight shared by the losing experts, so that none stops learning


def winner_takes_all_nll(expert_depth: Tensor, expert_conf: Tensor, log_gate: Tensor, target: Tensor, valid: Tensor, kind: str) -> Tensor:
    """Multiple-hypothesis warm-up (relaxed winner-takes-all): per pixel, the expert that explains
    the target best gets weight 1 - eps of the likelihood loss and the others share eps, and the
    gate learns by cross-entropy to pick that expert. Near copies diverge this way into distinct
    hypotheses (e.g. the near and the far side of an edge), which the mixture NLL alone, at a
    uniform gate over near-identical experts, does not make happen."""
    nll = -expert_log_likelihood(expert_depth, expert_conf, target, kind)
    best = nll.detach().argmin(dim=-3, keepdim=True)
    num_experts = nll.shape[-3]
    if num_experts == 1:
        return masked_mean(nll.squeeze(-3), valid)
    weights = torch.full_like(nll, WTA_RELAXATION / (num_experts - 1)).scatter(-3, best, 1.0 - WTA_RELAXATION)
    expert_term = (weights * nll).sum(dim=-3)
    gate_term = -log_gate.gather(-3, best).squeeze(-3)
    return masked_mean(expert_term, valid) + masked_mean(gate_term, valid)


# Experts whose targets differ by less than this (log depth) from the best one are equally right for
# the gate: a switch between them makes a step below half the boundary metric's lowest threshold.
QUANTILE_GATE_TOLERANCE = math.log(1.025)


def local_quantile_targets(target: Tensor, valid: Tensor, num_experts: int, window: int, step_ratio: float = 0.0) -> Tensor:
    """[..., K, H, W]: for expert k the k / (K - 1) quantile of the valid ground truth in the
    window x window square around each pixel (expert 0 the nearest depth, K - 1 the farthest).
    With step_ratio > 1 only where the square holds two valid neighbours whose depths differ by
    more than that ratio; elsewhere every expert's target is the pixel's own depth, so on a sloped
    surface the experts agree instead of sitting half the square's depth range apart.
    target/valid [..., H, W]; NaN where the square holds no valid pixel (with step_ratio, also at
    an invalid pixel away from a step)."""
    *lead, height, width = target.shape
    pad = window // 2
    depth = torch.where(valid, target, torch.full_like(target, float("nan"))).reshape(-1, 1, height, width)
    patches = F.unfold(F.pad(depth, (pad, pad, pad, pad), value=float("nan")), window)  # [N, w*w, H*W]
    levels = torch.linspace(0.0, 1.0, num_experts, dtype=target.dtype, device=target.device)
    quantiles = torch.nanquantile(patches, levels, dim=1).reshape(num_experts, -1, 1, height, width)  # [K, N, 1, H, W]
    if step_ratio > 0:
        near_step = F.max_pool2d(depth_steps(depth, step_ratio).to(depth.dtype), window, stride=1, padding=pad) > 0
        quantiles = torch.where(near_step, quantiles, depth)
    return quantiles.squeeze(2).transpose(0, 1).reshape(*lead, num_experts, height, width)


def depth_steps(depth: Tensor, ratio: float) -> Tensor:
    """[N, 1, H, W] bool: the pixel and a valid 4-neighbour differ in depth by more than `ratio`
    (NaN marks an invalid pixel); both pixels of such a pair are marked. The torch twin of
    eval.metrics._step_pixels (NumPy, for scoring), so that targets are built on the training device."""
    log_depth = depth.clamp_min(1e-6).log()
    threshold = math.log(ratio)
    steps = torch.zeros_like(depth, dtype=torch.bool)
    across = (log_depth[..., :, 1:] - log_depth[..., :, :-1]).abs() > threshold  # NaN compares False
    down = (log_depth[..., 1:, :] - log_depth[..., :-1, :]).abs() > threshold
    steps[..., :, 1:] |= across
    steps[..., :, :-1] |= across
    steps[..., 1:, :] |= down
    steps[..., :-1, :] |= down
    return steps


def local_quantile_nll(
    expert_depth: Tensor, expert_conf: Tensor, log_gate: Tensor, target: Tensor, valid: Tensor, kind: str, window: int,
    step_ratio: float = 0.0, gate_scope: str = "all",
) -> Tensor:
    """Warm-up with fixed roles (cf. SMD-Nets' foreground/background modes): expert k learns the
    k / (K - 1) local quantile of the ground truth (local_quantile_targets), so next to a depth
    edge the experts hold both sides' depths and on a surface they agree. The gate learns to put
    its weight on the experts whose targets lie within QUANTILE_GATE_TOLERANCE of the nearest
    one to the pixel's own depth (-log of their summed gate): beside an edge that is the pixel's
    side, on a surface it is every expert, so there it gets no signal and no reason to follow
    texture. Unlike winner-takes-all this does not depend on which expert the backbone's local
    error favours. gate_scope "all" averages the gate term over every valid pixel, "band" only
    over the pixels where some expert is not acceptable: the edge band, a few percent of the image,
    where the gate's only signal (the pixel's side of the step) is, so that it weighs as much as
    the experts' term instead of the band's share of it."""
    num_experts = expert_depth.shape[-3]
    if num_experts == 1:
        return masked_mean(-expert_log_likelihood(expert_depth, expert_conf, target, kind).squeeze(-3), valid)
    quantiles = local_quantile_targets(target, valid, num_experts, window, step_ratio)
    quantiles = torch.where(valid.unsqueeze(-3), quantiles, torch.ones_like(quantiles))  # a valid pixel is in its own window
    expert_term = -expert_log_likelihood(expert_depth, expert_conf, quantiles, kind).mean(dim=-3)
    distance = (quantiles.log() - torch.where(valid, target, torch.ones_like(target)).log().unsqueeze(-3)).abs()
    acceptable = distance <= distance.amin(dim=-3, keepdim=True) + QUANTILE_GATE_TOLERANCE
    gate_term = -torch.logsumexp(log_gate.masked_fill(~acceptable, float("-inf")), dim=-3)
    gate_pixels = valid & ~acceptable.all(dim=-3) if gate_scope == "band" else valid
    return masked_mean(expert_term, valid) + masked_mean(gate_term, gate_pixels)


def gate_entropy(log_gate: Tensor, valid: Tensor) -> Tensor:
    """Mean over valid pixels of the gate's entropy (nats); gates on the expert axis dim -3."""
    entropy = -(log_gate.exp() * log_gate).sum(dim=-3)
    return masked_mean(entropy, valid)


def gradient_loss(depth: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """L1 between horizontal and vertical depth differences of prediction and ground truth."""
    error = depth - target
    dx = (error[..., :, 1:] - error[..., :, :-1]).abs()
    dy = (error[..., 1:, :] - error[..., :-1, :]).abs()
    valid_x = valid[..., :, 1:] & valid[..., :, :-1]
    valid_y = valid[..., 1:, :] & valid[..., :-1, :]
    return 0.5 * (masked_mean(dx, valid_x) + masked_mean(dy, valid_y))


def scale_invariant_loss(depth: Tensor, target: Tensor, valid: Tensor, scope: str = "frame") -> Tensor:
    """Mean |log(depth / target) - m| over valid pixels, m the mean log ratio of the frame (scope
    "frame": each frame's relative error up to one scale, as per-image scale-fitted metrics see it)
    or of the whole window (scope "window": the frames must also agree on one unit, as a fused cloud
    and the node's window-to-window scale need). [B, S, H, W]."""
    log_ratio = torch.log(depth.clamp_min(1e-6)) - torch.log(torch.where(valid, target, torch.ones_like(target)))
    weights = valid.to(depth.dtype)
    dims = (-2, -1) if scope == "frame" else (-3, -2, -1)
    count = weights.sum(dim=dims, keepdim=True)
    shift = (log_ratio * weights).sum(dim=dims, keepdim=True) / count.clamp_min(1.0)
    return masked_mean((log_ratio - shift).abs(), valid)


def gradient_matching_loss(depth: Tensor, target: Tensor, valid: Tensor, scales: int = 4) -> Tensor:
    """Multi-scale gradient matching on the log-depth residual (MiDaS): the mean L1 of the
    residual's horizontal and vertical differences between valid neighbours, at `scales` scales
    (every 2^k-th pixel), averaged. Zero for any prediction that is the truth times a constant,
    so it only asks for edges in the right places and flat, undistorted surfaces. [..., H, W]."""
    residual = torch.log(depth.clamp_min(1e-6)) - torch.log(torch.where(valid, target, torch.ones_like(target)))
    total = depth.new_zeros(())
    for level in range(scales):
        step = 2**level
        r, v = residual[..., ::step, ::step], valid[..., ::step, ::step]
        dx = (r[..., :, 1:] - r[..., :, :-1]).abs()
        dy = (r[..., 1:, :] - r[..., :-1, :]).abs()
        total = total + 0.5 * (masked_mean(dx, v[..., :, 1:] & v[..., :, :-1]) + masked_mean(dy, v[..., 1:, :] & v[..., :-1, :]))
    return total / scales


def camera_loss(pose_enc_list: list[Tensor], target_pose_enc: Tensor, decay: float) -> Tensor:
    """Weighted L1 over the refinement iterations; later iterations weigh more."""
    total = target_pose_enc.new_zeros(())
    n = len(pose_enc_list)
    for i, pose_enc in enumerate(pose_enc_list):
        total = total + decay ** (n - 1 - i) * (pose_enc - target_pose_enc).abs().mean()
    return total


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


@dataclass
class Targets:
    """Ground truth of a batch of windows at the model's resolution."""

    depth: Tensor  # [B, S, H, W]
    valid: Tensor  # [B, S, H, W] bool
    extrinsics: Tensor  # [B, S, 3, 4] camera-from-world, world = frame 0's camera
    intrinsics: Tensor  # [B, S, 3, 3] of the model's pixel grid


def compute_losses(output, targets: Targets, cfg: LossConfig, winner_takes_all: bool = False) -> dict[str, Tensor]:
    """All loss terms of one step (keys: nll, entropy, [wta], [gradient], [scale_invariant],
    [gradient_matching], [camera], total).

    `output` is the model's VGGTOutput; with the MoE head its mixture is used, with the plain
    DPT head the depth and confidence form a one-expert mixture. With `winner_takes_all` the
    warm-up loss (cfg.warm_up_targets: relaxed winner-takes-all or local quantiles) replaces the
    mixture NLL in the total (the NLL is still reported, the warm-up as "wta").
    """
    valid = targets.valid & torch.isfinite(targets.depth) & (targets.depth > 0)
    scale = normalisation_scale(targets.depth.nan_to_num(0.0), valid, targets.extrinsics, targets.intrinsics)
    target = targets.depth.nan_to_num(0.0) * scale[:, None, None, None]
    if output.mixture is not None:
        expert_depth, expert_conf, log_gate = output.mixture.expert_depth, output.mixture.expert_conf, output.mixture.log_gate
    else:  # a plain DPT head is a one-expert mixture: the NLL is VGGT's confidence-weighted depth loss
        expert_depth, expert_conf = output.depth.unsqueeze(2), output.depth_conf.unsqueeze(2)
        log_gate = torch.zeros_like(expert_depth)
    terms = {
        "nll": mixture_nll(expert_depth, expert_conf, log_gate, target, valid, cfg.likelihood),
        "entropy": gate_entropy(log_gate, valid),
    }
    if winner_takes_all and cfg.warm_up_targets == "local_quantiles":
        terms["wta"] = local_quantile_nll(
            expert_depth, expert_conf, log_gate, target, valid, cfg.likelihood, cfg.quantile_window,
            cfg.quantile_step_ratio, cfg.quantile_gate_scope,
        )
    elif winner_takes_all:
        terms["wta"] = winner_takes_all_nll(expert_depth, expert_conf, log_gate, target, valid, cfg.likelihood)
    total = cfg.nll_weight * terms["wta" if winner_takes_all else "nll"] + cfg.entropy_weight * terms["entropy"]
    if cfg.gradient_weight > 0:
        terms["gradient"] = gradient_loss(output.depth, target, valid)
        total = total + cfg.gradient_weight * terms["gradient"]
    if cfg.scale_invariant_weight > 0:
        terms["scale_invariant"] = scale_invariant_loss(output.depth, target, valid, cfg.scale_invariant_scope)
        total = total + cfg.scale_invariant_weight * terms["scale_invariant"]
    if cfg.gradient_matching_weight > 0:
        terms["gradient_matching"] = gradient_matching_loss(output.depth, target, valid)
        total = total + cfg.gradient_matching_weight * terms["gradient_matching"]
    if cfg.camera_weight > 0:
        if not output.pose_enc_list:
            raise ValueError("camera_weight > 0 needs the camera head in the forward pass")
        extrinsics = targets.extrinsics.clone()
        extrinsics[..., 3] = extrinsics[..., 3] * scale[:, None, None]
        target_enc = cameras_to_pose_encoding(extrinsics, targets.intrinsics, tuple(output.depth.shape[-2:]))
        terms["camera"] = camera_loss(output.pose_enc_list, target_enc, cfg.camera_iteration_decay)
        total = total + cfg.camera_weight * terms["camera"]
    terms["total"] = total
    return terms


__all__ = [
    "LossConfig",
    "Targets",
    "camera_loss",
    "compute_losses",
    "expert_log_likelihood",
    "gate_entropy",
    "gradient_loss",
    "gradient_matching_loss",
    "local_quantile_nll",
    "local_quantile_targets",
    "mixture_nll",
    "normalisation_scale",
    "scale_invariant_loss",
    "winner_takes_all_nll",
]
