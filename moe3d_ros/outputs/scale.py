"""Metric scale for VGGT's up-to-scale geometry, steady from window to window. No ROS here.

VGGT normalises every window on its own, so its unit changes from one model call to the next.
Consecutive windows share keyframes: the same image predicted in two windows gives the ratio of
their units (`window_tie`), which carries the scale across windows. On top of that chain, a metric
source measures metres per model unit for each window:
- `depth`: a registered metric depth image (RGB-D "aligned depth", a LiDAR projected into the
  camera), dense or sparse; robust fit of log(measured / predicted) over all window frames;
- `odometry`: the robot's odometry and the camera's mounting transform give metric camera
  positions at the frames' stamps; baselines of at least `min_baseline` metres against the
  predicted ones.
`ScaleTracker` filters the measurements on log scale (a Kalman filter whose prediction step is the
window tie), gates outliers, holds the last good value when the source has nothing (the robot
stands still), and resets cleanly when two windows share no frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Hashable

import numpy as np

from ..inference.preprocess import ImageTransform
from ..intake.stamps import StampedHistory
from ..model.geometry import quaternion_to_matrix

MAD_TO_SIGMA = 1.4826
OUTLIER_SIGMAS = 3.0  # log ratios further than this many robust sigmas from the median are outliers
MIN_DEPTH_SAMPLES = 20
MIN_TIE_PIXELS = 100
MAX_INTERPOLATION_NS = 10**9  # odometry samples further apart are a hole, not something to interpolate across
RESET_SIGMA = 0.15  # uncertainty of a metric scale carried over a window with no shared frame


class ScaleRefused(ValueError):
    """A source has no usable measurement for a window; the text says why."""


@dataclass(frozen=True)
class ScaleMeasurement:
    log_scale: float  # log of metres per model unit of one window
    log_sigma: float  # its 1-sigma uncertainty
    samples: int  # inliers used


@dataclass(frozen=True)
class ScaleEstimate:
    """What the node applies to a window: published = model units x `scale`."""

    scale: float
    uncertainty: float  # 1-sigma of log(scale): 0.01 = 1%
    samples: int  # of this window's measurement (0 when none)
    status: str  # "ok" (measured this window), "holding" (carried from earlier windows), "no_data", "relative", "fixed"
    reason: str = ""  # why the source gave nothing, or what happened (reset)


def robust_log_fit(log_ratios: np.ndarray, min_samples: int = MIN_DEPTH_SAMPLES) -> ScaleMeasurement:
    """Mean of the log ratios after rejecting those beyond OUTLIER_SIGMAS robust sigmas (MAD)."""
    ratios = np.asarray(log_ratios, dtype=np.float64).ravel()
    ratios = ratios[np.isfinite(ratios)]
    if ratios.size < min_samples:
        raise ScaleRefused(f"{ratios.size} valid samples (at least {min_samples} needed)")
    median = float(np.median(ratios))
    spread = max(MAD_TO_SIGMA * float(np.median(np.abs(ratios - median))), 1e-4)
    inliers = ratios[np.abs(ratios - median) <= OUTLIER_SIGMAS * spread]
    if inliers.size < min_samples:
        raise ScaleRefused(f"{inliers.size} inliers of {ratios.size} samples (at least {min_samples} needed)")
    sigma = max(float(inliers.std()), 1e-4) / math.sqrt(inliers.size)
    return ScaleMeasurement(float(inliers.mean()), sigma, int(inliers.size))


def model_values_at(predicted: np.ndarray, transform: ImageTransform, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values of a model-grid array at the model pixels nearest to source pixels (u, v); returns
    them and the mask of the source pixels that fall on image content (not padding, not cropped)."""
    mu, mv = transform.source_to_model(u.astype(np.float64), v.astype(np.float64))
    mu, mv = np.rint(mu).astype(np.int64), np.rint(mv).astype(np.int64)
    top, bottom, left, right = transform.content_box()
    inside = (mv >= top) & (mv < bottom) & (mu >= left) & (mu < right)
    return predicted[mv[inside], mu[inside]], inside


def depth_log_ratios(predicted: np.ndarray, measured: np.ndarray, transform: ImageTransform) -> np.ndarray:
    """log(measured / predicted) at every valid measured pixel: `measured` is metric depth on the
    source image's pixels (0 or NaN invalid), `predicted` the model's depth on its own grid."""
    if measured.shape != tuple(transform.source_hw):
        raise ScaleRefused(f"depth image is {measured.shape[1]}x{measured.shape[0]} but the camera image is "
                           f"{transform.source_hw[1]}x{transform.source_hw[0]} (it must be registered to the image)")
    v, u = np.nonzero(np.isfinite(measured) & (measured > 0))
    model_depth, inside = model_values_at(predicted, transform, u, v)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.log(measured[v[inside], u[inside]].astype(np.float64) / model_depth.astype(np.float64))
    return ratios[np.isfinite(ratios)]


