"""Run several systems on the same frames and score them.

A system is a model plus, for an MoE head, a fusion. The DPT baseline and the MoE model each run
once per window; both MoE fusions come from the same mixture. Timings per model and stage are
kept, so the report states the MoE head's cost measured in the same run as its gains.
"""
from __future__ import annotations

import resource
import statistics
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from ..inference.engine import resolve_device, resolve_precision
from ..inference.onnx_backend import OnnxModel
from ..model import VGGT
from ..model.config import FUSIONS
from ..model.geometry import depth_to_world_points
from ..model.heads.moe_head import fuse
from ..outputs.filtering import FilterConfig, boundary_clean_mask
from ..timing import StageTimer
from . import metrics as M
from .reconstruction import reconstruction_metrics


@dataclass
class SystemPrediction:
    depth: np.ndarray  # [S, H, W]
    confidence: np.ndarray  # [S, H, W]
    extrinsics: np.ndarray  # [S, 3, 4] camera-from-world (world = frame 0's camera)
    intrinsics: np.ndarray  # [S, 3, 3]
    winner: np.ndarray | None = None  # [S, H, W] expert index (MoE)
    num_experts: int = 0


@dataclass
class Window:
    """One evaluation window on the model's pixel grid, with ground truth."""

    name: str
    images: torch.Tensor  # [S, 3, H, W] in [0, 1]
    depth: np.ndarray  # [S, H, W] ground truth
    valid: np.ndarray  # [S, H, W]
    extrinsics: np.ndarray | None  # [S, 3, 4] ground truth, world = frame 0's camera (None: single images)
    intrinsics: np.ndarray  # [S, 3, 3] ground truth, for the ground truth's resolution
    max_depth: float | None = None  # ground truth beyond is ignored, predictions clipped (Sintel: 70 m)


