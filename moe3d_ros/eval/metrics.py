"""Evaluation metrics: monocular depth, boundary sharpness, flying points (multi-view
reconstruction: `reconstruction`).

Conventions follow moe3d_ros.model.geometry: OpenCV camera axes, z-depth in metres (or any one unit,
used consistently), integer pixel coordinates at pixel centres. Depth maps are [H, W] numpy
arrays or CPU torch tensors, the prediction already resized to the ground truth's resolution.
A depth pixel counts only where it is finite, positive and inside the given valid mask.
Definitions and the published numbers they are compared with: shared/design/EVALUATION.md.
"""
from __future__ import annotations

import warnings
from typing import Literal, Union

import numpy as np
import torch
from scipy.ndimage import binary_dilation, distance_transform_edt, maximum_filter, minimum_filter
from scipy.spatial import cKDTree

from ..model.geometry import unproject_depth

Array = Union[np.ndarray, torch.Tensor]
ScaleMethod = Literal["median", "l1"]

# Depth Pro's scale-invariant boundary metric: 10 ratio thresholds, weighted in proportion to t.
BOUNDARY_THRESHOLDS = np.linspace(1.05, 1.25, 10)


def _as_float(x: Array) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def valid_depth_mask(depth: Array, valid: Array | None = None) -> np.ndarray:
    """Boolean [H, W]: depth finite and > 0, and inside `valid` when one is given."""
    depth = _as_float(depth)
    mask = np.isfinite(depth)
    mask[mask] = depth[mask] > 0
    if valid is not None:
        mask &= np.asarray(valid.cpu() if isinstance(valid, torch.Tensor) else valid, dtype=bool)
    return mask


# ----------------------------------------------------------------------------- monocular depth


def fit_scale(pred: Array, gt: Array, valid: Array | None = None, method: ScaleMethod = "median") -> float:
    """The one scale s (no shift) that best maps pred onto gt over pixels valid in both.

    "median": median of gt / pred. "l1": argmin_s sum |s * pred - gt|. Since
    |s * p - g| = p * |s - g / p|, that is the median of the ratios g / p weighted by p, computed
    exactly (no iterations); when the optimum is a flat interval this returns its lower end.
    """
    pred, gt = _as_float(pred), _as_float(gt)
    mask = valid_depth_mask(pred, valid) & valid_depth_mask(gt)
    if not mask.any():
        raise ValueError("no pixel is valid in both the prediction and the ground truth")
    ratios = gt[mask] / pred[mask]
    if method == "median":
        return float(np.median(ratios))
    if method == "l1":
        order = np.argsort(ratios)
        cumulative = np.cumsum(pred[mask][order])
        # The objective's slope right of ratio k is 2 * cumulative[k] - total: the first k where it turns >= 0.
        return float(ratios[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])
    raise ValueError(f"unknown scale method {method!r}: use 'median' or 'l1'")


def depth_metrics(
    pred: Array,
    gt: Array,
    valid: Array | None = None,
    max_depth: float | None = None,
    scale_method: ScaleMethod = "median",
    band: Array | None = None,
) -> dict[str, float]:
    """Per-image depth accuracy after a scale-only fit, in the pi3 / NYU / Sintel protocol.

    With `max_depth` (Sintel: 70 m) ground truth above it is masked out before the fit and the
    scaled prediction is clipped at it. Returns abs_rel = mean |s*pred - gt| / gt, rmse (gt units),
    delta1/2/3 = fraction with max(s*pred/gt, gt/(s*pred)) < 1.25**k, the fitted scale and
    num_valid (pixels scored). With `band` (ground-truth depth edges, discontinuity_band) also
    abs_rel_edges and abs_rel_surfaces, the same error inside and outside it with the image's one
    scale: where a head's error lies, the edge band (blends, wrong picks) or the surfaces (noise,
    offsets); NaN for an empty region.
    """
    pred, gt = _as_float(pred), _as_float(gt)
    mask = valid_depth_mask(pred, valid) & valid_depth_mask(gt)
    if max_depth is not None:
        mask &= gt <= max_depth
    scale = fit_scale(pred, gt, mask, scale_method)
    aligned, target = scale * pred[mask], gt[mask]
    if max_depth is not None:
        aligned = np.minimum(aligned, max_depth)
    ratio = np.maximum(aligned / target, target / aligned)
    relative_error = np.abs(aligned - target) / target
    regions = {}
    if band is not None:
        in_band = np.asarray(band, dtype=bool)[mask]
        for region, pixels in (("edges", in_band), ("surfaces", ~in_band)):
            regions[f"abs_rel_{region}"] = float(relative_error[pixels].mean()) if pixels.any() else float("nan")
    return {
        "abs_rel": float(np.mean(relative_error)),
        "rmse": float(np.sqrt(np.mean((aligned - target) ** 2))),
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25**2)),
        "delta3": float(np.mean(ratio < 1.25**3)),
        "scale": scale,
        "num_valid": int(mask.sum()),
        **regions,
    }


