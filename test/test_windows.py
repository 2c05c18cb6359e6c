"""Training windows: index sampling, tensor layout, nearest depth, multi-view consistency, determinism."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from moe3d_ros.data.sequence import RGBDSequence
from moe3d_ros.data.sources import InMemorySource
from moe3d_ros.data.synthetic import SyntheticConfig, generate_sequence
from moe3d_ros.data.windows import (
    Augmentation,
    SyntheticWindows,
    TrainingWindow,
    WindowSampler,
    _nearest_onto_grid,
    make_window,
    sample_window_indices,
)
from moe3d_ros.model.geometry import depth_to_world_points
from moe3d_ros.inference.preprocess import plan_transform

STRONG = Augmentation(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05, max_zoom=1.25)


@pytest.fixture(scope="module")
def sequence() -> RGBDSequence:
    return generate_sequence(11, 4)


@pytest.fixture(scope="module")
def long_sequence() -> RGBDSequence:
    return generate_sequence(5, 10, SyntheticConfig(height=42, width=56))


def fields_equal(a: TrainingWindow, b: TrainingWindow) -> bool:
    names = ("images", "depth", "valid", "extrinsics", "intrinsics")
    return all(torch.equal(getattr(a, n), getattr(b, n)) for n in names)


# ----------------------------------------------------------------------------------------------
# Index sampling


def test_window_indices_are_an_evenly_strided_run_with_the_reference_first():
    rng = np.random.default_rng(0)
    shuffled = 0
    for _ in range(200):
        indices = sample_window_indices(30, 5, (2, 4), rng)
        ordered = np.sort(indices)
        steps = np.diff(ordered)
        assert len(indices) == 5 and ordered[0] >= 0 and ordered[-1] < 30
        assert indices[0] == ordered[0] and np.all(steps == steps[0]) and 2 <= steps[0] <= 4
        shuffled += not np.array_equal(indices, ordered)
    assert shuffled > 100  # the non-reference frames come in random order


def test_window_indices_in_order_and_stride_clipped_to_the_sequence():
    rng = np.random.default_rng(1)
    for _ in range(50):
        indices = sample_window_indices(10, 4, 5, rng, random_order=False)
        np.testing.assert_array_equal(np.diff(indices), [3, 3, 3])  # stride 5 does not fit: (10 - 1) // 3
    np.testing.assert_array_equal(sample_window_indices(4, 4, (1, 8), rng, random_order=False), [0, 1, 2, 3])
    assert len(sample_window_indices(1, 1, 3, rng)) == 1


def test_window_indices_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="3 frames is too short for a window of 4"):
        sample_window_indices(3, 4, 1, rng)
    with pytest.raises(ValueError, match="stride"):
        sample_window_indices(10, 2, (3, 2), rng)
    with pytest.raises(ValueError, match="stride"):
        sample_window_indices(10, 2, 0, rng)


# ----------------------------------------------------------------------------------------------
# make_window


def test_window_layout_and_identity_transform(sequence: RGBDSequence):
    window = make_window(sequence, target_width=224)
    assert window.images.shape == (4, 3, 168, 224) and window.images.dtype == torch.float32
    assert window.depth.shape == (4, 168, 224) and window.depth.dtype == torch.float32
    assert window.valid.shape == (4, 168, 224) and window.valid.dtype == torch.bool
    assert window.extrinsics.shape == (4, 3, 4) and window.intrinsics.shape == (4, 3, 3)
    # 168x224 at target 224 is the identity: everything passes through unchanged.
    torch.testing.assert_close(window.images, torch.from_numpy(sequence.images).permute(0, 3, 1, 2).float() / 255)
    torch.testing.assert_close(window.depth, torch.from_numpy(sequence.depth))
    torch.testing.assert_close(window.intrinsics, torch.from_numpy(sequence.intrinsics).float())
    torch.testing.assert_close(window.extrinsics[0], torch.eye(4)[:3])


def test_extrinsics_are_relative_to_frame_0(sequence: RGBDSequence):
    window = make_window(sequence, target_width=112)
    expected = np.linalg.inv(sequence.cam_to_world) @ sequence.cam_to_world[0]
    np.testing.assert_allclose(window.extrinsics.numpy(), expected[:, :3], atol=1e-5)


@pytest.mark.parametrize("target_width, augment", [(112, None), (518, None), (224, STRONG), (518, STRONG)])
def test_depth_is_resampled_nearest(sequence: RGBDSequence, target_width: int, augment: Augmentation | None):
    window = make_window(sequence, target_width, augment, np.random.default_rng(3))
    for frame in range(len(sequence)):
        out = window.depth[frame][window.valid[frame]].numpy()
        assert out.size > 0 and np.isin(out, sequence.depth[frame][sequence.valid[frame]]).all()
    assert torch.all(window.depth[~window.valid] == 0)


def reprojection_agreement(window: TrainingWindow, src: int, dst: int, tolerance: float = 0.02) -> float:
    """Fraction of frame src's valid depth that lands on frame dst at the depth dst measured there."""
    depth = window.depth.double()
    points = depth_to_world_points(depth[src], window.extrinsics[src].double(), window.intrinsics[src].double())
    points = points[window.valid[src]]
    camera = points @ window.extrinsics[dst, :, :3].double().T + window.extrinsics[dst, :, 3].double()
    pixels = camera @ window.intrinsics[dst].double().T
    z = pixels[:, 2]
    u = torch.round(pixels[:, 0] / z).long()
    v = torch.round(pixels[:, 1] / z).long()
    height, width = depth.shape[-2:]
    inside = (z > 0) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    u, v, z = u[inside], v[inside], z[inside]
    seen = window.valid[dst][v, u]
    measured = depth[dst][v, u][seen]
    assert seen.sum() > 500, "too little overlap for a meaningful check"
    return float(((z[seen] - measured).abs() / measured < tolerance).double().mean())


