"""Boundary-clean masks: which predicted depth pixels are trustworthy enough to publish.

Flying points sit where depth jumps between foreground and background. Four tests remove them,
each with a documented default (set a threshold to 0 / inf to switch its test off):
- confidence: the model's own confidence (>= 1) must reach `min_confidence`;
- gate entropy: where the MoE gate is undecided between experts that disagree, the pixel lies
  on a boundary the model could not resolve (`max_gate_entropy`, nats; log K = undecided);
- depth edge: a pixel whose depth differs from a 4-neighbour's by more than `max_edge_jump`
  (relative) straddles a discontinuity;
- range: depth outside [min_depth, max_depth] (in the published units).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FilterConfig:
    min_confidence: float = 1.5  # 1 + exp(c): 1.5 drops the least confident pixels only
    max_gate_entropy: float = 0.5  # nats; log(4) = 1.39 is a uniform 4-expert gate
    max_edge_jump: float = 0.05  # |d - d_neighbour| / d
    min_depth: float = 0.0
    max_depth: float = math.inf

    def __post_init__(self) -> None:
        if self.min_confidence < 0 or self.max_gate_entropy < 0 or self.max_edge_jump < 0:
            raise ValueError("min_confidence, max_gate_entropy and max_edge_jump must be >= 0")
        if not self.min_depth < self.max_depth:
            raise ValueError(f"min_depth ({self.min_depth}) must be below max_depth ({self.max_depth})")


@dataclass
class FilterResult:
    mask: np.ndarray  # [H, W] bool: True = keep
    counts: dict[str, int]  # pixels removed by each test (a pixel can fail several)


def edge_mask(depth: np.ndarray, max_jump: float) -> np.ndarray:
    """True where some 4-neighbour's depth differs by more than max_jump relative to this pixel."""
    jump = np.zeros(depth.shape, dtype=bool)
    safe = np.where(depth > 0, depth, np.inf)
    dx = np.abs(np.diff(depth, axis=1))
    dy = np.abs(np.diff(depth, axis=0))
    jump[:, :-1] |= dx > max_jump * safe[:, :-1]
    jump[:, 1:] |= dx > max_jump * safe[:, 1:]
    jump[:-1, :] |= dy > max_jump * safe[:-1, :]
    jump[1:, :] |= dy > max_jump * safe[1:, :]
    return jump


def boundary_clean_mask(
    depth: np.ndarray, confidence: np.ndarray, cfg: FilterConfig, gate_entropy: np.ndarray | None = None
) -> FilterResult:
    """Keep-mask for one depth map [H, W]; gate_entropy is None for a plain DPT head."""
    finite = np.isfinite(depth) & (depth > 0)
    low_conf = confidence < cfg.min_confidence
    undecided = gate_entropy > cfg.max_gate_entropy if gate_entropy is not None else np.zeros_like(finite)
    edges = edge_mask(np.where(finite, depth, 0.0), cfg.max_edge_jump) if math.isfinite(cfg.max_edge_jump) else np.zeros_like(finite)
    out_of_range = (depth < cfg.min_depth) | (depth > cfg.max_depth)
    mask = finite & ~low_conf & ~undecided & ~edges & ~out_of_range
    counts = {
        "invalid": int((~finite).sum()),
        "confidence": int(low_conf.sum()),
        "gate_entropy": int(undecided.sum()),
        "depth_edge": int(edges.sum()),
        "range": int(out_of_range.sum()),
    }
    return FilterResult(mask=mask, counts=counts)