# ----------------------------------------------------------------------------- boundary sharpness


def _directional_contours(value: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Occluding contours between 4-neighbours, one map per direction, where value's ratio exceeds t.

    On inverse depth a larger value is nearer, so the four maps mark pairs whose right, left,
    lower or upper pixel (respectively) is the foreground. Horizontal pairs are [H, W-1],
    vertical pairs [H-1, W].
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return (
            value[:, 1:] / value[:, :-1] > threshold,
            value[:, :-1] / value[:, 1:] > threshold,
            value[1:, :] / value[:-1, :] > threshold,
            value[:-1, :] / value[1:, :] > threshold,
        )


def boundary_scores(
    pred_depth: Array,
    gt_depth: Array,
    valid: Array | None = None,
    thresholds: np.ndarray = BOUNDARY_THRESHOLDS,
    eps: float = 1e-6,
) -> dict[str, float | np.ndarray]:
    """Depth Pro's scale-invariant boundary precision, recall and F1, per threshold and weighted.

    Both maps become inverse depth 1 / max(d, eps). For each threshold t and each of the four
    directions, precision = |pred ∩ gt| / max(|pred|, 1) and recall = |pred ∩ gt| / max(|gt|, 1)
    over contour pairs; each is the mean over the four directions (so a direction with no contour
    scores 0, as in Depth Pro: a single straight edge predicted exactly gives 0.25, not 1), and
    F1 = 2pr / (p + r), 0 when p + r = 0. The weighted scores use weights t / sum(t).
    Pairs with either pixel invalid in the ground truth (outside `valid`, non-finite or <= 0) are
    left out of both maps, so missing ground truth creates no contours. Ratios make the metric
    scale-invariant, but it depends on the evaluation resolution (a contour is one pixel pair
    wide): always score at one fixed resolution, the ground truth's.
    Returns thresholds, weights, precision/recall/f1 per threshold ([T] arrays) and the weighted
    scalars boundary_precision, boundary_recall and boundary_f1.
    """
    pred, gt = _as_float(pred_depth), _as_float(gt_depth)
    if pred.shape != gt.shape or gt.ndim != 2:
        raise ValueError(f"need [H, W] maps of one size (resize the prediction first): {pred.shape} vs {gt.shape}")
    mask = valid_depth_mask(gt, valid)
    pair_valid = (mask[:, 1:] & mask[:, :-1],) * 2 + (mask[1:, :] & mask[:-1, :],) * 2
    pred_inv, gt_inv = 1.0 / np.maximum(pred, eps), 1.0 / np.maximum(gt, eps)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    precision, recall = np.zeros(len(thresholds)), np.zeros(len(thresholds))
    for i, t in enumerate(thresholds):
        directions = zip(_directional_contours(pred_inv, t), _directional_contours(gt_inv, t), pair_valid)
        for pred_edge, gt_edge, ok in directions:
            pred_edge, gt_edge = pred_edge & ok, gt_edge & ok
            hits = np.count_nonzero(pred_edge & gt_edge)
            precision[i] += 0.25 * hits / max(np.count_nonzero(pred_edge), 1)
            recall[i] += 0.25 * hits / max(np.count_nonzero(gt_edge), 1)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    weights = thresholds / thresholds.sum()
    return {
        "thresholds": thresholds,
        "weights": weights,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "boundary_precision": float(weights @ precision),
        "boundary_recall": float(weights @ recall),
        "boundary_f1": float(weights @ f1),
    }


def boundary_f1(pred_depth: Array, gt_depth: Array, valid: Array | None = None) -> float:
    """Depth Pro's scale-invariant boundary F1 (Sintel: Depth Pro 0.409); see boundary_scores."""
    return boundary_scores(pred_depth, gt_depth, valid)["boundary_f1"]


# ----------------------------------------------------------------------------- flying points


def pixels_of_pairs(across_x: np.ndarray, across_y: np.ndarray) -> np.ndarray:
    """[H, W] bool: both pixels of every marked horizontal [H, W-1] and vertical [H-1, W] pair."""
    pixels = np.zeros((across_y.shape[0] + 1, across_x.shape[1] + 1), dtype=bool)
    pixels[:, 1:] |= across_x
    pixels[:, :-1] |= across_x
    pixels[1:, :] |= across_y
    pixels[:-1, :] |= across_y
    return pixels


def _step_pixels(depth: np.ndarray, mask: np.ndarray, ratio: float) -> np.ndarray:
    """[H, W] bool: pixels of 4-neighbour pairs inside `mask` whose depth ratio (larger / smaller) exceeds `ratio`."""
    log_depth = np.log(np.where(mask, depth, 1.0))  # larger / smaller > ratio  <=>  |log difference| > log ratio
    across_x = (np.abs(np.diff(log_depth, axis=1)) > np.log(ratio)) & mask[:, 1:] & mask[:, :-1]
    across_y = (np.abs(np.diff(log_depth, axis=0)) > np.log(ratio)) & mask[1:, :] & mask[:-1, :]
    return pixels_of_pairs(across_x, across_y)


def discontinuity_band(gt_depth: Array, valid: Array | None = None, ratio: float = 1.1, width: int = 3) -> np.ndarray:
    """Boolean [H, W]: valid pixels within `width` pixels of a ground-truth depth discontinuity.

    A discontinuity lies between two valid 4-neighbours whose depth ratio (larger / smaller)
    exceeds `ratio`; both pixels of such a pair are contour pixels. The band is their square
    (Chebyshev) dilation by width - 1 pixels, so a straight edge gets `width` pixels on each side
    (2 * width in all). Pixels invalid in the ground truth are never in the band.
    """
    if width < 1:
        raise ValueError("width must be at least 1 pixel")
    gt = _as_float(gt_depth)
    mask = valid_depth_mask(gt, valid)
    contour = _step_pixels(gt, mask, ratio)
    if width > 1:
        contour = binary_dilation(contour, structure=np.ones((2 * width - 1, 2 * width - 1), dtype=bool))
    return contour & mask


def gate_switches_off_edges(winner: np.ndarray, gt_depth: Array, valid: Array | None = None, band: Array | None = None) -> float:
    """Share of the gate's switches that lie away from ground-truth depth edges.

    A switch pixel has a 4-neighbour won by another expert; with "winner" fusion the depth can
    step there. Switches outside `band` (default discontinuity_band of the ground truth; pass it
    when already computed) are on a surface and put a false step into the depth, so 0 is best.
    NaN when the gate never switches between valid pixels.
    """
    winner = np.asarray(winner)
    mask = valid_depth_mask(gt_depth, valid)
    across_x = (winner[:, 1:] != winner[:, :-1]) & mask[:, 1:] & mask[:, :-1]
    across_y = (winner[1:, :] != winner[:-1, :]) & mask[1:, :] & mask[:-1, :]
    switch = pixels_of_pairs(across_x, across_y)
    if not switch.any():
        return float("nan")
    band = discontinuity_band(gt_depth, mask) if band is None else np.asarray(band, dtype=bool)
    return float((switch & ~band).sum() / switch.sum())


def steps_off_edges(
    pred_depth: Array, gt_depth: Array, valid: Array | None = None, band: Array | None = None, ratio: float = 1.1
) -> float:
    """Share of the predicted depth's steps that lie away from ground-truth depth edges: false steps.

    A step pixel belongs to a 4-neighbour pair whose predicted depth ratio exceeds `ratio`, the
    ratio that makes a ground-truth discontinuity (discontinuity_band), so the truth scores 0.
    Steps outside `band` (default discontinuity_band of the ground truth) are on a surface, e.g.
    where a gate switches between experts that disagree on a texture edge. Unlike
    gate_switches_off_edges it applies to any prediction and ignores switches between agreeing
    experts, which add no step. 0 is best; NaN when the depth has no step.
    """
    pred = _as_float(pred_depth)
    mask = valid_depth_mask(gt_depth, valid) & valid_depth_mask(pred)
    step = _step_pixels(pred, mask, ratio)
    if not step.any():
        return float("nan")
    band = discontinuity_band(gt_depth, mask) if band is None else np.asarray(band, dtype=bool)
    return float((step & ~band).sum() / step.sum())


# Mixed pixels (between the two sides of an edge): a pixel is in the scored band within 2 px of a
# ground-truth step > 1.1x whose 7x7 neighbourhood spans > 1.25x; it is mixed when its prediction
# lies between that neighbourhood's near and far depth and more than 5% from both and from every
# ground-truth depth within 2 px, i.e. on neither side of the edge.
MIXED_STEP_RATIO = 1.1
MIXED_SPAN_RATIO = 1.25
MIXED_SPAN_WINDOW = 7
MIXED_BAND_RADIUS = 2
MIXED_TOLERANCE = 0.05


def _mixed_band(gt: np.ndarray, gt_mask: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mixed-pixel metrics' band (pixels of `mask` within MIXED_BAND_RADIUS px of a ground-truth
    step whose MIXED_SPAN_WINDOW neighbourhood spans over MIXED_SPAN_RATIO) and that neighbourhood's
    nearest and farthest ground-truth depth, per pixel."""
    steps = _step_pixels(gt, gt_mask, MIXED_STEP_RATIO)
    # A step's two pixels dilated by radius - 1: every pixel within `radius` px of the step itself.
    band = binary_dilation(steps, structure=np.ones((2 * MIXED_BAND_RADIUS - 1,) * 2, dtype=bool)) & mask
    near = minimum_filter(np.where(gt_mask, gt, np.inf), size=MIXED_SPAN_WINDOW, mode="constant", cval=np.inf)
    far = maximum_filter(np.where(gt_mask, gt, 0.0), size=MIXED_SPAN_WINDOW, mode="constant", cval=0.0)
    with np.errstate(invalid="ignore"):
        band &= far > MIXED_SPAN_RATIO * near
    return band, near, far


def mixed_pixel_ratio(pred_depth: Array, gt_depth: Array, valid: Array | None = None,
                      scale_method: ScaleMethod = "median") -> float:
    """Share of ground-truth discontinuity-band pixels whose scale-fitted prediction is a blend of
    the two sides (constants above): a regression head's flying points, not its global error.
    The ground truth scores 0; blurring it or upsampling a coarse grid bilinearly raises it.
    NaN when the band is empty."""
    pred, gt = _as_float(pred_depth), _as_float(gt_depth)
    gt_mask = valid_depth_mask(gt, valid)
    mask = gt_mask & valid_depth_mask(pred)
    aligned = fit_scale(pred, gt, mask, scale_method) * pred
    radius = MIXED_BAND_RADIUS
    band, near, far = _mixed_band(gt, gt_mask, mask)
    with np.errstate(invalid="ignore"):
        between = (aligned > (1 + MIXED_TOLERANCE) * near) & (aligned < (1 - MIXED_TOLERANCE) * far)
    if not band.any():
        return float("nan")
    padded = np.pad(np.where(gt_mask, gt, np.nan), radius, constant_values=np.nan)
    neighbours = np.lib.stride_tricks.sliding_window_view(padded, (2 * radius + 1,) * 2)  # [H, W, 5, 5]
    rows, cols = np.nonzero(band & between)
    with np.errstate(invalid="ignore"):
        close = np.abs(aligned[rows, cols, None, None] / neighbours[rows, cols] - 1.0) <= MIXED_TOLERANCE
    mixed = ~close.any(axis=(1, 2))  # NaN (invalid) neighbours compare False: they match nothing
    return float(mixed.sum() / band.sum())


def mixed_own_surface_ratio(pred_depth: Array, gt_depth: Array, valid: Array | None = None) -> float:
    """Mixed pixels against the prediction's own two surfaces, not the ground truth's: of the band
    pixels of `mixed_pixel_ratio` whose ground truth is on the near or the far side of its 7x7
    neighbourhood (within 5%), the share whose prediction lies between the prediction's medians on
    the two sides (over the neighbourhood's pixels whose ground truth is on that side) and more than
    5% from both. A depth error that moves a whole surface moves its median with it and scores 0
    here, while `mixed_pixel_ratio` counts a band pixel 10% off as mixed: the difference of the two
    is the share of depth error, this one the share of blending. NaN when the band is empty."""
    pred, gt = _as_float(pred_depth), _as_float(gt_depth)
    gt_mask = valid_depth_mask(gt, valid)
    mask = gt_mask & valid_depth_mask(pred)
    tolerance = MIXED_TOLERANCE
    band, near, far = _mixed_band(gt, gt_mask, mask)
    with np.errstate(invalid="ignore"):
        band &= (gt <= (1 + tolerance) * near) | (gt >= (1 - tolerance) * far)
    rows, cols = np.nonzero(band)
    if rows.size == 0:
        return float("nan")
    half = MIXED_SPAN_WINDOW // 2
    window = (MIXED_SPAN_WINDOW,) * 2
    gt_windows = np.lib.stride_tricks.sliding_window_view(np.pad(np.where(mask, gt, np.nan), half, constant_values=np.nan), window)
    pred_windows = np.lib.stride_tricks.sliding_window_view(np.pad(np.where(mask, pred, np.nan), half, constant_values=np.nan), window)
    truth, predicted = gt_windows[rows, cols], pred_windows[rows, cols]  # [N, 7, 7], NaN where invalid
    lo, hi = near[rows, cols][:, None, None], far[rows, cols][:, None, None]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a side with no valid prediction: NaN, left out below
        side_near = np.nanmedian(np.where(truth <= (1 + tolerance) * lo, predicted, np.nan), axis=(1, 2))
        side_far = np.nanmedian(np.where(truth >= (1 - tolerance) * hi, predicted, np.nan), axis=(1, 2))
    judged = np.isfinite(side_near) & np.isfinite(side_far)
    if not judged.any():
        return float("nan")
    value = pred[rows, cols][judged]
    low, high = np.minimum(side_near, side_far)[judged], np.maximum(side_near, side_far)[judged]
    mixed = (value > (1 + tolerance) * low) & (value < (1 - tolerance) * high)
    return float(mixed.mean())


def published_edge_scores(published_depth: Array, gt_depth: Array, valid: Array | None = None) -> dict[str, float]:
    """A filtered depth map's edges as a consumer sees them (NaN or +-Inf: not published):
    published_edge_share, the share of discontinuity-band pixels published; published_mixed_ratio,
    the mixed-pixel ratio of the published pixels; published_boundary_f1, boundary F1 with every
    gap filled by its nearest published pixel's depth (a filtered pixel scored as depth 0 would draw
    an edge around itself; an edge filter removes both sides of a step, so the edge lands where the
    two published surfaces meet). All NaN when nothing is published; the first two when the band
    is empty."""
    depth, gt = _as_float(published_depth), _as_float(gt_depth)
    truth = valid_depth_mask(gt, valid)
    published = np.isfinite(depth)
    band = discontinuity_band(gt, truth)
    scores = dict(published_edge_share=float("nan"), published_mixed_ratio=float("nan"), published_boundary_f1=float("nan"))
    if not published.any():
        return scores
    nearest = distance_transform_edt(~published, return_distances=False, return_indices=True)
    scores["published_boundary_f1"] = boundary_f1(depth[tuple(nearest)], gt, truth)
    if band.any():
        scores["published_edge_share"] = float((band & published).sum() / band.sum())
        scores["published_mixed_ratio"] = mixed_pixel_ratio(depth, gt, truth)
    return scores


def depth_edge_f1(pred_depth: Array, gt_depth: Array, valid: Array | None = None, ratio: float = 1.1,
                  tolerance: int = 1) -> float:
    """F1 of depth-edge pixels (4-neighbour ratio > `ratio`) matched within `tolerance` px: a
    predicted edge pixel is right when a ground-truth one lies within the tolerance and vice versa.
    Unlike Depth Pro's F1 (exact pairs) it forgives an edge one pixel off. Scale-invariant; NaN
    when the ground truth has no edge."""
    pred, gt = _as_float(pred_depth), _as_float(gt_depth)
    mask = valid_depth_mask(gt, valid) & valid_depth_mask(pred)
    gt_edges, pred_edges = _step_pixels(gt, mask, ratio), _step_pixels(pred, mask, ratio)
    if not gt_edges.any():
        return float("nan")
    near = np.ones((2 * tolerance + 1,) * 2, dtype=bool)
    precision = (pred_edges & binary_dilation(gt_edges, near)).sum() / max(int(pred_edges.sum()), 1)
    recall = (gt_edges & binary_dilation(pred_edges, near)).sum() / gt_edges.sum()
    return float(2 * precision * recall / (precision + recall)) if precision + recall > 0 else 0.0


def nearest_neighbours(query: np.ndarray, reference: np.ndarray | cKDTree) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from each query point [N, 3] to its nearest reference point, and its index."""
    tree = reference if isinstance(reference, cKDTree) else cKDTree(reference)
    return tree.query(query, k=1, workers=-1)


def _camera_points(depth: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """[H, W, 3] camera-frame points, through geometry.unproject_depth so conventions stay in one place."""
    return unproject_depth(torch.from_numpy(depth), torch.from_numpy(intrinsics)).numpy()


def flying_points(
    pred_depth: Array,
    gt_depth: Array,
    valid: Array | None,
    intrinsics: Array,
    band: Array | None = None,
    threshold_fraction: float = 0.02,
    scale_method: ScaleMethod = "median",
) -> dict[str, float]:
    """Flying points and Chamfer distance in a band around ground-truth depth discontinuities.

    The prediction is scale-fitted (fit_scale) and both maps are unprojected with the ground-truth
    intrinsics [3, 3] (camera frame, depth units). The ground-truth cloud is every pixel valid in
    both maps; the band defaults to discontinuity_band over those pixels, and a given band is
    restricted to them. Raises ValueError when no pixel is valid in both (as fit_scale). Returns flying_ratio = fraction of predicted band points farther than
    threshold_fraction * median valid gt depth (`threshold`, depth units) from the nearest
    ground-truth point; band_accuracy = their mean nearest distance; band_completeness = mean
    distance from ground-truth band points to the nearest predicted point; band_chamfer = the
    mean of those two; num_band_points, num_flying and the scale. With an empty band the ratio
    and distances are NaN (average over images with nanmean).
    """
    pred, gt = _as_float(pred_depth), _as_float(gt_depth)
    mask = valid_depth_mask(pred, valid) & valid_depth_mask(gt)
    scale = fit_scale(pred, gt, mask, scale_method)
    band = discontinuity_band(gt, mask) if band is None else np.asarray(band, dtype=bool) & mask
    threshold = threshold_fraction * float(np.median(gt[mask]))
    result = {"flying_ratio": np.nan, "band_chamfer": np.nan, "band_accuracy": np.nan, "band_completeness": np.nan,
              "num_band_points": int(band.sum()), "num_flying": 0, "threshold": threshold, "scale": scale}
    if not band.any():
        return result
    k = _as_float(intrinsics)
    pred_points = _camera_points(np.where(mask, scale * pred, 0.0), k)
    gt_points = _camera_points(np.where(mask, gt, 0.0), k)
    accuracy, _ = nearest_neighbours(pred_points[band], gt_points[mask])
    completeness, _ = nearest_neighbours(gt_points[band], pred_points[mask])
    flying = accuracy > threshold
    result.update(
        flying_ratio=float(flying.mean()),
        band_accuracy=float(accuracy.mean()),
        band_completeness=float(completeness.mean()),
        band_chamfer=float(0.5 * (accuracy.mean() + completeness.mean())),
        num_flying=int(flying.sum()),
    )
    return result
