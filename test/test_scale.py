"""Metric scale estimators and their window-to-window tie (moe3d_ros.outputs.scale): constructed cases."""
from __future__ import annotations

import math

import numpy as np
import pytest

from moe3d_ros.data.sensors import CAMERA_IN_BASE, SimulatedSensors, camera_in_base_matrix
from moe3d_ros.inference.preprocess import plan_transform
from moe3d_ros.outputs.scale import (
    OdometryTrack,
    ScaleMeasurement,
    ScaleRefused,
    ScaleTracker,
    depth_measurement,
    odometry_log_ratios,
    pose_matrix,
    robust_log_fit,
    window_tie,
)

NS = 1_000_000_000
RNG = np.random.default_rng(11)


def test_robust_fit_ignores_outliers():
    ratios = np.log(2.5) + 0.02 * RNG.standard_normal(1000)
    ratios[:30] = np.log(RNG.uniform(0.1, 10, 30))  # 3% wild returns
    fit = robust_log_fit(ratios)
    assert math.exp(fit.log_scale) == pytest.approx(2.5, rel=0.005) and fit.samples >= 960
    with pytest.raises(ScaleRefused, match="valid samples"):
        robust_log_fit(np.array([0.1, np.nan]))


def _scene(height=480, width=640):
    """A predicted depth on the model grid and the true metric depth on the source pixels."""
    transform = plan_transform((height, width), "crop", 224)
    model_h, model_w = transform.model_hw
    yy, xx = np.mgrid[0:model_h, 0:model_w]
    predicted = (1.0 + 0.5 * np.sin(xx / 17.0) + 0.3 * (yy / model_h)).astype(np.float32)
    v, u = np.mgrid[0:height, 0:width]
    mu, mv = transform.source_to_model(u.astype(float), v.astype(float))
    truth = 2.5 * predicted[np.clip(np.rint(mv), 0, model_h - 1).astype(int), np.clip(np.rint(mu), 0, model_w - 1).astype(int)]
    return predicted, truth.astype(np.float32), transform


@pytest.mark.parametrize("fraction", [1.0, 0.01, 0.005])
def test_a_known_scale_is_recovered_from_sparse_noisy_depth_with_outliers(fraction):
    predicted, truth, transform = _scene()
    sensors = SimulatedSensors(seed=3, fraction=fraction, noise=0.02, outliers=0.03)
    measured = sensors.sparse_depth(truth, np.ones_like(truth, bool), frame=0)
    assert abs((measured > 0).mean() - fraction) < 0.5 * fraction
    fit = depth_measurement([predicted], [measured], [transform], published=[0])
    assert math.exp(fit.log_scale) == pytest.approx(2.5, rel=0.01)


def test_depth_of_another_size_is_refused_and_missing_depth_says_so():
    predicted, truth, transform = _scene()
    with pytest.raises(ScaleRefused, match="registered"):
        depth_measurement([predicted], [truth[:100]], [transform], published=[0])
    with pytest.raises(ScaleRefused, match="no depth measurement"):
        depth_measurement([predicted], [None], [transform], published=[0])


def test_published_frames_without_depth_fall_back_to_the_other_window_frames():
    predicted, truth, transform = _scene()
    fit = depth_measurement([predicted, predicted], [None, truth], [transform, transform], published=[0])
    assert math.exp(fit.log_scale) == pytest.approx(2.5, rel=0.01)


def _robot_path(frames: int, speed: float = 0.3, turn: float = 0.2, dt: float = 0.2) -> list[np.ndarray]:
    """Base poses of a robot driving an arc (it turns, so a lever arm moves the camera sideways)."""
    poses, x, y, yaw = [], 0.0, 0.0, 0.0
    for _ in range(frames):
        pose = np.eye(4)
        pose[:2, :2] = [[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]]
        pose[:3, 3] = [x, y, 0.0]
        poses.append(pose)
        x += speed * dt * math.cos(yaw)
        y += speed * dt * math.sin(yaw)
        yaw += turn * dt
    return poses


