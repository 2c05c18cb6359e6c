"""The camera's own translation between two frames, from the images and the predicted depth: the
baseline the odometry scale compares with metres. No ROS.

The camera head of a small model barely moves its cameras (the demo model's predicted baselines
were 331x too short), but its depth is good up to scale: corners tracked from frame a to frame b
(pyramidal Lucas-Kanade, checked backwards) are lifted to 3-D with frame a's predicted depth, and
cv2.solvePnPRansac gives frame b's pose relative to a. The length of that translation is in the
depth's unit, so metres / it is the window's scale, whatever the camera head says.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .scale import ScaleRefused, metric_baselines

MAX_CORNERS = 400
MIN_INLIERS = 12
BACK_CHECK_PX = 1.0  # a track whose backward track misses its start by more is dropped
REPROJECTION_PX = 2.0


@dataclass(frozen=True)
class VisualBaseline:
    length: float  # camera translation between the frames, in the depth's unit
    inliers: int


def visual_baseline(image_a: np.ndarray, image_b: np.ndarray, depth_a: np.ndarray, k_a: np.ndarray,
                    k_b: np.ndarray) -> VisualBaseline | None:
    """Translation of camera b relative to camera a; images uint8 RGB [H, W, 3] on one grid with
    depth_a [H, W] (NaN / <= 0 invalid); None when too few tracks agree."""
    gray_a, gray_b = (cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY) for img in (image_a, image_b))
    corners = cv2.goodFeaturesToTrack(gray_a, MAX_CORNERS, qualityLevel=0.01, minDistance=5)
    if corners is None or len(corners) < MIN_INLIERS:
        return None
    tracked, status, _ = cv2.calcOpticalFlowPyrLK(gray_a, gray_b, corners, None, winSize=(15, 15), maxLevel=3)
    back, back_status, _ = cv2.calcOpticalFlowPyrLK(gray_b, gray_a, tracked, None, winSize=(15, 15), maxLevel=3)
    good = (status[:, 0] == 1) & (back_status[:, 0] == 1) & (np.linalg.norm(back - corners, axis=-1)[:, 0] < BACK_CHECK_PX)
    start, end = corners[good, 0], tracked[good, 0]
    height, width = depth_a.shape
    cols = np.clip(np.rint(start[:, 0]).astype(int), 0, width - 1)
    rows = np.clip(np.rint(start[:, 1]).astype(int), 0, height - 1)
    z = depth_a[rows, cols].astype(np.float64)
    ok = np.isfinite(z) & (z > 0)
    if ok.sum() < MIN_INLIERS:
        return None
    rays = np.linalg.solve(k_a, np.stack([start[ok, 0], start[ok, 1], np.ones(ok.sum())]).astype(np.float64))
    points = (rays * z[ok]).T
    found, rvec, tvec, inliers = cv2.solvePnPRansac(points, end[ok].astype(np.float64), np.asarray(k_b, np.float64), None,
                                                     reprojectionError=REPROJECTION_PX, iterationsCount=200,
                                                     flags=cv2.SOLVEPNP_ITERATIVE)
    if not found or inliers is None or len(inliers) < MIN_INLIERS:
        return None
    return VisualBaseline(float(np.linalg.norm(tvec)), int(len(inliers)))


def visual_log_ratios(images: list[np.ndarray], depths: list[np.ndarray], intrinsics: list[np.ndarray],
                      metric_positions: list[np.ndarray | None], min_baseline: float) -> np.ndarray:
    """log(metric / visual baseline) for every pair of window frames (one camera's) whose metric
    baseline is at least `min_baseline` metres and whose visual baseline could be measured;
    raises ScaleRefused as scale.metric_baselines does (standing still, odometry missing)."""
    ratios = []
    for i, j, metric in metric_baselines(metric_positions, min_baseline):
        measured = visual_baseline(images[i], images[j], depths[i], intrinsics[i], intrinsics[j])
        if measured is not None and measured.length > 0:
            ratios.append(np.log(metric / measured.length))
    if not ratios:
        raise ScaleRefused("no camera motion measured from the images: too few feature tracks agree between the window's frames")
    return np.asarray(ratios)
