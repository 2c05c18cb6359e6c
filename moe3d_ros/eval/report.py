"""Evaluation reports: a markdown table, JSON with every number, PNG figures."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..io.export import colorize_depth, write_png
from ..model.geometry import unproject_depth
from ..outputs.postprocess import gating_colors
from .metrics import discontinuity_band, fit_scale
from .render import error_colors, panel, render_points, side_view
from .runner import SystemPrediction, Window

# metric -> (label, True when higher is better)
METRICS = {
    "abs_rel": ("AbsRel", False),
    "abs_rel_edges": ("AbsRel near depth edges", False),
    "abs_rel_surfaces": ("AbsRel on surfaces", False),
    "rmse": ("RMSE", False),
    "delta1": ("delta1", True),
    "boundary_f1": ("boundary F1", True),
    "boundary_precision": ("boundary precision", True),
    "boundary_recall": ("boundary recall", True),
    "boundary_f1_1px": ("depth-edge F1 (1 px)", True),
    "mixed_pixel_ratio": ("mixed pixels", False),
    "mixed_own_surface_ratio": ("mixed pixels, own surfaces", False),
    "published_edge_share": ("edge pixels published (node filter)", True),
    "published_mixed_ratio": ("mixed pixels of those published", False),
    "published_boundary_f1": ("boundary F1 as published", True),
    "gate_switches_off_edges": ("gate switches off edges", False),
    "steps_off_edges": ("depth steps off edges", False),
    "flying_ratio": ("flying-point ratio", False),
    "band_chamfer": ("edge-band Chamfer", False),
    "acc_mean": ("Acc mean", False),
    "acc_median": ("Acc median", False),
    "comp_mean": ("Comp mean", False),
    "comp_median": ("Comp median", False),
    "nc_mean": ("NC mean", True),
    "nc_median": ("NC median", True),
}
ERROR_VMAX = 0.2  # relative depth error shown as full red


def aggregate(per_scene: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean over scenes of each system's metrics (scenes already average their frames)."""
    systems: dict[str, dict[str, list[float]]] = {}
    for scene in per_scene.values():
        for system, values in scene.items():
            for key, value in values.items():
                systems.setdefault(system, {}).setdefault(key, []).append(value)
    return {system: {k: float(np.mean(v)) for k, v in values.items()} for system, values in systems.items()}


def ratios(summary: dict[str, dict[str, float]], baseline: str = "dpt") -> dict[str, dict[str, float]]:
    """metric ratio system / baseline for every non-baseline system."""
    if baseline not in summary:
        return {}
    base = summary[baseline]
    out = {}
    for system, values in summary.items():
        if system == baseline:
            continue
        out[system] = {k: v / base[k] for k, v in values.items() if k in base and base[k] not in (0.0,) and math.isfinite(base[k])}
    return out


