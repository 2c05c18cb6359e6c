"""The synthetic RGB-D generator: determinism, exact analytic depth, multi-view consistency, edges."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from moe3d_ros.data.synthetic import scene as synthetic_scene
from moe3d_ros.data.sequence import RGBDSequence
from moe3d_ros.data.synthetic import (
    Box,
    Cylinder,
    Room,
    Sphere,
    SyntheticConfig,
    default_intrinsics,
    generate_scene,
    generate_sequence,
)

CONFIG = SyntheticConfig()


@pytest.fixture(scope="module")
def sequence() -> RGBDSequence:
    return generate_sequence(7, 6)


def look_pose(position: np.ndarray, yaw: float, pitch: float) -> np.ndarray:
    """cam_to_world for an optical camera at `position` with the given heading and elevation, no roll."""
    forward = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)])
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, np.cross(forward, right), forward], axis=1)
    pose[:3, 3] = position
    return pose


def pixel_rays(intrinsics: np.ndarray, pixels: list[tuple[int, int]]) -> np.ndarray:
    """[N, 3] camera-frame rays K^-1 [u, v, 1] through integer pixel centres."""
    uv1 = np.array([[u, v, 1.0] for u, v in pixels])
    return uv1 @ np.linalg.inv(intrinsics).T


def edge_mask(depth: np.ndarray, ratio: float = 1.25) -> np.ndarray:
    """Pixels with a 4-neighbour whose depth differs by more than `ratio`."""
    mask = np.zeros(depth.shape, dtype=bool)
    for axis in (-2, -1):
        a = np.moveaxis(depth, axis, 0)
        step = np.maximum(a[1:] / a[:-1], a[:-1] / a[1:]) > ratio
        m = np.moveaxis(mask, axis, 0)
        m[1:] |= step
        m[:-1] |= step
    return mask


def test_same_seed_is_bit_identical_and_seeds_differ() -> None:
    a, b, c = generate_sequence(3, 3), generate_sequence(3, 3), generate_sequence(4, 3)
    for name in ("images", "depth", "valid", "intrinsics", "cam_to_world"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.depth, c.depth)
    assert not np.array_equal(a.images, c.images)


def test_shapes_dtypes_and_validity(sequence: RGBDSequence) -> None:
    s, h, w = 6, CONFIG.height, CONFIG.width
    assert sequence.name == "synthetic_000007"
    assert sequence.images.shape == (s, h, w, 3) and sequence.images.dtype == np.uint8
    assert sequence.depth.shape == (s, h, w) and sequence.depth.dtype == np.float32
    assert sequence.valid.shape == (s, h, w) and sequence.valid.dtype == bool
    assert sequence.intrinsics.shape == (s, 3, 3) and sequence.intrinsics.dtype == np.float64
    assert sequence.cam_to_world.shape == (s, 4, 4) and sequence.cam_to_world.dtype == np.float64
    assert sequence.valid.all()  # a closed room: every ray hits something
    assert np.all(np.isfinite(sequence.depth)) and np.all(sequence.depth[sequence.valid] > 0.1)
    k = default_intrinsics(CONFIG)
    assert k[0, 2] == (w - 1) / 2 and k[1, 2] == (h - 1) / 2
    np.testing.assert_allclose(2 * math.degrees(math.atan(w / 2 / k[0, 0])), CONFIG.fov_x_deg)
    rotations = sequence.cam_to_world[:, :3, :3]
    np.testing.assert_allclose(rotations @ rotations.transpose(0, 2, 1), np.tile(np.eye(3), (s, 1, 1)), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0)
    assert np.all(np.abs(np.arcsin(rotations[:, 2, 0])) <= 0.05 + 1e-9)  # a robot's roll: a few degrees at most
    assert np.all(rotations[:, 2, 1] < 0)  # image y points down in the world (z up)
    floating = generate_sequence(7, 3, SyntheticConfig(world="floating")).cam_to_world[:, :3, :3]
    np.testing.assert_allclose(floating[:, 2, 0], 0.0, atol=1e-12)  # no roll: image x stays horizontal


def test_camera_path_is_smooth_with_parallax_and_clearance() -> None:
    for seed in range(5):
        scene = generate_scene(seed)
        poses = scene.camera_path(8, seed)
        steps = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
        assert np.all(steps > 0.09) and np.all(steps < 0.5)
        positions = poses[:, :3, 3]
        for obj in scene.objects:
            lo, hi = obj.aabb()
            gap = np.maximum(np.maximum(lo - positions, positions - hi), 0.0)
            assert np.all(np.linalg.norm(gap, axis=1) >= CONFIG.camera_clearance - 1e-9)
        assert np.all(positions > 0.3) and np.all(positions < np.asarray(scene.room.size) - 0.3)
        turn = np.einsum("ij,ij->i", poses[1:, :3, 2], poses[:-1, :3, 2])
        assert np.all(turn > math.cos(math.radians(30)))  # neighbouring views overlap


def test_fallback_camera_path_stays_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no random path accepted, the sweep through the reserved object-free disc is used."""
    monkeypatch.setattr(synthetic_scene, "_PATH_ATTEMPTS", 0)
    for seed in range(5):
        scene = generate_scene(seed)
        positions = scene.camera_path(8, seed)[:, :3, 3]
        assert scene._free(positions)
        assert np.all(np.linalg.norm(np.diff(positions, axis=0), axis=1) > 0.09)


