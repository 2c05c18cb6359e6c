"""A scene: the room, its objects, the light and a collision-free camera path; renders RGB-D frames."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .config import SyntheticConfig
from .primitives import Primitive, Room, box_corners

ZONE_RADIUS = 0.8  # metres; a disc kept free of objects so a camera path always exists
_PATH_SUBSTEPS = 8  # collision checks per frame interval along a camera path
_PATH_ATTEMPTS = 200  # random smooth paths tried before the guaranteed fallback
_PATH_STREAM = 0x9A7  # decorrelates camera-path randomness from scene randomness for one seed
_MIN_TARGET_DISTANCE = 1.5  # metres between a camera and the point it looks at
_PITCH_LIMITS = (-0.6, 0.35)  # radians; keeps the view direction well away from vertical
# Plausible world: a robot's camera, pitched within a head's range and rolled a few degrees at
# most; its height bobs by at most _ROBOT_BOB (floating world: 0.15 m).
_ROBOT_PITCH_LIMITS = (-0.35, 0.15)
_ROBOT_MAX_ROLL = 0.05
_ROBOT_BOB = 0.02


def _smooth_wave(
    rng: np.random.Generator, s: np.ndarray, max_amplitude: float, wavelength: tuple[float, float]
) -> np.ndarray:
    """A random-amplitude, random-phase sinusoid of arc length `s`: the building block of smooth paths."""
    amplitude = rng.uniform(0.0, max_amplitude)
    return amplitude * np.sin(2 * math.pi * s / rng.uniform(*wavelength) + rng.uniform(0.0, 2 * math.pi))


def _look_rotation(forward: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """Camera-to-world rotation looking along `forward`, rolled by `roll` radians about it (0:
    image y points world-down)."""
    z = forward / np.linalg.norm(forward)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    x, y = math.cos(roll) * x + math.sin(roll) * y, math.cos(roll) * y - math.sin(roll) * x
    return np.stack([x, y, z], axis=1)


@dataclass(frozen=True, eq=False)
class Scene:
    """A room, the objects in it, a fixed light and the noise tile textures sample from."""

    room: Room
    objects: tuple[Primitive, ...]
    noise: np.ndarray = field(repr=False)  # [NOISE_SIZE, NOISE_SIZE] float32, periodic
    light_dir: tuple[float, float, float] = (0.3, 0.2, 0.93)  # unit vector towards the light
    ambient: float = 0.35
    camera_zone: tuple[float, float] = (0.0, 0.0)  # centre of the object-free disc (x, y)
    config: SyntheticConfig = SyntheticConfig()

    # -- rendering ---------------------------------------------------------------------------

    def render(
        self, cam_to_world: np.ndarray, intrinsics: np.ndarray, height: int, width: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image [H, W, 3] uint8, z-depth [H, W] float32, valid [H, W] bool) for one camera.

        Rays are scaled to unit camera-z, so the ray parameter of a hit is its z-depth. Each
        object is only intersected within its projected screen rectangle, then hits are shaded
        once per pixel (deferred), so cost scales with pixels covered, not pixels times objects.
        """
        rotation = cam_to_world[:3, :3]
        origin = cam_to_world[:3, 3].astype(np.float64)
        k_inv = np.linalg.inv(intrinsics)
        u = np.arange(width, dtype=np.float64)[None, :]
        v = np.arange(height, dtype=np.float64)[:, None]
        cam_x, cam_y, cam_z = (k_inv[i, 0] * u + k_inv[i, 1] * v + k_inv[i, 2] for i in range(3))
        cam_x, cam_y = cam_x / cam_z, cam_y / cam_z
        dx, dy, dz = (rotation[i, 0] * cam_x + rotation[i, 1] * cam_y + rotation[i, 2] for i in range(3))

        depth = self.room.intersect(origin, dx, dy, dz)
        owner = np.zeros((height, width), dtype=np.int16)  # 0 = room, i + 1 = objects[i]
        for index, obj in enumerate(self.objects):
            window = self._screen_window(obj, cam_to_world, intrinsics, height, width)
            if window is None:
                continue
            t = obj.intersect(origin, dx[window], dy[window], dz[window])
            closer = t < depth[window]
            np.copyto(depth[window], t, where=closer)
            owner[window][closer] = index + 1

        valid = np.isfinite(depth) & (depth > 0)
        image = np.zeros((height, width, 3), dtype=np.float32)
        light = np.asarray(self.light_dir)
        for index, surface in enumerate((self.room, *self.objects)):
            sel = (owner == index) & valid
            if not sel.any():
                continue
            t = depth[sel]
            points = (origin[i] + t * d[sel] for i, d in enumerate((dx, dy, dz)))
            normal, albedo = surface.shade(*points, self.noise)
            lambert = self.ambient + (1.0 - self.ambient) * np.clip(normal @ light, 0.0, 1.0)
            image[sel] = albedo * lambert[:, None]
        rgb = np.clip(image * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)
        return rgb, np.where(valid, depth, 0.0).astype(np.float32), valid

    @staticmethod
    def _screen_window(
        obj: Primitive, cam_to_world: np.ndarray, intrinsics: np.ndarray, height: int, width: int
    ) -> tuple[slice, slice] | None:
        """Pixel rectangle that can see `obj` (None if it is entirely behind the camera or off screen).

        Projects the bounding box's corners; if the box straddles the camera plane the
        projection is unbounded, so the whole image is used.
        """
        cam = (obj.corners() - cam_to_world[:3, 3]) @ cam_to_world[:3, :3]
        if np.all(cam[:, 2] <= 0):
            return None
        if np.any(cam[:, 2] <= 1e-3):
            return slice(0, height), slice(0, width)
        proj = cam @ intrinsics.T
        u = proj[:, 0] / proj[:, 2]
        v = proj[:, 1] / proj[:, 2]
        u0, u1 = max(0, math.floor(u.min())), min(width, math.ceil(u.max()) + 1)
        v0, v1 = max(0, math.floor(v.min())), min(height, math.ceil(v.max()) + 1)
        if u0 >= u1 or v0 >= v1:
            return None
        return slice(v0, v1), slice(u0, u1)

    # -- camera paths ------------------------------------------------------------------------

    def camera_path(self, num_frames: int, seed: int) -> np.ndarray:
        """[num_frames, 4, 4] cam_to_world poses along a smooth, collision-free path.

        Positions follow a curve of smoothly varying heading, sampled every `frame_spacing`
        metres of arc length; the camera looks towards a point at least 1.5 m away (an object or
        the room centre) with a slow yaw / pitch wobble. Floating world: no roll, pitch within
        _PITCH_LIMITS. Plausible world: a robot's camera (its height almost constant, a smaller
        wobble, pitch within _ROBOT_PITCH_LIMITS, roll up to _ROBOT_MAX_ROLL).
        """
        rng = np.random.default_rng([seed, _PATH_STREAM])
        spacing = float(rng.uniform(*self.config.frame_spacing))
        for _ in range(_PATH_ATTEMPTS):
            positions = self._wander(rng, num_frames, spacing)
            if positions is not None:
                break
        else:
            positions = self._zone_path(rng, num_frames, spacing)
        target = self._look_target(rng, positions)

        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(positions, axis=0), axis=1))])
        delta = target - positions
        towards = np.arctan2(delta[:, 1], delta[:, 0])
        pitch = np.arctan2(delta[:, 2], np.hypot(delta[:, 0], delta[:, 1]))
        roll = np.zeros(num_frames)
        if self.config.world == "plausible":
            yaw = towards + _smooth_wave(rng, arc, 0.15, (2.0, 6.0))
            pitch = np.clip(pitch + _smooth_wave(rng, arc, 0.1, (2.0, 6.0)), *_ROBOT_PITCH_LIMITS)
            roll = _smooth_wave(rng, arc, _ROBOT_MAX_ROLL, (2.0, 6.0))
        else:
            yaw = towards + _smooth_wave(rng, arc, 0.25, (2.0, 6.0))
            pitch = np.clip(pitch + _smooth_wave(rng, arc, 0.25, (2.0, 6.0)), *_PITCH_LIMITS)
        forward = np.stack([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)], axis=1)

        poses = np.tile(np.eye(4), (num_frames, 1, 1))
        for pose, position, direction, angle in zip(poses, positions, forward, roll):
            pose[:3, :3] = _look_rotation(direction, angle)
            pose[:3, 3] = position
        return poses

    def _free(self, points: np.ndarray) -> bool:
        """Whether all [N, 3] points keep the wall margin and the clearance from every object box."""
        margin = self.config.wall_margin
        size = np.asarray(self.room.size)
        if np.any(points < margin) or np.any(points > size - margin):
            return False
        if not self.objects:
            return True
        boxes = [obj.aabb() for obj in self.objects]
        lo = np.stack([b[0] for b in boxes]) - self.config.camera_clearance
        hi = np.stack([b[1] for b in boxes]) + self.config.camera_clearance
        inside = np.all((points[:, None] > lo) & (points[:, None] < hi), axis=2)
        return not inside.any()

    def _camera_z_range(self) -> tuple[float, float]:
        """Camera heights allowed by the config and the wall margin of this room."""
        lo, hi = self.config.camera_heights
        top = self.room.size[2] - self.config.wall_margin
        return min(lo, top), min(hi, top)

    def _wander(self, rng: np.random.Generator, num_frames: int, spacing: float) -> np.ndarray | None:
        """Frame positions on a random smooth curve, or None if it leaves free space."""
        steps = _PATH_SUBSTEPS * (num_frames - 1)
        step = spacing / _PATH_SUBSTEPS
        s = np.arange(steps + 1) * step
        heading = rng.uniform(0.0, 2 * math.pi) + _smooth_wave(rng, s, 1.0, (1.5, 6.0))
        heading += _smooth_wave(rng, s, 1.0, (1.5, 6.0))
        margin = self.config.wall_margin
        start = rng.uniform(margin, np.asarray(self.room.size[:2]) - margin)
        bob = _ROBOT_BOB if self.config.world == "plausible" else 0.15
        z = rng.uniform(*self._camera_z_range()) + _smooth_wave(rng, s, bob, (2.0, 6.0))
        moves = np.stack([np.cos(heading[:-1]), np.sin(heading[:-1])], axis=1) * step
        xy = start + np.concatenate([np.zeros((1, 2)), np.cumsum(moves, axis=0)])
        points = np.concatenate([xy, z[:, None]], axis=1)
        return points[::_PATH_SUBSTEPS] if self._free(points) else None

    def _zone_path(self, rng: np.random.Generator, num_frames: int, spacing: float) -> np.ndarray:
        """Fallback: a straight sweep through the object-free disc, shortened to fit inside it."""
        if num_frames > 1:
            spacing = min(spacing, 2 * (ZONE_RADIUS - self.config.camera_clearance) / (num_frames - 1))
        heading = rng.uniform(0.0, 2 * math.pi)
        offsets = (np.arange(num_frames) - (num_frames - 1) / 2) * spacing
        xy = np.asarray(self.camera_zone) + offsets[:, None] * [math.cos(heading), math.sin(heading)]
        z = np.full((num_frames, 1), float(np.mean(self._camera_z_range())))
        return np.concatenate([xy, z], axis=1)

    def _look_target(self, rng: np.random.Generator, positions: np.ndarray) -> np.ndarray:
        """A solid object's centre or the room centre at least 1.5 m from every camera; else the far corner."""
        size = np.asarray(self.room.size)
        candidates = [np.asarray(obj.aabb()).mean(axis=0) for obj in self.objects if not obj.thin]
        candidates.append(size * [0.5, 0.5, 0.4])
        for index in rng.permutation(len(candidates)):
            if np.linalg.norm(candidates[index] - positions, axis=1).min() >= _MIN_TARGET_DISTANCE:
                return candidates[index]
        inset = self.config.wall_margin
        height = 0.4 * size[2]
        corners = box_corners(np.array([inset, inset, height]), np.array([*(size[:2] - inset), height]))
        return corners[np.argmax(np.linalg.norm(corners - positions.mean(axis=0), axis=1))]
