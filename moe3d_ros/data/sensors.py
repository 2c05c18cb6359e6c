"""Simulated robot sensors for the synthetic scenes: what the metric scale sources read.

- `sparse_depth`: a multi-beam LiDAR projected into the camera: a few scan rows, about 1% of the
  pixels, 2% range noise and 3% outliers (multipath, returns from behind glass);
- `NoisyOdometry`: wheel odometry of a base that carries the camera at `CAMERA_IN_BASE`,
  integrated from motion increments with 2% noise, so it drifts.
The demo camera publishes both; the scale benchmark feeds them to the node's estimators.
"""
from __future__ import annotations

import numpy as np

from ..outputs.scale import OdometryTrack, pose_matrix

# The camera 0.2 m ahead of and 0.1 m above the base, optical axes (z forward, x right, y down)
# in a base frame with x forward, y left, z up (REP-103): x y z qx qy qz qw.
CAMERA_IN_BASE = (0.2, 0.0, 0.1, -0.5, 0.5, -0.5, 0.5)


def camera_in_base_matrix(values=CAMERA_IN_BASE) -> np.ndarray:
    return pose_matrix(values[:3], values[3:])


class SimulatedSensors:
    """Deterministic per seed: the same sequence gets the same measurements."""

    def __init__(self, seed: int, fraction: float = 0.01, noise: float = 0.02, outliers: float = 0.03,
                 odometry_noise: float = 0.02) -> None:
        self.seed = seed
        self.fraction, self.noise, self.outliers = fraction, noise, outliers
        self.odometry_noise = odometry_noise

    def sparse_depth(self, depth: np.ndarray, valid: np.ndarray, frame: int) -> np.ndarray:
        """float32 metres on the image's pixels, 0 where there is no return."""
        rng = np.random.default_rng((self.seed, frame))
        height, width = depth.shape
        beams = max(2, int(round(np.sqrt(self.fraction * height * width / 4))))  # rows ~ a quarter of points per row
        rows = np.linspace(0.15 * height, 0.85 * height, beams).astype(int)
        per_row = max(1, int(round(self.fraction * height * width / beams)))
        cols = (np.linspace(0, width - 1, per_row) + rng.uniform(0, width / per_row)).astype(int) % width
        out = np.zeros_like(depth, dtype=np.float32)
        r, c = np.meshgrid(rows, cols, indexing="ij")
        r, c = r.ravel(), c.ravel()
        keep = valid[r, c]
        r, c = r[keep], c[keep]
        values = depth[r, c] * (1 + self.noise * rng.standard_normal(r.size))
        wrong = rng.random(r.size) < self.outliers
        values[wrong] = depth[r, c][wrong] * rng.uniform(0.3, 3.0, wrong.sum())
        out[r, c] = values.astype(np.float32)
        return out

    def odometry(self) -> "NoisyOdometry":
        return NoisyOdometry(camera_in_base_matrix(), self.odometry_noise, self.seed)

    def odometry_track(self, cam_to_world: np.ndarray, rate: float, max_gap_s: float = 0.1) -> OdometryTrack:
        """Odometry of a whole sequence sampled at the frames' stamps ((i + 1) / rate seconds)."""
        track = OdometryTrack(camera_in_base_matrix(), int(max_gap_s * 1e9))
        odometry = self.odometry()
        for i, pose in enumerate(cam_to_world):
            track.add(int((i + 1) * 1e9 / rate), odometry.step(pose))
        return track


class NoisyOdometry:
    """Integrates the base's true motion increments with multiplicative translation noise and a
    small heading noise: the estimate drifts like wheel odometry."""

    def __init__(self, camera_in_base: np.ndarray, noise: float, seed: int) -> None:
        self.base_from_camera = np.linalg.inv(camera_in_base)
        self.noise = noise
        self.rng = np.random.default_rng((seed, 7))
        self._true: np.ndarray | None = None
        self._estimate: np.ndarray | None = None

    def step(self, cam_to_world: np.ndarray) -> np.ndarray:
        """The odometry's base-in-world estimate after the camera moved to `cam_to_world`."""
        true = cam_to_world @ self.base_from_camera
        if self._true is None:
            self._true, self._estimate = true, true.copy()
            return self._estimate.copy()
        increment = np.linalg.inv(self._true) @ true
        increment[:3, 3] *= 1 + self.noise * self.rng.standard_normal(3)
        yaw = self.noise * 0.05 * self.rng.standard_normal()
        turn = np.eye(4)
        turn[:2, :2] = [[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]
        self._estimate = self._estimate @ increment @ turn
        self._true = true
        return self._estimate.copy()