def test_room_depth_matches_analytic_planes() -> None:
    base = generate_scene(0)
    scene = dataclasses.replace(base, room=Room((4.0, 5.0, 3.0), base.room.textures), objects=())
    k = default_intrinsics(CONFIG)
    origin = np.array([1.0, 2.0, 1.5])
    pose = look_pose(origin, yaw=math.radians(25), pitch=math.radians(-15))
    _, depth, valid = scene.render(pose, k, CONFIG.height, CONFIG.width)
    pixels = [(0, 0), (223, 0), (0, 167), (223, 167), (112, 84), (37, 150), (200, 20)]
    for (u, v), ray in zip(pixels, pixel_rays(k, pixels)):
        direction = pose[:3, :3] @ ray
        hits = []
        for axis in range(3):
            for plane in (0.0, scene.room.size[axis]):
                if direction[axis] != 0 and (t := (plane - origin[axis]) / direction[axis]) > 0:
                    hits.append(t)
        assert valid[v, u]
        assert depth[v, u] == pytest.approx(min(hits) * ray[2], abs=1e-4)


def test_sphere_box_cylinder_depth_matches_analytic() -> None:
    base = generate_scene(0)
    texture = base.room.textures[0]
    k = default_intrinsics(CONFIG)
    pose = look_pose(np.array([1.0, 1.5, 1.2]), yaw=math.radians(40), pitch=math.radians(-10))
    to_world = lambda p: pose[:3, :3] @ np.asarray(p) + pose[:3, 3]  # noqa: E731
    sphere_cam = np.array([0.4, -0.3, 2.5])
    sphere = Sphere(tuple(to_world(sphere_cam)), 0.5, texture)
    scene = dataclasses.replace(base, room=Room((8.0, 8.0, 3.5), base.room.textures), objects=(sphere,))
    _, depth, _ = scene.render(pose, k, CONFIG.height, CONFIG.width)
    centre = k @ sphere_cam
    cu, cv = centre[0] / centre[2], centre[1] / centre[2]
    pixels = [(round(cu) + du, round(cv) + dv) for du, dv in ((0, 0), (15, 3), (-20, 10), (5, -25))]
    for (u, v), ray in zip(pixels, pixel_rays(k, pixels)):
        b = ray @ sphere_cam
        t = (b - math.sqrt(b * b - ray @ ray * (sphere_cam @ sphere_cam - 0.25))) / (ray @ ray)
        assert depth[v, u] == pytest.approx(t * ray[2], abs=1e-4)

    # An axis-aligned box and a cylinder seen straight on from a level camera facing +x.
    pose = look_pose(np.array([1.0, 4.0, 1.0]), yaw=0.0, pitch=0.0)
    box = Box((4.0, 3.5, 1.0), (0.5, 0.3, 0.4), 0.0, texture)  # front face x = 3.5
    cylinder = Cylinder((4.0, 4.6, 1.0), 0.2, 0.5, texture)  # nearest side point x = 3.8
    scene = dataclasses.replace(scene, objects=(box, cylinder))
    _, depth, _ = scene.render(pose, k, CONFIG.height, CONFIG.width)
    cx, cy, f = k[0, 2], k[1, 2], k[0, 0]
    # Box face x = 3.5 spans world y in (3.2, 3.8), right of the image centre (world -y is camera +x).
    assert depth[round(cy), round(cx + f * 0.5 / 2.5)] == pytest.approx(2.5, abs=1e-4)
    # Cylinder: the ray through the column of its axis hits the near side; solve the circle exactly.
    u, v = round(cx - f * 0.6 / 3.0), round(cy)
    direction = pose[:3, :3] @ pixel_rays(k, [(u, v)])[0]
    rel = pose[:2, 3] - np.array([4.0, 4.6])
    a, half_b, c = direction[:2] @ direction[:2], direction[:2] @ rel, rel @ rel - 0.2**2
    t = (-half_b - math.sqrt(half_b**2 - a * c)) / a
    assert 3.8 - 1.0 < t < 3.8 - 1.0 + 0.2
    assert depth[v, u] == pytest.approx(t, abs=1e-4)