def oracle_pick(experts: np.ndarray, winner: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """[S, H, W] index of the hypothesis nearest the truth in log depth, after the per-frame scale
    that fits the winner to the truth (median ratio, as scoring fits it); where the truth is
    invalid, the winner's own hypothesis is no better known: index of the nearest to the winner."""
    picks = []
    for frame in range(experts.shape[0]):
        valid = np.isfinite(truth[frame]) & (truth[frame] > 0) & np.isfinite(winner[frame]) & (winner[frame] > 0)
        scale = float(np.median(truth[frame][valid] / winner[frame][valid])) if valid.any() else 1.0
        target = np.where(valid, truth[frame], winner[frame] * scale)
        distance = np.abs(np.log(np.maximum(experts[frame] * scale, 1e-9)) - np.log(np.maximum(target, 1e-9))[None])
        picks.append(distance.argmin(axis=0))
    return np.stack(picks)


@dataclass
class Evaluator:
    """Models by name ("dpt", "moe"); systems are derived: dpt, moe_winner, moe_surface, moe_mean."""

    models: dict[str, VGGT | OnnxModel]
    device: str = "auto"
    precision: str = "auto"
    timings: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    peak_memory_gib: dict[str, float] = field(default_factory=dict)
    warmed_up: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.torch_device = resolve_device(self.device)
        self.dtype = resolve_precision(self.precision, self.torch_device)
        for model in self.models.values():
            if isinstance(model, VGGT):  # an OnnxModel runs where its execution provider does
                model.to(self.torch_device).eval()

    @property
    def systems(self) -> list[str]:
        names = []
        for name, model in self.models.items():
            names += [f"{name}_{f}" for f in FUSIONS] if model.config.depth_head == "moe" else [name]
        return names

    @torch.inference_mode()
    def predict(self, images: torch.Tensor, truth: np.ndarray | None = None) -> dict[str, SystemPrediction]:
        """Every system's prediction of the window; with `truth` ([S, H, W] ground truth on the
        model's grid, 0 / NaN invalid) also `<moe>_oracle`: per pixel the hypothesis nearest the
        truth, which says whether the hypotheses lie on the surfaces at all (item 4 of the study)."""
        out: dict[str, SystemPrediction] = {}
        images = images.to(self.torch_device)
        for name, model in self.models.items():
            autocast = torch.autocast(self.torch_device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)
            if name not in self.warmed_up:  # the first call pays for allocation and kernel choice: not timed
                with autocast:
                    model(images, heads=("camera", "depth"))
                self.warmed_up.add(name)
            timer = StageTimer(self.torch_device)
            if self.torch_device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            with autocast:
                result = model(images, heads=("camera", "depth"), timer=timer)
            for stage, seconds in timer.seconds.items():
                self.timings.setdefault(name, {}).setdefault(stage, []).append(seconds)
            self.timings[name].setdefault("total", []).append(timer.total())
            # CUDA: this model's peak allocation; CPU: the process's peak resident memory so far.
            peak = (torch.cuda.max_memory_allocated() if self.torch_device.type == "cuda"
                    else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**30
            self.peak_memory_gib[name] = max(self.peak_memory_gib.get(name, 0.0), peak)
            cameras = dict(extrinsics=result.extrinsics[0].float().cpu().numpy(), intrinsics=result.intrinsics[0].float().cpu().numpy())
            if result.mixture is None:
                out[name] = SystemPrediction(result.depth[0].float().cpu().numpy(), result.depth_conf[0].float().cpu().numpy(), **cameras)
                continue
            mix = result.mixture
            for fusion in FUSIONS:
                depth, conf = fuse(mix.expert_depth, mix.expert_conf, mix.gate_logits, fusion)
                out[f"{name}_{fusion}"] = SystemPrediction(
                    depth[0].float().cpu().numpy(), conf[0].float().cpu().numpy(), **cameras,
                    winner=mix.winner[0].to(torch.uint8).cpu().numpy(), num_experts=mix.gate_logits.shape[2],
                )
            if truth is not None:
                experts = mix.expert_depth[0].float().cpu().numpy()  # [S, K, H, W]
                pick = oracle_pick(experts, out[f"{name}_winner"].depth, truth)
                out[f"{name}_oracle"] = SystemPrediction(
                    np.take_along_axis(experts, pick[:, None], axis=1)[:, 0],
                    np.take_along_axis(mix.expert_conf[0].float().cpu().numpy(), pick[:, None], axis=1)[:, 0],
                    **cameras, winner=pick.astype(np.uint8), num_experts=experts.shape[1],
                )
        return out

    def speed_summary(self) -> dict[str, dict[str, float]]:
        """Median seconds per stage and window, per model, plus peak memory."""
        summary = {}
        for name, stages in self.timings.items():
            summary[name] = {f"{stage}_s": statistics.median(values) for stage, values in stages.items()}
            summary[name]["peak_memory_gib"] = self.peak_memory_gib.get(name, float("nan"))
        if "depth_head_s" in summary.get("dpt", {}) and "depth_head_s" in summary.get("moe", {}):  # (torch backend: per stage)
            summary["moe_over_dpt"] = {
                "depth_head": summary["moe"]["depth_head_s"] / summary["dpt"]["depth_head_s"],
                "total": summary["moe"]["total_s"] / summary["dpt"]["total_s"],
            }
        return summary


def score_window(window: Window, pred: SystemPrediction, multi_view: bool, max_points: int = 100_000,
                 node_filter: FilterConfig = FilterConfig()) -> dict[str, float]:
    """Per-frame depth and boundary metrics averaged over the window, and the edge metrics of the
    depth as moe3d_node publishes it with `node_filter` (default: its default filter.* parameters;
    published_*); reconstruction metrics on
    the whole window when `multi_view` (predicted cameras, ground-truth cameras), on at most
    `max_points` corresponding points drawn at random (fixed seed)."""
    per_frame: dict[str, list[float]] = {}
    for i in range(len(pred.depth)):
        gt, valid, predicted, confidence = window.depth[i], window.valid[i], pred.depth[i], pred.confidence[i]
        if predicted.shape != gt.shape:  # monocular protocols: the prediction is resized to the ground truth
            predicted, confidence = (cv2.resize(x, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR)
                                     for x in (predicted, confidence))
        band = M.discontinuity_band(gt, valid)
        values = dict(M.depth_metrics(predicted, gt, valid, max_depth=window.max_depth, band=band))
        boundary = M.boundary_scores(predicted, gt, valid)
        values.update({k: boundary[k] for k in ("boundary_f1", "boundary_precision", "boundary_recall")})
        values["boundary_f1_1px"] = M.depth_edge_f1(predicted, gt, valid)
        values["mixed_pixel_ratio"] = M.mixed_pixel_ratio(predicted, gt, valid)
        values["mixed_own_surface_ratio"] = M.mixed_own_surface_ratio(predicted, gt, valid)
        flying = M.flying_points(predicted, gt, valid, window.intrinsics[i])
        values["flying_ratio"] = flying["flying_ratio"]
        values["band_chamfer"] = flying["band_chamfer"]
        values["steps_off_edges"] = M.steps_off_edges(predicted, gt, valid, band)
        published = boundary_clean_mask(predicted, confidence, node_filter).published(predicted)
        values.update(M.published_edge_scores(published, gt, valid))
        if pred.winner is not None and pred.winner[i].shape == gt.shape:
            values.update(expert_shares(pred.winner[i], pred.num_experts, band, valid & ~band))
            values["gate_switches_off_edges"] = M.gate_switches_off_edges(pred.winner[i], gt, valid, band)
        for key, value in values.items():
            if np.isfinite(value):
                per_frame.setdefault(key, []).append(float(value))
    scores = {key: float(np.mean(v)) for key, v in per_frame.items() if key != "scale"}
    if multi_view and window.extrinsics is not None:
        predicted_points = depth_to_world_points(torch.from_numpy(pred.depth), torch.from_numpy(pred.extrinsics),
                                                 torch.from_numpy(pred.intrinsics)).numpy()
        gt_points = depth_to_world_points(torch.from_numpy(np.where(window.valid, window.depth, 0).astype(np.float32)),
                                          torch.from_numpy(window.extrinsics), torch.from_numpy(window.intrinsics)).numpy()
        mask = window.valid & np.isfinite(predicted_points).all(-1)
        recon = reconstruction_metrics(predicted_points[mask], gt_points[mask], max_points=max_points)
        scores.update({k: float(v) for k, v in recon.items() if k in RECON_KEYS})
    return scores


def expert_shares(winner: np.ndarray, num_experts: int, edges: np.ndarray, surfaces: np.ndarray) -> dict[str, float]:
    """Share of pixels each expert wins near ground-truth depth edges (`edges`, the discontinuity
    band) and on surfaces (valid pixels away from them): how the gate specialised."""
    shares = {}
    for region, mask in (("edges", edges), ("surfaces", surfaces)):
        counts = np.bincount(winner[mask].astype(np.int64), minlength=num_experts)[:num_experts]
        total = max(int(counts.sum()), 1)
        for k in range(num_experts):
            shares[f"expert{k}_share_{region}"] = counts[k] / total if mask.any() else float("nan")
    return shares


RECON_KEYS = ("acc_mean", "acc_median", "comp_mean", "comp_median", "nc_mean", "nc_median")
