"""Boundary-clean masks: which predicted depth pixels are trustworthy enough to publish.

Flying points sit where depth jumps between foreground and background. Four tests remove them,
each with a documented default (set a threshold to 0 / inf to switch its test off):
- confidence: the model's own confidence (>= 1) must reach `min_confidence`;
- gate entropy: where the MoE gate is undecided (`max_gate_entropy`, nats; log K = undecided)
  between experts that disagree (their depths differ by more than `min_expert_spread`,
  relative), the pixel lies on a boundary the model could not resolve; where the experts agree,
  the gate's choice does not matter and the pixel stays;
- depth edge (`edge_test`): "jump" removes both pixels of every 4-neighbour pair whose depths
  differ by more than `max_edge_jump` relative to the nearer one (every pixel at a discontinuity);
  "between" removes only a pixel whose depth lies between the nearest and the farthest depth of its
  3x3 neighbourhood, more than `max_edge_jump` from both: a blend of two surfaces, while the two
  sides of a clean step (each at one end) stay, which is what a head that picks a surface gives;
- range: depth outside [min_depth, max_depth] (in the published units).

Published values follow REP-117: a pixel removed by the range test alone is -Inf (nearer than
min_depth) or +Inf (beyond max_depth), so a consumer may clear free space along its ray; every
other removed pixel is NaN (unknown).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter, minimum_filter

EDGE_TESTS = ("jump", "between")


@dataclass(frozen=True)
class FilterConfig:
    min_confidence: float = 1.5  # 1 + exp(c): 1.5 drops the least confident pixels only
    max_gate_entropy: float = math.inf  # nats (off); 0.5 for a gate that decides; log(4) = 1.39 is a uniform 4-expert gate
    min_expert_spread: float = 0.05  # max / min expert depth - 1 above which experts disagree
    max_edge_jump: float = 0.05  # |d_a - d_b| / min(d_a, d_b) between 4-neighbours
    min_depth: float = 0.0
    max_depth: float = math.inf
    edge_test: str = "jump"  # see EDGE_TESTS and the module docstring

    def __post_init__(self) -> None:
        if self.edge_test not in EDGE_TESTS:
            raise ValueError(f"edge_test {self.edge_test!r}: use one of {', '.join(EDGE_TESTS)}")
        if min(self.min_confidence, self.max_gate_entropy, self.min_expert_spread, self.max_edge_jump) < 0:
            raise ValueError("min_confidence, max_gate_entropy, min_expert_spread and max_edge_jump must be >= 0")
        if not self.min_depth < self.max_depth:
            raise ValueError(f"min_depth ({self.min_depth}) must be below max_depth ({self.max_depth})")


@dataclass
class FilterResult:
    mask: np.ndarray  # [H, W] bool: True = keep
    counts: dict[str, int]  # pixels removed by each test (a pixel can fail several)
    too_near: np.ndarray | None = None  # [H, W] bool: removed by the range test alone, below min_depth (-Inf)
    too_far: np.ndarray | None = None  # [H, W] bool: removed by the range test alone, beyond max_depth (+Inf)

    def published(self, depth: np.ndarray) -> np.ndarray:
        """`depth` as published (REP-117): kept pixels, -Inf / +Inf out of range, NaN otherwise."""
        out = np.where(self.mask, depth, np.float32(np.nan)).astype(np.float32)
        if self.too_near is not None:
            out[self.too_near] = -np.inf
            out[self.too_far] = np.inf
        return out


def edge_mask(depth: np.ndarray, max_jump: float) -> np.ndarray:
    """True on both pixels of any 4-neighbour pair whose depth ratio exceeds 1 + max_jump.

    Works on log depth: one logarithm, then a threshold on neighbour differences.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        log_depth = np.log(np.where(depth > 0, depth, np.float32(np.nan)) if not (depth > 0).all() else depth)
    threshold = np.float32(math.log1p(max_jump))
    jump_x = np.abs(np.diff(log_depth, axis=1)) > threshold
    jump_y = np.abs(np.diff(log_depth, axis=0)) > threshold
    jump = np.zeros(depth.shape, dtype=bool)
    jump[:, :-1] |= jump_x
    jump[:, 1:] |= jump_x
    jump[:-1, :] |= jump_y
    jump[1:, :] |= jump_y
    return jump


def between_mask(depth: np.ndarray, max_jump: float) -> np.ndarray:
    """True where a valid pixel's depth is more than 1 + max_jump above the nearest and below the
    farthest depth of its 3x3 neighbourhood (in log depth, as `edge_mask`): between two surfaces."""
    valid = np.isfinite(depth) & (depth > 0)
    log_depth = np.log(np.where(valid, depth, np.float32(1.0)))
    near = minimum_filter(np.where(valid, log_depth, np.float32(np.inf)), size=3, mode="constant", cval=np.inf)
    far = maximum_filter(np.where(valid, log_depth, np.float32(-np.inf)), size=3, mode="constant", cval=-np.inf)
    threshold = np.float32(math.log1p(max_jump))
    return valid & (log_depth - near > threshold) & (far - log_depth > threshold)


EDGE_MASKS = {"jump": edge_mask, "between": between_mask}


def boundary_clean_mask(
    depth: np.ndarray,
    confidence: np.ndarray,
    cfg: FilterConfig,
    gate_entropy: np.ndarray | None = None,
    expert_spread: np.ndarray | None = None,
) -> FilterResult:
    """Keep-mask for one depth map [H, W]; gate_entropy and expert_spread are None for a plain
    DPT head (without expert_spread, the entropy test alone decides)."""
    finite = np.isfinite(depth) & (depth > 0)
    keep = finite.copy()
    counts = {"invalid": int(depth.size - np.count_nonzero(finite))}
    tests = {
        "confidence": (confidence < cfg.min_confidence) if cfg.min_confidence > 0 else None,
        "gate_entropy": _undecided_between_disagreeing(gate_entropy, expert_spread, cfg)
        if gate_entropy is not None and math.isfinite(cfg.max_gate_entropy)
        else None,
        "depth_edge": EDGE_MASKS[cfg.edge_test](depth, cfg.max_edge_jump) if math.isfinite(cfg.max_edge_jump)
        else None,
        "range": ((depth < cfg.min_depth) | (depth > cfg.max_depth)) if cfg.min_depth > 0 or math.isfinite(cfg.max_depth) else None,
    }
    for name, failed in tests.items():  # a switched-off test costs nothing
        counts[name] = int(np.count_nonzero(failed)) if failed is not None else 0
        if failed is not None and name != "range":
            keep &= ~failed
    if tests["range"] is None:
        return FilterResult(mask=keep, counts=counts)
    out_of_range = keep & tests["range"]  # passed every other test: a measurement, just out of range
    return FilterResult(mask=keep & ~tests["range"], counts=counts, too_near=out_of_range & (depth < cfg.min_depth),
                        too_far=out_of_range & (depth > cfg.max_depth))


def _undecided_between_disagreeing(entropy: np.ndarray, spread: np.ndarray | None, cfg: FilterConfig) -> np.ndarray:
    undecided = entropy > cfg.max_gate_entropy
    return undecided if spread is None else undecided & (spread > cfg.min_expert_spread)