def test_multi_view_depth_is_consistent(sequence: RGBDSequence) -> None:
    h, w = sequence.depth.shape[1:]
    v, u = np.mgrid[0:h, 0:w]
    for i, j in ((0, 1), (2, 4), (5, 3)):
        k0, k1 = sequence.intrinsics[i], sequence.intrinsics[j]
        z = sequence.depth[i].astype(np.float64)
        cam = np.stack([(u - k0[0, 2]) * z / k0[0, 0], (v - k0[1, 2]) * z / k0[1, 1], z], -1).reshape(-1, 3)
        world = cam @ sequence.cam_to_world[i, :3, :3].T + sequence.cam_to_world[i, :3, 3]
        world_to_cam = np.linalg.inv(sequence.cam_to_world[j])
        other = world @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
        proj = other @ k1.T
        pu = np.round(proj[:, 0] / proj[:, 2]).astype(int)
        pv = np.round(proj[:, 1] / proj[:, 2]).astype(int)
        inside = (other[:, 2] > 0) & (pu >= 0) & (pu < w) & (pv >= 0) & (pv < h)
        seen = sequence.depth[j][pv[inside], pu[inside]]
        projected = other[inside, 2]
        visible = projected <= seen * 1.01  # farther than what frame j sees: occluded there
        agree = np.abs(projected - seen) <= 0.01 * seen
        assert inside.mean() > 0.3 and visible.mean() > 0.5
        assert agree[visible].mean() > 0.9


def test_strong_occlusion_boundaries() -> None:
    fractions = [edge_mask(generate_sequence(seed, 4).depth).mean() for seed in range(4)]
    assert np.mean(fractions) > 0.01


def test_thin_objects_render_as_narrow_runs() -> None:
    k = default_intrinsics(CONFIG)
    checked = 0
    for seed in range(3):
        scene = generate_scene(seed)
        thin = [obj for obj in scene.objects if obj.thin]
        assert 1 <= len(thin) <= CONFIG.num_thin[1]
        for obj in thin:
            centre = np.asarray(obj.aabb()).mean(axis=0)
            if isinstance(obj, Cylinder):
                yaw, thin_axis = 0.0, 1  # any horizontal view; the pole is narrow along image rows
            else:
                axis = int(np.argmin(obj.half_size))
                assert obj.half_size[axis] <= CONFIG.thin_width[1] / 2
                # Look along a horizontal in-plane axis of the slab, so its thickness faces the camera.
                yaw, thin_axis = (obj.yaw + math.pi / 2, 1) if axis == 0 else (obj.yaw, 0)
            size = np.asarray(scene.room.size)
            for flip in (0.0, math.pi):
                position = centre - 2.0 * np.array([math.cos(yaw + flip), math.sin(yaw + flip), 0.0])
                if np.all(position[:2] > 0.2) and np.all(position[:2] < size[:2] - 0.2):
                    break
            else:
                continue
            pose = look_pose(position, yaw + flip, 0.0)
            depth = dataclasses.replace(scene, objects=(obj,)).render(pose, k, CONFIG.height, CONFIG.width)[1]
            empty = dataclasses.replace(scene, objects=()).render(pose, k, CONFIG.height, CONFIG.width)[1]
            line = np.s_[round(k[1, 2]), :] if thin_axis == 1 else np.s_[:, round(k[0, 2])]
            near = depth[line] < 0.95 * empty[line]  # the object occludes the room
            runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], near.astype(int), [0]]))))[::2]
            assert len(runs) == 1 and 1 <= runs[0] <= 8, runs
            checked += 1
    assert checked >= 3