def depth_measurement(predicted: list[np.ndarray], measured: list[np.ndarray | None], transforms: list[ImageTransform],
                      published: list[int]) -> ScaleMeasurement:
    """Metres per model unit of a window from registered metric depth of its frames.

    The fit uses the frames that are published (the newest of each camera) when they hold enough
    samples, else every frame with a measurement: a model whose frames within one window do not
    share one unit exactly is scaled right where it is seen (the bundled demo model: metric AbsRel
    1.03x the oracle from the published frames, 1.22x from all four frames; bench/bench_scale.py).
    """
    def ratios(frames: list[int]) -> list[np.ndarray]:
        return [depth_log_ratios(predicted[i], measured[i], transforms[i]) for i in frames if measured[i] is not None]

    if not any(m is not None for m in measured):
        raise ScaleRefused("no depth measurement within scale.max_stamp_gap of the window's frames")
    try:
        return robust_log_fit(np.concatenate(ratios(published) or [np.empty(0)]))
    except ScaleRefused:
        return robust_log_fit(np.concatenate(ratios(list(range(len(predicted))))))


def pose_matrix(position, quaternion_xyzw) -> np.ndarray:
    """4x4 from a translation and a unit quaternion (x, y, z, w)."""
    import torch

    matrix = np.eye(4)
    matrix[:3, :3] = quaternion_to_matrix(torch.tensor(quaternion_xyzw, dtype=torch.float64)).numpy()
    matrix[:3, 3] = position
    return matrix


class OdometryTrack:
    """Odometry poses by stamp; `camera_position(stamp)` interpolates the base pose linearly
    between the two nearest samples and applies the camera's mounting transform (base -> camera),
    so a lever arm turns with the robot."""

    def __init__(self, camera_in_base: np.ndarray, max_gap_ns: int, maxlen: int = 2000) -> None:
        self.camera_in_base = np.asarray(camera_in_base, dtype=np.float64)
        self.max_gap_ns = max_gap_ns
        self._poses: StampedHistory[np.ndarray] = StampedHistory(maxlen, tolerance_ns=max_gap_ns)

    def add(self, stamp_ns: int, base_in_world: np.ndarray) -> None:
        self._poses.add(stamp_ns, np.asarray(base_in_world, dtype=np.float64))

    def __len__(self) -> int:
        return len(self._poses)

    def camera_position(self, stamp_ns: int) -> np.ndarray | None:
        """Metric camera centre at `stamp_ns`, or None when odometry does not cover it."""
        before, after = self._poses.around(stamp_ns)
        if before is not None and after is not None and after[0] - before[0] <= MAX_INTERPOLATION_NS:
            (t0, p0), (t1, p1) = before, after
            w = 0.0 if t1 == t0 else (stamp_ns - t0) / (t1 - t0)
            base = (p0 if w < 0.5 else p1).copy()  # the orientation of the nearer sample
            base[:3, 3] = (1 - w) * p0[:3, 3] + w * p1[:3, 3]
        else:
            near = [p for p in (before, after) if p is not None and abs(p[0] - stamp_ns) <= self.max_gap_ns]
            if not near:
                return None
            base = min(near, key=lambda p: abs(p[0] - stamp_ns))[1]
        return (base @ self.camera_in_base)[:3, 3]


def metric_baselines(metric_positions: list[np.ndarray | None], min_baseline: float) -> list[tuple[int, int, float]]:
    """(i, j, metres) of every pair of window frames whose odometry baseline is at least
    `min_baseline`; raises ScaleRefused (standing still, or odometry missing) when there is none."""
    pairs = []
    longest = 0.0
    for i in range(len(metric_positions)):
        for j in range(i + 1, len(metric_positions)):
            pi, pj = metric_positions[i], metric_positions[j]
            if pi is None or pj is None:
                continue
            metric = float(np.linalg.norm(pi - pj))
            longest = max(longest, metric)
            if metric >= min_baseline:
                pairs.append((i, j, metric))
    if not pairs:
        known = sum(p is not None for p in metric_positions)
        if known < 2:
            raise ScaleRefused(f"odometry covers {known} of the window's {len(metric_positions)} frames")
        raise ScaleRefused(f"standing still: longest baseline {longest:.3f} m < scale.min_baseline {min_baseline} m")
    return pairs


def odometry_log_ratios(predicted_positions: np.ndarray, metric_positions: list[np.ndarray | None],
                        min_baseline: float) -> np.ndarray:
    """log(metric / predicted baseline) for every pair of window frames whose metric baseline is at
    least `min_baseline` metres (distances need no alignment of the two frames of reference); the
    predicted baselines are the camera head's."""
    ratios = []
    for i, j, metric in metric_baselines(metric_positions, min_baseline):
        predicted = float(np.linalg.norm(predicted_positions[i] - predicted_positions[j]))
        if predicted > 0:
            ratios.append(math.log(metric / predicted))
    return np.asarray(ratios)