@pytest.mark.parametrize("target_width, augment", [(224, None), (518, None), (224, STRONG), (518, STRONG)])
def test_multi_view_consistency_after_preprocessing_and_augmentation(
    sequence: RGBDSequence, target_width: int, augment: Augmentation | None
):
    window = make_window(sequence, target_width, augment, np.random.default_rng(4))
    for src, dst in ((0, 1), (1, 0), (2, 1)):
        assert reprojection_agreement(window, src, dst) > 0.9


def test_consistency_check_detects_wrong_intrinsics(sequence: RGBDSequence):
    window = make_window(sequence, 224, STRONG, np.random.default_rng(4))
    window.intrinsics[1, 0, 2] += 12  # a crop forgotten in the bookkeeping
    assert reprojection_agreement(window, 0, 1) < 0.7


def test_augmentation_crops_and_jitters_deterministically(sequence: RGBDSequence):
    a = make_window(sequence, 224, STRONG, np.random.default_rng(7))
    b = make_window(sequence, 224, STRONG, np.random.default_rng(7))
    plain = make_window(sequence, 224)
    assert fields_equal(a, b)
    assert not torch.equal(a.images, plain.images)
    assert torch.all(a.intrinsics[:, 0, 0] >= plain.intrinsics[:, 0, 0] - 1e-3)  # zooming in lengthens the focal length
    assert torch.any(a.intrinsics[:, 0, 0] > plain.intrinsics[:, 0, 0] * 1.01)


def test_padding_is_invalid_and_white(sequence: RGBDSequence):
    transform = plan_transform((168, 224), "pad", 224)  # letterboxed: rows of padding above and below
    depth, valid = _nearest_onto_grid(sequence.depth[0], sequence.valid[0], transform)
    top, bottom, _, _ = transform.content_box()
    assert top > 0 and not valid[:top].any() and not valid[bottom:].any() and np.all(depth[:top] == 0)
    cropped = (x[:, :150] for x in (sequence.images, sequence.depth, sequence.valid))  # keep the top 150 rows
    short = RGBDSequence("short", *cropped, sequence.intrinsics, sequence.cam_to_world)
    unpadded = make_window(short, 224)
    batch = TrainingWindow.stack([make_window(sequence, 224), unpadded])
    assert unpadded.images.shape[-2] == 154 and batch.images.shape == (2, 4, 3, 168, 224)  # 7 rows above and below
    assert torch.all(batch.images[1, :, :, :7] == 1.0) and torch.all(batch.images[1, :, :, -7:] == 1.0)
    assert not batch.valid[1, :, :7].any() and not batch.valid[1, :, -7:].any()
    torch.testing.assert_close(batch.images[1, :, :, 7:-7], unpadded.images)
    torch.testing.assert_close(batch.intrinsics[1, :, 1, 2], unpadded.intrinsics[:, 1, 2] + 7)
    torch.testing.assert_close(batch.intrinsics[1, :, 0, 2], unpadded.intrinsics[:, 0, 2])