@pytest.mark.parametrize("style, varied_blocks", [("hard", 0.8), ("natural", 0.3)])
def test_images_are_textured_and_shaded(style: str, varied_blocks: float) -> None:
    """Local texture, not just a few flat regions: most 8x8 blocks vary in the hard style; in the
    natural one (low-contrast detail by design) a good share still does."""
    images = generate_sequence(3, 4, SyntheticConfig(texture_style=style)).images
    grey = images.astype(np.float64).mean(axis=-1)
    assert np.all(grey.std(axis=(1, 2)) > 10.0)
    blocks = grey[:, : grey.shape[1] // 8 * 8, : grey.shape[2] // 8 * 8]
    blocks = blocks.reshape(grey.shape[0], grey.shape[1] // 8, 8, grey.shape[2] // 8, 8)
    assert (blocks.std(axis=(2, 4)) > 1.0).mean() > varied_blocks


def test_natural_style_gives_every_surface_its_own_albedo_and_is_the_default():
    from moe3d_ros.data.synthetic.textures import MIN_ALBEDO_GAP, TextureSource

    natural = generate_scene(900001, SyntheticConfig(texture_style="natural"))
    walls = natural.room.textures[:4]
    assert all(texture is walls[0] for texture in walls)  # one paint on the four walls
    surfaces = [walls[0], *natural.room.textures[4:], *(obj.texture for obj in natural.objects)]
    albedos = [np.add(t.color_a, t.color_b) / 2 for t in surfaces]
    gaps = [np.abs(a - b).max() for i, a in enumerate(albedos) for b in albedos[i + 1:]]
    assert min(gaps) >= MIN_ALBEDO_GAP - 0.05  # (the best of 200 draws in a crowded room)
    assert all(t.kind == "noise" and np.abs(np.subtract(t.color_b, t.color_a)).max() <= 0.16 for t in surfaces)  # low contrast
    assert SyntheticConfig().texture_style == "natural"
    with pytest.raises(ValueError, match="texture style 'op-art'"):
        TextureSource(np.random.default_rng(0), "op-art")


def _resting_on(obj, others) -> bool:
    """Whether `obj`'s base lies on the floor or on the top face of another object below it."""
    lo, _ = obj.aabb()
    if abs(lo[2]) < 1e-9:
        return True
    for other in others:
        other_lo, other_hi = other.aabb()
        centre = np.asarray(obj.center[:2])
        if other is not obj and abs(other_hi[2] - lo[2]) < 1e-9 and np.all(centre > other_lo[:2]) and np.all(centre < other_hi[:2]):
            return True
    return False


def _on_a_wall(obj, room_size) -> bool:
    lo, hi = obj.aabb()
    return bool(np.any(np.abs(lo[:2]) < 1e-6) or np.any(np.abs(hi[:2] - np.asarray(room_size[:2])) < 1e-6))


def test_in_the_plausible_world_nothing_floats_and_shelves_hang_on_walls() -> None:
    stacked = shelves = 0
    for seed in range(40):
        scene = generate_scene(seed)
        for obj in scene.objects:
            rests = _resting_on(obj, scene.objects)
            hangs = obj.thin and isinstance(obj, Box) and _on_a_wall(obj, scene.room.size)
            assert rests or hangs, (seed, obj)
            stacked += rests and obj.aabb()[0][2] > 1e-9
            shelves += hangs and not rests
    assert stacked >= 5 and shelves >= 5  # both happen, not just in principle


def test_the_floating_world_still_floats() -> None:
    scenes = [generate_scene(seed, SyntheticConfig(world="floating")) for seed in range(40)]
    floating = sum(not _resting_on(obj, scene.objects) for scene in scenes for obj in scene.objects if not obj.thin)
    assert floating >= 10


def test_plausible_cameras_ride_at_robot_heights_with_limited_pitch_and_roll() -> None:
    heights, pitches, rolls = [], [], []
    for seed in range(40):
        poses = generate_scene(seed).camera_path(4, seed)
        rotations = poses[:, :3, :3]
        heights.append(poses[:, 2, 3])
        pitches.append(np.arcsin(rotations[:, 2, 2]))  # the optical axis' elevation
        rolls.append(np.arcsin(rotations[:, 2, 0]))  # image x against the horizontal
        assert np.ptp(poses[:, 2, 3]) <= 0.04 + 1e-9  # a robot does not bob
    heights, pitches, rolls = (np.concatenate(v) for v in (heights, pitches, rolls))
    assert heights.min() >= 0.3 - 0.02 - 1e-9 and heights.max() <= 1.8 + 0.02 + 1e-9
    assert np.mean(heights < 0.9) > 0.2  # ground robots too
    assert pitches.min() >= -0.35 - 1e-9 and pitches.max() <= 0.15 + 1e-9
    assert np.abs(rolls).max() <= 0.05 + 1e-9 and np.abs(rolls).max() > 0.005


def test_unknown_world_is_refused() -> None:
    with pytest.raises(ValueError, match="world 'moon'"):
        SyntheticConfig(world="moon")