def window_tie(previous: dict[Hashable, np.ndarray], current: dict[Hashable, np.ndarray]) -> ScaleMeasurement | None:
    """log(previous unit / current unit) from the frames both windows predicted (keys: camera and
    stamp), or None when they share none: the same image's depth in both windows."""
    ratios = []
    for key in previous.keys() & current.keys():
        a, b = previous[key], current[key]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.log(a / b)
        ratios.append(r[np.isfinite(r)])
    if not ratios or sum(r.size for r in ratios) < MIN_TIE_PIXELS:
        return None
    try:
        return robust_log_fit(np.concatenate(ratios), MIN_TIE_PIXELS)
    except ScaleRefused:
        return None


class ScaleTracker:
    """Log metres per model unit of each window, tied across windows and filtered over time.

    `mode`: "relative" (the first window defines the unit, later windows keep it), "fixed"
    (metres = factor x each window's own model unit: depends only on the window's images, so the
    same factor gives the same metres in every run; not tied across windows), "depth" or
    "odometry" (measured; until the first measurement the status is "no_data" and nothing metric
    may be published, see `publishable`).

    The prediction step adds `process_sigma` per window on top of the tie's own uncertainty (the
    tie between windows of the demo model is off by 8% at the 90th percentile); measurements count
    with at least `measurement_floor`. A measurement beyond `gate_sigmas` is an outlier; after
    `max_rejections` in a row the filter restarts from the measurements.
    """

    def __init__(self, mode: str, factor: float = 1.0, process_sigma: float = 0.05, measurement_floor: float = 0.005,
                 gate_sigmas: float = 4.0, max_rejections: int = 3) -> None:
        self.mode = mode
        self.factor = factor
        self.process_var = process_sigma**2
        self.measurement_floor = measurement_floor
        self.gate_sigmas = gate_sigmas
        self.max_rejections = max_rejections
        self._log_scale: float | None = None  # of the last window
        self._var = math.inf
        self._previous: dict[Hashable, np.ndarray] = {}
        self._rejections = 0
        self.resets = 0
        self.outliers = 0

    def update(self, depths: dict[Hashable, np.ndarray], measurement: ScaleMeasurement | ScaleRefused | None) -> ScaleEstimate:
        """One window: `depths` are its frames' predicted depths (model units) keyed by camera and
        stamp; `measurement` is the metric source's (None in relative and fixed modes)."""
        if self.mode == "fixed":
            return ScaleEstimate(self.factor, 0.0, 0, "fixed", "")
        tie = window_tie(self._previous, depths) if self._previous else None
        self._previous = depths
        reason = ""
        if tie is not None and self._log_scale is not None:
            self._log_scale += tie.log_scale
            self._var += self.process_var + tie.log_sigma**2
        elif self._log_scale is not None:
            self.resets += 1
            reason = "reset: no frame shared with the previous window"
            if self.mode == "relative":
                self._log_scale, self._var = None, math.inf
            else:  # the old value is only a guess now: the next measurement decides
                self._var += RESET_SIGMA**2
        if self.mode == "relative":
            if self._log_scale is None:
                self._log_scale, self._var = 0.0, 0.0
            return ScaleEstimate(math.exp(self._log_scale), math.sqrt(self._var), 0, self.mode, reason)
        if isinstance(measurement, ScaleMeasurement):
            sigma = max(measurement.log_sigma, self.measurement_floor)
            if self._log_scale is None or not math.isfinite(self._var):
                self._log_scale, self._var = measurement.log_scale, sigma**2
                return ScaleEstimate(math.exp(self._log_scale), sigma, measurement.samples, "ok", reason)
            innovation = measurement.log_scale - self._log_scale
            if abs(innovation) <= self.gate_sigmas * math.sqrt(self._var + sigma**2) or self._rejections >= self.max_rejections:
                if self._rejections >= self.max_rejections:  # the source keeps disagreeing: believe it
                    self._log_scale, self._var = measurement.log_scale, sigma**2
                    reason = "reset: the measurements disagreed with the filter"
                    self.resets += 1
                else:
                    gain = self._var / (self._var + sigma**2)
                    self._log_scale += gain * innovation
                    self._var *= 1 - gain
                self._rejections = 0
                return ScaleEstimate(math.exp(self._log_scale), math.sqrt(self._var), measurement.samples, "ok", reason)
            self._rejections += 1
            self.outliers += 1
            reason = f"measurement {math.exp(measurement.log_scale):.4g} rejected as an outlier"
        elif isinstance(measurement, ScaleRefused):
            reason = str(measurement)
        if self._log_scale is None:
            return ScaleEstimate(1.0, math.inf, 0, "no_data", reason or "no measurement yet")
        return ScaleEstimate(math.exp(self._log_scale), math.sqrt(self._var), 0, "holding", reason)


METRIC_MODES = ("depth", "odometry")
METRIC_STATUSES = ("ok", "holding")  # a measured scale, current or carried through the window ties


def publishable(mode: str, estimate: ScaleEstimate, publish_unscaled: bool = False) -> bool:
    """Whether a window's depth may go out: in a metric mode only once the scale is measured
    ("ok") or held from a measurement ("holding"), never raw model units labelled as metres
    (`publish_unscaled` overrides this, for debugging); the other modes always publish."""
    return mode not in METRIC_MODES or estimate.status in METRIC_STATUSES or publish_unscaled