def test_augmentation_needs_a_generator(sequence: RGBDSequence):
    with pytest.raises(ValueError, match="rng"):
        make_window(sequence, 224, Augmentation())
    with pytest.raises(ValueError, match="max_zoom"):
        Augmentation(max_zoom=0.9)


def test_blur_augmentation_softens_images_and_keeps_depth(sequence: RGBDSequence):
    """Blur draws its sigma per frame from its own stream: the same crop and colour, a softer image
    (less energy in its gradients), depth and cameras untouched."""
    no_colour = dict(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, max_zoom=1.0)
    sharp = make_window(sequence, 224, Augmentation(**no_colour), np.random.default_rng(3))
    blurred = make_window(sequence, 224, Augmentation(**no_colour, max_blur=2.0), np.random.default_rng(3))
    gradient = lambda images: images.diff(dim=-1).abs().mean(dim=(1, 2, 3))  # noqa: E731
    assert torch.all(gradient(blurred.images) < gradient(sharp.images))
    for name in ("depth", "valid", "extrinsics", "intrinsics"):
        torch.testing.assert_close(getattr(blurred, name), getattr(sharp, name))
    with pytest.raises(ValueError, match="max_blur"):
        Augmentation(max_blur=-1.0)


def test_window_creation_is_cheap(sequence: RGBDSequence):
    rng = np.random.default_rng(0)
    make_window(sequence, 224, STRONG, rng)
    start = time.perf_counter()
    for _ in range(5):
        make_window(sequence, 224, STRONG, rng)
    assert (time.perf_counter() - start) / 5 < 0.1


# ----------------------------------------------------------------------------------------------
# WindowSampler


def test_sampler_is_deterministic_by_seed_step_and_rank(long_sequence: RGBDSequence):
    def sampler(seed: int) -> WindowSampler:
        source = InMemorySource(long_sequence)
        return WindowSampler([source], window_size=3, stride=(1, 3), target_width=56, augment=Augmentation(), seed=seed)

    a, b = sampler(0), sampler(0)
    a.window(9)  # what was drawn before does not matter
    assert fields_equal(a.window(3, rank=1), b.window(3, rank=1))
    assert fields_equal(a.batch(3, 1, 2), b.batch(3, 1, 2))
    assert not fields_equal(a.window(3, rank=0), a.window(3, rank=1))
    assert not fields_equal(a.window(3), a.window(4))
    assert not fields_equal(a.window(3), sampler(1).window(3))
    batch = a.batch(5, 0, 3)
    assert batch.images.shape == (3, 3, 3, 42, 56) and batch.extrinsics.shape == (3, 3, 3, 4)
    assert not torch.equal(batch.images[0], batch.images[1])


def test_sampler_over_synthetic_windows():
    synthetic = SyntheticWindows(SyntheticConfig(height=42, width=56), range(100, 110))
    sampler = WindowSampler(synthetic=synthetic, window_size=2, target_width=56, seed=3)
    window = sampler.window(0)
    assert window.images.shape == (2, 3, 42, 56) and window.valid.any()
    assert fields_equal(window, WindowSampler(synthetic=synthetic, window_size=2, target_width=56, seed=3).window(0))


def test_sampler_mixes_real_and_synthetic(long_sequence: RGBDSequence):
    synthetic = SyntheticWindows(SyntheticConfig(height=42, width=56), range(100, 103))
    source = InMemorySource(long_sequence)
    sampler = WindowSampler([source], window_size=2, target_width=56, synthetic=synthetic, synthetic_fraction=0.5)
    real = []
    for step in range(12):
        window = sampler.window(step)
        real.append(bool(np.isin(window.depth[window.valid].numpy(), long_sequence.depth).all()))
    assert 0 < sum(real) < len(real)  # both kinds of window occur


def test_sampler_errors(long_sequence: RGBDSequence):
    with pytest.raises(ValueError, match="no sequence sources and no SyntheticWindows"):
        WindowSampler([], window_size=2)
    short = InMemorySource(long_sequence.select([0, 1]))
    with pytest.raises(ValueError, match=r"shorter than the window of 4 frames: synthetic_000005 \(2\)"):
        WindowSampler([short], window_size=4)
    with pytest.warns(UserWarning, match="left out"):
        sampler = WindowSampler([short, InMemorySource(long_sequence)], window_size=4, target_width=56)
    assert len(sampler.sources) == 1
    with pytest.raises(ValueError, match=">= 0"):
        sampler.window(-1)
    with pytest.raises(ValueError, match="stride"):
        WindowSampler([short], window_size=2, stride=(0, 2))