def test_a_known_scale_is_recovered_from_odometry_with_a_lever_arm_and_rotation():
    mount = camera_in_base_matrix(CAMERA_IN_BASE)
    bases = _robot_path(6)
    track = OdometryTrack(mount, max_gap_ns=NS // 10)
    order = RNG.permutation(len(bases))  # odometry arrives out of order: kept by stamp
    for i in order:
        track.add((i + 1) * NS // 5, bases[i])
    cameras = np.array([(base @ mount)[:3, 3] for base in bases])
    # The model's positions: 1/3.2 of the metres, in a frame rotated and shifted against the world.
    rotation = pose_matrix([0, 0, 0], [0.2, -0.3, 0.1, 0.927])[:3, :3]
    predicted = (cameras - cameras[0]) @ rotation.T / 3.2
    metric = [track.camera_position((i + 1) * NS // 5) for i in range(len(bases))]
    fit = robust_log_fit(odometry_log_ratios(predicted, metric, min_baseline=0.05), min_samples=1)
    assert math.exp(fit.log_scale) == pytest.approx(3.2, rel=1e-6)
    # Without the lever arm the baselines differ: the mounting transform matters.
    plain = OdometryTrack(np.eye(4), NS // 10)
    for i, base in enumerate(bases):
        plain.add((i + 1) * NS // 5, base)
    wrong = robust_log_fit(odometry_log_ratios(predicted, [plain.camera_position((i + 1) * NS // 5) for i in range(6)], 0.05), 1)
    assert abs(math.exp(wrong.log_scale) - 3.2) > 0.01


def test_odometry_between_samples_is_interpolated_and_gaps_are_missing():
    track = OdometryTrack(np.eye(4), max_gap_ns=NS // 10)
    for stamp, x in [(NS, 0.0), (2 * NS, 1.0)]:
        pose = np.eye(4)
        pose[0, 3] = x
        track.add(stamp, pose)
    assert track.camera_position(int(1.25 * NS))[0] == pytest.approx(0.25)
    assert track.camera_position(int(2.05 * NS))[0] == pytest.approx(1.0)  # within max_gap of the last sample
    assert track.camera_position(3 * NS) is None  # odometry does not cover it
    with pytest.raises(ScaleRefused, match="covers 1 of"):
        odometry_log_ratios(np.zeros((2, 3)), [np.zeros(3), None], 0.1)


def test_standing_still_holds_the_last_scale_and_says_so():
    tracker = ScaleTracker("odometry")
    depth = {("cam", 1): np.ones((8, 8))}
    assert tracker.update(depth, ScaleMeasurement(math.log(2.0), 0.01, 3)).status == "ok"
    still = [np.zeros(3), np.full(3, 0.01)]
    with pytest.raises(ScaleRefused, match="standing still") as refused:
        odometry_log_ratios(np.array([[0, 0, 0], [0.1, 0, 0]]), still, min_baseline=0.1)
    estimate = tracker.update({("cam", 1): np.ones((8, 8)), ("cam", 2): np.ones((8, 8))}, refused.value)
    assert estimate.status == "holding" and estimate.scale == pytest.approx(2.0) and "standing still" in estimate.reason


def test_windows_are_tied_through_a_shared_frame_and_reset_without_one():
    shared = RNG.uniform(1, 3, (20, 30))
    first = {("cam", 1): RNG.uniform(1, 3, (20, 30)), ("cam", 2): shared}
    second = {("cam", 2): shared * 0.8, ("cam", 3): RNG.uniform(1, 3, (20, 30))}  # this window's unit is 1/0.8 of the first's
    tie = window_tie(first, second)
    assert math.exp(tie.log_scale) == pytest.approx(1 / 0.8, rel=1e-6)
    tracker = ScaleTracker("relative")
    assert tracker.update(first, None).scale == pytest.approx(1.0)
    estimate = tracker.update(second, None)
    assert estimate.scale == pytest.approx(1.25) and estimate.status == "relative"  # the shared frame's depth is the same
    unrelated = {("cam", 9): RNG.uniform(1, 3, (20, 30))}
    reset = tracker.update(unrelated, None)
    assert reset.scale == pytest.approx(1.0) and "reset" in reset.reason and tracker.resets == 1


def test_metric_filter_follows_the_tie_and_rejects_an_outlier():
    tracker = ScaleTracker("depth")
    frames = [{("cam", i): np.full((10, 10), 1.0), ("cam", i + 1): np.full((10, 10), 1.0)} for i in range(6)]
    for window in frames[:3]:
        estimate = tracker.update(window, ScaleMeasurement(math.log(2.0), 0.001, 500))
    assert estimate.scale == pytest.approx(2.0, rel=1e-3)
    outlier = tracker.update(frames[3], ScaleMeasurement(math.log(4.0), 0.001, 500))
    assert outlier.status == "holding" and outlier.scale == pytest.approx(2.0, rel=1e-3) and tracker.outliers == 1
    assert tracker.update(frames[4], ScaleMeasurement(math.log(2.02), 0.001, 500)).status == "ok"
    nothing = tracker.update(frames[5], ScaleRefused("no depth measurement"))
    assert nothing.status == "holding" and nothing.scale == pytest.approx(2.02, rel=0.01)


def test_metric_mode_without_any_measurement_is_no_data():
    estimate = ScaleTracker("depth").update({("cam", 1): np.ones((4, 4))}, ScaleRefused("no depth measurement"))
    assert estimate.status == "no_data" and "no depth" in estimate.reason


def test_simulated_odometry_drifts_but_stays_close():
    from moe3d_ros.data.synthetic import SyntheticConfig, generate_scene

    scene = generate_scene(900_001, SyntheticConfig())
    path = scene.camera_path(30, 900_001)
    track = SimulatedSensors(900_001).odometry_track(path, rate=3.0)
    truth = path[:, :3, 3]
    estimated = np.array([track.camera_position(int((i + 1) * NS / 3.0)) for i in range(30)])
    steps = np.linalg.norm(np.diff(truth, axis=0), axis=1)
    error = np.linalg.norm(estimated - truth, axis=1)
    assert error[0] < 1e-9 and 0 < error[-1] < 0.1 * steps.sum()


def test_fixed_mode_is_each_windows_own_unit_times_the_factor():
    """Reproducible: the factor applies to each window's model unit, whatever came before."""
    from moe3d_ros.outputs.scale import ScaleTracker, publishable

    first, second = ScaleTracker("fixed", 2.5), ScaleTracker("fixed", 2.5)
    depth = np.full((8, 8), 3.0)
    first.update({("cam", 1): depth * 7.0}, None)  # another first window in one run only
    for tracker in (first, second):
        estimate = tracker.update({("cam", 2): depth}, None)
        assert (estimate.scale, estimate.status) == (2.5, "fixed")
        assert publishable("fixed", estimate)


def test_metric_modes_publish_only_a_measured_or_held_scale():
    from moe3d_ros.outputs.scale import ScaleEstimate, publishable

    for status, expected in (("no_data", False), ("ok", True), ("holding", True)):
        estimate = ScaleEstimate(1.0, 0.1, 0, status, "")
        assert publishable("depth", estimate) is expected and publishable("odometry", estimate) is expected
        assert publishable("depth", estimate, publish_unscaled=True)
    assert publishable("relative", ScaleEstimate(1.0, 0.0, 0, "relative", ""))
