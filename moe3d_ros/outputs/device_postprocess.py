"""The node's post-processing on the model's device, with one copy of the final buffers. No ROS.

Same results as `postprocess.camera_product` + `postprocess.fused_cloud` (tested to match), but
the boundary-clean filter, the unprojection, the colours and the packing into the cloud's point
layout run as tensor operations where the predictions already are, and everything the messages
need comes back to the host in one (pinned, on CUDA) copy: no per-stage transfers, no host loops
over pixels.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..inference.engine import Predictions
from .filtering import FilterConfig
from .postprocess import CLOUD_DTYPE, CameraProduct, extrinsics_to_reference, product_intrinsics

COUNT_NAMES = ("invalid", "confidence", "gate_entropy", "depth_edge", "range")


def _edge_jumps(depth: Tensor, max_jump: float) -> Tensor:
    """filtering.edge_mask on a tensor."""
    log_depth = torch.where(depth > 0, depth, torch.nan).log()
    threshold = float(np.float32(math.log1p(max_jump)))  # as the host filter compares
    jump_x = (log_depth[:, 1:] - log_depth[:, :-1]).abs() > threshold
    jump_y = (log_depth[1:, :] - log_depth[:-1, :]).abs() > threshold
    jump = torch.zeros_like(depth, dtype=torch.bool)
    jump[:, :-1] |= jump_x
    jump[:, 1:] |= jump_x
    jump[:-1, :] |= jump_y
    jump[1:, :] |= jump_y
    return jump


def _between(depth: Tensor, max_jump: float) -> Tensor:
    """filtering.between_mask on a tensor."""
    valid = torch.isfinite(depth) & (depth > 0)
    log_depth = torch.where(valid, depth, 1.0).log()
    lowest = torch.tensor(-math.inf, dtype=log_depth.dtype, device=log_depth.device)
    pool = lambda x: F.max_pool2d(x[None, None], 3, stride=1, padding=1)[0, 0]  # noqa: E731 (pads with -inf)
    far = pool(torch.where(valid, log_depth, lowest))
    near = -pool(torch.where(valid, -log_depth, lowest))
    threshold = float(np.float32(math.log1p(max_jump)))
    return valid & (log_depth - near > threshold) & (far - log_depth > threshold)


_EDGE_TESTS = {"jump": _edge_jumps, "between": _between}


def clean_depth(depth: Tensor, confidence: Tensor, cfg: FilterConfig, entropy: Tensor | None,
                spread: Tensor | None) -> tuple[Tensor, Tensor]:
    """filtering.boundary_clean_mask on tensors: (depth with NaN where removed, counts [5] int64
    in COUNT_NAMES order)."""
    finite = torch.isfinite(depth) & (depth > 0)
    failed: list[Tensor | None] = [
        confidence < cfg.min_confidence if cfg.min_confidence > 0 else None,
        None,
        _EDGE_TESTS[cfg.edge_test](depth, cfg.max_edge_jump) if math.isfinite(cfg.max_edge_jump) else None,
        (depth < cfg.min_depth) | (depth > cfg.max_depth) if cfg.min_depth > 0 or math.isfinite(cfg.max_depth) else None,
    ]
    if entropy is not None and math.isfinite(cfg.max_gate_entropy):
        undecided = entropy > cfg.max_gate_entropy
        failed[1] = undecided if spread is None else undecided & (spread > cfg.min_expert_spread)
    keep = finite.clone()
    zero = torch.zeros((), dtype=torch.int64, device=depth.device)
    counts = [(~finite).sum()]
    for test in failed[:-1]:
        counts.append(test.sum() if test is not None else zero)
        if test is not None:
            keep &= ~test
    out_of_range = failed[-1]
    counts.append(out_of_range.sum() if out_of_range is not None else zero)
    published = torch.where(keep, depth, torch.nan)
    if out_of_range is not None:  # REP-117: removed by the range test alone -> -Inf / +Inf
        published = torch.where(keep & out_of_range, torch.where(depth < cfg.min_depth, -torch.inf, torch.inf), published)
        published = torch.where(keep & ~out_of_range, depth, published)
    return published, torch.stack(counts)


def _packed_points(depth: Tensor, colors: Tensor, confidence: Tensor, winner: Tensor | None, intrinsics: np.ndarray,
                   extrinsic: np.ndarray, step: int) -> Tensor:
    """postprocess._pack_points on tensors: [h, w, 6] float32 records of CLOUD_DTYPE."""
    full_height, full_width = depth.shape
    depth, colors, confidence = depth[::step, ::step], colors[::step, ::step], confidence[::step, ::step]
    height, width = depth.shape
    device = depth.device
    k = intrinsics
    ray_u = ((torch.arange(0, full_width, step, device=device, dtype=torch.float64) - k[0, 2]) / k[0, 0]).float()[None, :]
    ray_v = ((torch.arange(0, full_height, step, device=device, dtype=torch.float64) - k[1, 2]) / k[1, 1]).float()[:, None]
    rotation_t = extrinsic[:, :3].T.astype(np.float32)
    offset = (-rotation_t @ extrinsic[:, 3]).astype(np.float32)
    xyz = [(float(rotation_t[i, 0]) * ray_u + float(rotation_t[i, 1]) * ray_v + float(rotation_t[i, 2])) * depth + float(offset[i])
           for i in range(3)]
    rgb = colors.to(torch.int32)
    rgb = ((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]).view(torch.float32)
    expert = (winner[::step, ::step].to(torch.int32) if winner is not None
              else torch.zeros((height, width), dtype=torch.int32, device=device)).view(torch.float32)
    out = torch.stack([*xyz, rgb, confidence.float(), expert], dim=-1)
    coords = out[..., :3]
    coords = coords.masked_fill(torch.isinf(depth)[..., None] & torch.isnan(coords), 0.0)  # 0 x inf on an axis the ray keeps
    out[..., :3] = coords.masked_fill(torch.isnan(coords).any(dim=-1, keepdim=True), torch.nan)  # finite, at infinity, or NaN
    return out


class _HostCopy:
    """Tensors of any dtype packed into one byte buffer, copied to the host once."""

    def __init__(self) -> None:
        self.parts: list[tuple[Tensor, int]] = []
        self.offset = 0

    def add(self, tensor: Tensor) -> int:
        """Queue `tensor`; returns its index for `get`."""
        tensor = tensor.contiguous()
        self.parts.append((tensor, self.offset))
        self.offset += tensor.numel() * tensor.element_size()
        self.offset += -self.offset % 8  # keep every part aligned
        return len(self.parts) - 1

    def copy(self) -> None:
        device = self.parts[0][0].device
        flat = torch.zeros(self.offset, dtype=torch.uint8, device=device)
        for tensor, offset in self.parts:
            bytes_ = tensor.reshape(-1).view(torch.uint8)
            flat[offset : offset + bytes_.numel()] = bytes_
        if device.type == "cuda":
            self.host = torch.empty(self.offset, dtype=torch.uint8, pin_memory=True)
            self.host.copy_(flat, non_blocking=True)
            torch.cuda.current_stream(device).synchronize()
        else:
            self.host = flat
        self.buffer = self.host.numpy()

    def get(self, index: int) -> np.ndarray:
        tensor, offset = self.parts[index]
        dtype = np.dtype(str(tensor.dtype).removeprefix("torch."))
        return self.buffer[offset : offset + tensor.numel() * dtype.itemsize].view(dtype).reshape(tensor.shape)


def device_outputs(pred: Predictions, frames: list[int], cfg: FilterConfig, scale: float,
                   source_intrinsics: list[np.ndarray | None], cloud: bool, organized: bool = True,
                   decimation: int = 1) -> tuple[list[CameraProduct], np.ndarray | None]:
    """Camera products of window frames `frames` (each with its camera's intrinsics or None for the
    predicted ones) and, with `cloud`, their fused cloud as CLOUD_DTYPE records (organised: the
    cameras' grids stacked, filtered points NaN; else only the kept points), from the window the
    engine kept on the device (`pred.on_device`)."""
    window = pred.on_device
    if window is None:
        raise ValueError("device post-processing needs the window on the device (EngineConfig.keep_on_device)")
    copy = _HostCopy()
    queued = []
    extrinsics = extrinsics_to_reference(pred, scale) if cloud else None
    points = []
    for frame, k_source in zip(frames, source_intrinsics):
        top, bottom, left, right = pred.transforms[frame].content_box()
        box = (slice(top, bottom), slice(left, right))
        intrinsics = product_intrinsics(pred, frame, k_source)
        depth = window.depth[frame][box] * scale
        confidence = window.depth_conf[frame][box]
        entropy = window.gate_entropy[frame][box] if window.gate_entropy is not None else None
        spread = window.expert_spread[frame][box] if window.expert_spread is not None else None
        depth, counts = clean_depth(depth, confidence, cfg, entropy, spread)
        colors = window.images[frame][box]
        winner = window.winner[frame][box] if window.winner is not None else None
        queued.append((frame, intrinsics, copy.add(depth), copy.add(confidence), copy.add(colors),
                       copy.add(winner) if winner is not None else None, copy.add(counts)))
        if cloud:
            points.append(_packed_points(depth, colors, confidence, winner, intrinsics, extrinsics[frame], decimation))
    if cloud and organized and len({p.shape for p in points}) > 1:
        raise ValueError(f"an organised cloud needs cameras of one size, got {sorted({tuple(p.shape[:2]) for p in points})}")
    cloud_index = copy.add(torch.cat(points) if organized else torch.cat([p.reshape(-1, 6) for p in points])) if cloud else None
    copy.copy()
    products = []
    for frame, intrinsics, depth_i, conf_i, colors_i, winner_i, counts_i in queued:
        depth = copy.get(depth_i)
        products.append(CameraProduct(
            frame=frame, depth=depth, confidence=copy.get(conf_i), colors=copy.get(colors_i), intrinsics=intrinsics,
            mask=np.isfinite(depth), winner=copy.get(winner_i) if winner_i is not None else None,
            filter_counts=dict(zip(COUNT_NAMES, (int(c) for c in copy.get(counts_i)))),
        ))
    if cloud_index is None:
        return products, None
    records = copy.get(cloud_index)
    if not organized:
        records = records[np.isfinite(records[:, :3]).all(axis=-1)]
    return products, records.view(CLOUD_DTYPE)[..., 0]