def _fmt(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else (f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}")


def markdown(meta: dict[str, Any], summary, ratio, speed, figures: list[str]) -> str:
    systems = list(summary)
    lines = [f"# Evaluation: {meta['protocol']}", ""]
    for key in ("models", "condition", "device", "frames", "scenes", "notes"):
        if meta.get(key):
            lines.append(f"- {key}: {meta[key]}")
    lines += ["", "| metric | " + " | ".join(systems) + "".join(f" | {s} / dpt" for s in ratio) + " |",
              "|---|" + "---:|" * (len(systems) + len(ratio))]
    for key, (label, higher) in METRICS.items():
        if not any(key in summary[s] for s in systems):
            continue
        arrow = "↑" if higher else "↓"
        row = [_fmt(summary[s].get(key)) for s in systems] + [_fmt(ratio[s].get(key)) for s in ratio]
        lines.append(f"| {label} {arrow} | " + " | ".join(row) + " |")
    lines += ["", "## Speed (median per window) and memory", "", "| model | " + " | ".join(_speed_columns(speed)) + " |",
              "|---|" + "---:|" * len(_speed_columns(speed))]
    for model, values in speed.items():
        if model == "moe_over_dpt":
            continue
        lines.append(f"| {model} | " + " | ".join(_fmt(values.get(c)) for c in _speed_columns(speed)) + " |")
    shares = _expert_share_table(summary)
    if shares:
        lines += ["", "## Gate specialisation (share of pixels won by each expert)", ""] + shares
    if "moe_over_dpt" in speed:
        over = speed["moe_over_dpt"]
        lines += ["", f"MoE / DPT measured in this run: depth head time x{over['depth_head']:.3f}, whole forward x{over['total']:.3f}."]
    if figures:
        lines += ["", "## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def _expert_share_table(summary) -> list[str]:
    system = next((s for s in summary if any(k.startswith("expert") for k in summary[s])), None)
    if system is None:
        return []
    experts = sorted({int(k[len("expert"):].split("_")[0]) for k in summary[system] if k.startswith("expert")})
    lines = ["| region | " + " | ".join(f"expert {k}" for k in experts) + " |", "|---|" + "---:|" * len(experts)]
    for region, label in (("edges", "near depth edges"), ("surfaces", "on surfaces")):
        lines.append(f"| {label} | " + " | ".join(f"{summary[system].get(f'expert{k}_share_{region}', float('nan')):.3f}" for k in experts) + " |")
    return lines


def _speed_columns(speed) -> list[str]:
    columns: list[str] = []
    for model, values in speed.items():
        if model != "moe_over_dpt":
            columns += [c for c in values if c not in columns]
    return columns


def write_report(out: Path, meta: dict[str, Any], per_scene, speed, figures: list[str]) -> dict[str, Any]:
    summary = aggregate(per_scene)
    ratio = ratios(summary)
    result = {"meta": meta, "summary": summary, "ratio_to_dpt": ratio, "speed": speed, "scenes": per_scene}
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "report.md").write_text(markdown(meta, summary, ratio, speed, figures))
    return result


EDGE_BAND_COLOR = np.array([255, 0, 0], np.uint8)


def scene_figure(window: Window, predictions: dict[str, SystemPrediction], path: Path) -> None:
    """Frame 0 of the window: input, ground truth, gating map (and, to fill the row, the edge band);
    per system the depth, the error near ground-truth boundaries, and the point cloud seen from the
    side coloured by error."""
    gt, valid = window.depth[0], window.valid[0]
    shape = gt.shape
    image = (window.images[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    image = cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA) if image.shape[:2] != shape else image
    lo, hi = np.percentile(gt[valid], [2, 98]) if valid.any() else (0.1, 10.0)
    first = [("input", image), ("ground truth depth", colorize_depth(np.where(valid, gt, np.nan), lo, hi))]
    gating = next((p.winner[0] for p in predictions.values() if p.winner is not None), None)
    if gating is not None:
        gating = cv2.resize(gating, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) if gating.shape != shape else gating
        first.append(("gating (winning expert)", gating_colors(gating)))
    band = discontinuity_band(gt, valid)
    if len(first) < len(predictions):  # a full first row: where the edge metrics are scored
        first.append(("depth-edge band (edge metrics)", np.where(band[..., None], EDGE_BAND_COLOR, image // 2 + 64).astype(np.uint8)))
    k = torch.from_numpy(window.intrinsics[0]).float()
    depth_row, error_row, cloud_row = [], [], []
    gt_points = unproject_depth(torch.from_numpy(np.where(valid, gt, 0).astype(np.float32)), k).numpy()[valid]
    view = side_view(gt_points) if len(gt_points) else np.hstack([np.eye(3), np.zeros((3, 1))])
    for name, pred in predictions.items():
        predicted = pred.depth[0]
        if predicted.shape != shape:  # monocular protocols score at the ground truth's resolution
            predicted = cv2.resize(predicted, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
        scaled = predicted * fit_scale(predicted, gt, valid)
        rel_error = np.where(valid, np.abs(scaled - gt) / np.maximum(gt, 1e-6), np.nan)
        depth_row.append((f"{name} depth", colorize_depth(scaled, lo, hi)))
        error_row.append((f"{name} error near edges", np.where(band[..., None], error_colors(rel_error, ERROR_VMAX), 255).astype(np.uint8)))
        points = unproject_depth(torch.from_numpy(scaled.astype(np.float32)), k).numpy()
        cloud = render_points(points[valid], error_colors(rel_error[valid], ERROR_VMAX), view, window.intrinsics[0], shape)
        cloud_row.append((f"{name} cloud (side view, error)", cloud))
    write_png(path, panel([first, depth_row, error_row, cloud_row]))
