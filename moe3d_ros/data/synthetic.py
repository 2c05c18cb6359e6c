"""Procedural multi-view RGB-D scenes for training and evaluating boundary-sharp depth.

A scene is a closed, textured room holding boxes, spheres, vertical cylinders and thin poles /
slabs. Frames are ray cast analytically at one sample per pixel, so depth is exact up to float
rounding and steps cleanly at every occlusion boundary (nothing is blended across an edge).

World frame: z up; the room is the box [0, sx] x [0, sy] x [0, sz]. Cameras follow the OpenCV /
ROS optical convention (x right, y down, z forward), `cam_to_world` maps camera coordinates to
world coordinates and pixel (u, v) is the ray K^-1 [u, v, 1] through the pixel centre.
Textures live in world or object coordinates, so every view of a surface sees the same pattern.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .sequence import RGBDSequence

__all__ = ["SyntheticConfig", "Scene", "generate_scene", "generate_sequence", "default_intrinsics"]

_HIT_EPS = 1e-6  # smallest accepted ray parameter; cameras never sit on a surface
_NOISE_SIZE = 128  # texels per side of the scene's periodic noise tile (a power of two)
_ZONE_RADIUS = 0.8  # metres; a disc kept free of objects so a camera path always exists
_PATH_SUBSTEPS = 8  # collision checks per frame interval along a camera path
_PATH_ATTEMPTS = 200  # random smooth paths tried before the guaranteed fallback
_PATH_STREAM = 0x9A7  # decorrelates camera-path randomness from scene randomness for one seed
_MIN_TARGET_DISTANCE = 1.5  # metres between a camera and the point it looks at
_PITCH_LIMITS = (-0.6, 0.35)  # radians; keeps the view direction well away from vertical
TEXTURE_KINDS = ("checker", "stripes", "noise", "gradient")
Shading = tuple[np.ndarray, np.ndarray]  # (unit normals [N, 3], albedo [N, 3])


@dataclass(frozen=True)
class SyntheticConfig:
    """Image size, field of view and the ranges that scenes and camera paths are drawn from.

    Lengths are metres; `(lo, hi)` pairs are uniform ranges, inclusive for integer counts.
    """

    height: int = 168
    width: int = 224
    fov_x_deg: float = 70.0
    room_size: tuple[float, float] = (3.5, 8.0)  # each horizontal side
    room_height: tuple[float, float] = (2.4, 3.5)
    num_objects: tuple[int, int] = (4, 9)  # boxes, spheres and cylinders
    num_thin: tuple[int, int] = (1, 3)  # poles and slabs
    thin_width: tuple[float, float] = (0.015, 0.05)  # about 1-4 px at 2-3 m with the default camera
    frame_spacing: tuple[float, float] = (0.1, 0.4)  # distance between consecutive frames
    camera_height: tuple[float, float] = (0.9, 1.8)
    camera_clearance: float = 0.3  # from every object's bounding box
    wall_margin: float = 0.5  # from every wall, floor and ceiling


def default_intrinsics(config: SyntheticConfig = SyntheticConfig()) -> np.ndarray:
    """Square-pixel pinhole K for `config`; the principal point is the image centre, ((W-1)/2, (H-1)/2)."""
    focal = (config.width / 2.0) / math.tan(math.radians(config.fov_x_deg) / 2.0)
    return np.array(
        [[focal, 0.0, (config.width - 1) / 2.0], [0.0, focal, (config.height - 1) / 2.0], [0.0, 0.0, 1.0]]
    )


# ----------------------------------------------------------------------------------------------
# Textures


def _periodic_noise(rng: np.random.Generator, size: int = _NOISE_SIZE) -> np.ndarray:
    """A seamless [size, size] float32 tile of 1/f noise in [0, 1]; periodic so lookups can wrap."""
    freq = np.fft.fftfreq(size)
    radius = np.hypot(freq[:, None], freq[None, :])
    spectrum = np.fft.fft2(rng.standard_normal((size, size))) / (radius + 2.0 / size) ** 1.2
    tile = np.fft.ifft2(spectrum).real
    return ((tile - tile.min()) / (tile.max() - tile.min())).astype(np.float32)


def _sample_tile(tile: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear, wrapping lookup of `tile` at (x, y) measured in tile widths."""
    size = tile.shape[0]
    x = x * size
    y = y * size
    x0 = np.floor(x)
    y0 = np.floor(y)
    fx = x - x0
    fy = y - y0
    i0 = x0.astype(np.int64) & (size - 1)
    j0 = y0.astype(np.int64) & (size - 1)
    i1 = (i0 + 1) & (size - 1)
    j1 = (j0 + 1) & (size - 1)
    flat = tile.ravel()
    top = flat[j0 * size + i0] * (1 - fx) + flat[j0 * size + i1] * fx
    bottom = flat[j1 * size + i0] * (1 - fx) + flat[j1 * size + i1] * fx
    return top * (1 - fy) + bottom * fy


@dataclass(frozen=True)
class Texture:
    """A two-colour procedural pattern over 2-D surface coordinates in metres, plus fine grain.

    The grain (a multiplicative noise at roughly centimetre texels) gives every surface, even a
    smooth gradient, some local texture for multi-view matching.
    """

    kind: str  # one of TEXTURE_KINDS
    color_a: tuple[float, float, float]
    color_b: tuple[float, float, float]
    scale: float  # checker cell, stripe period, noise tile or gradient period, metres
    angle: float  # rotation of the pattern in the surface plane, radians
    offset: tuple[float, float]  # pattern phase, in units of `scale`
    grain: float  # grain amplitude, 0 (none) .. 1
    grain_scale: float  # size of one noise tile used for grain, metres

    def evaluate(self, a: np.ndarray, b: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """[N, 3] RGB albedo in [0, 1] at surface coordinates (a, b)."""
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        along, across = a * cos + b * sin, b * cos - a * sin  # metres, rotated by `angle`
        s = along / self.scale + self.offset[0]
        t = across / self.scale + self.offset[1]
        if self.kind == "checker":
            mix = (np.floor(s) + np.floor(t)) % 2.0
        elif self.kind == "stripes":
            mix = np.floor(s) % 2.0
        elif self.kind == "noise":
            mix = np.clip((_sample_tile(noise, s, t) - 0.5) * 2.5 + 0.5, 0.0, 1.0)
        elif self.kind == "gradient":
            mix = 0.5 + 0.5 * np.sin(2.0 * math.pi * s)
        else:
            raise ValueError(f"unknown texture kind {self.kind!r}")
        grain = _sample_tile(noise, across / self.grain_scale, along / self.grain_scale)  # axes swapped vs "noise"
        shade = 1.0 + self.grain * (grain - 0.5)
        color_a = np.asarray(self.color_a)
        color_b = np.asarray(self.color_b)
        return (color_a + mix[:, None] * (color_b - color_a)) * shade[:, None]


def _random_texture(rng: np.random.Generator) -> Texture:
    """A texture with a random kind, two clearly different colours and a kind-appropriate scale."""
    kind = TEXTURE_KINDS[rng.integers(len(TEXTURE_KINDS))]
    color_a = rng.uniform(0.1, 0.9, 3)
    color_b = (color_a + rng.uniform(0.3, 0.7, 3)) % 1.0  # every channel differs by 0.3 .. 0.7
    # Lower bounds keep far floor patterns from aliasing badly at one sample per pixel.
    scale_range = {"checker": (0.15, 0.6), "stripes": (0.08, 0.4), "noise": (0.8, 3.0), "gradient": (1.0, 4.0)}
    return Texture(
        kind=kind,
        color_a=tuple(float(c) for c in color_a),
        color_b=tuple(float(c) for c in color_b),
        scale=float(rng.uniform(*scale_range[kind])),
        angle=float(rng.uniform(0.0, math.pi)),
        offset=(float(rng.uniform()), float(rng.uniform())),
        grain=float(rng.uniform(0.15, 0.4)),
        grain_scale=float(rng.uniform(1.5, 3.0)),
    )


def _plane_coords(q: tuple[np.ndarray, ...], axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Texture coordinates: the two components of q orthogonal to each point's normal axis."""
    a = np.where(axis == 0, q[1], q[0])
    b = np.where(axis == 2, q[1], q[2])
    return a, b


# ----------------------------------------------------------------------------------------------
# Primitives


class Primitive(Protocol):
    """What the renderer needs from an object inside the room."""

    texture: Texture
    thin: bool

    def corners(self) -> np.ndarray:
        """[8, 3] world corners of a box enclosing the primitive, for screen-space culling."""

    def aabb(self) -> tuple[np.ndarray, np.ndarray]:
        """World axis-aligned bounding box (lo, hi)."""

    def intersect(self, origin: np.ndarray, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray) -> np.ndarray:
        """Ray parameter of the nearest hit in front of `origin` along (dx, dy, dz); inf on a miss."""

    def shade(self, px: np.ndarray, py: np.ndarray, pz: np.ndarray, noise: np.ndarray) -> Shading:
        """Normals and albedo at surface points of this primitive."""


def _box_corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """[8, 3] corners of the axis-aligned box [lo, hi]."""
    bits = np.array([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], dtype=float)
    return lo + bits * (hi - lo)


@dataclass(frozen=True)
class Room:
    """The closed room [0, size]; seen only from inside, so a ray hits it where it exits the box.

    Faces are numbered 2 * axis + side (side 1 = the high wall): -x, +x, -y, +y, floor, ceiling.
    """

    size: tuple[float, float, float]
    textures: tuple[Texture, ...]  # one per face

    def intersect(self, origin: np.ndarray, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray) -> np.ndarray:
        """Exit distance: per axis the larger slab parameter, the nearest over the three axes.

        The max over both planes also gives +inf for a zero direction component, so no branch.
        """
        t = None
        with np.errstate(divide="ignore", invalid="ignore"):
            for axis, d in enumerate((dx, dy, dz)):
                inv = 1.0 / d
                exit_t = np.maximum(-origin[axis] * inv, (self.size[axis] - origin[axis]) * inv)
                t = exit_t if t is None else np.minimum(t, exit_t)
        return t

    def face_of(self, px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> np.ndarray:
        """The face index of each surface point: the nearest of the six planes."""
        best = np.full(px.shape, np.inf)
        face = np.zeros(px.shape, dtype=np.int64)
        for axis, p in enumerate((px, py, pz)):
            for side, dist in enumerate((np.abs(p), np.abs(self.size[axis] - p))):
                closer = dist < best
                best = np.where(closer, dist, best)
                face[closer] = 2 * axis + side
        return face

    def shade(self, px: np.ndarray, py: np.ndarray, pz: np.ndarray, noise: np.ndarray) -> Shading:
        """Inward normals and the textured albedo of each point's face."""
        face = self.face_of(px, py, pz)
        normal = np.zeros((px.size, 3))
        albedo = np.zeros((px.size, 3))
        for index, texture in enumerate(self.textures):
            sel = face == index
            if not sel.any():
                continue
            axis = index // 2
            normal[sel, axis] = -1.0 if index % 2 else 1.0
            points = (px[sel], py[sel], pz[sel])
            a, b = _plane_coords(points, np.full(points[0].shape, axis))
            albedo[sel] = texture.evaluate(a, b, noise)
        return normal, albedo


@dataclass(frozen=True)
class Box:
    """A box rotated by `yaw` about the vertical axis through its centre."""

    center: tuple[float, float, float]
    half_size: tuple[float, float, float]  # along the box's own x, y, z
    yaw: float
    texture: Texture
    thin: bool = False

    def _to_local(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rotate horizontal world vectors into the box frame."""
        cos, sin = math.cos(self.yaw), math.sin(self.yaw)
        return cos * x + sin * y, cos * y - sin * x

    def corners(self) -> np.ndarray:
        half = np.asarray(self.half_size)
        local = _box_corners(-half, half)
        cos, sin = math.cos(self.yaw), math.sin(self.yaw)
        rot = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
        return local @ rot.T + np.asarray(self.center)

    def aabb(self) -> tuple[np.ndarray, np.ndarray]:
        corners = self.corners()
        return corners.min(axis=0), corners.max(axis=0)

    def intersect(self, origin: np.ndarray, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray) -> np.ndarray:
        """Slab method in the box frame: enter after the last entry, before the first exit."""
        rel = origin - np.asarray(self.center)
        ox, oy = self._to_local(rel[0], rel[1])
        ldx, ldy = self._to_local(dx, dy)
        near = far = None
        with np.errstate(divide="ignore", invalid="ignore"):
            for o, d, h in zip((ox, oy, rel[2]), (ldx, ldy, dz), self.half_size):
                inv = 1.0 / d
                t0 = (-h - o) * inv
                t1 = (h - o) * inv
                lo = np.minimum(t0, t1)
                hi = np.maximum(t0, t1)
                near = lo if near is None else np.maximum(near, lo)
                far = hi if far is None else np.minimum(far, hi)
        return np.where((near <= far) & (near > _HIT_EPS), near, np.inf)

    def shade(self, px: np.ndarray, py: np.ndarray, pz: np.ndarray, noise: np.ndarray) -> Shading:
        """The face is the axis on which a point lies relatively farthest out; textures use box coordinates."""
        qx, qy = self._to_local(px - self.center[0], py - self.center[1])
        q = (qx, qy, pz - self.center[2])
        ratios = np.stack([np.abs(c) / h for c, h in zip(q, self.half_size)])
        axis = np.argmax(ratios, axis=0)
        sign = np.sign(np.choose(axis, q))
        local = np.zeros((px.size, 3))
        local[np.arange(px.size), axis] = sign
        cos, sin = math.cos(self.yaw), math.sin(self.yaw)
        rot = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
        normal = local @ rot.T
        a, b = _plane_coords(q, axis)
        return normal, self.texture.evaluate(a, b, noise)


@dataclass(frozen=True)
class Sphere:
    """A sphere; textured in coordinates relative to its centre."""

    center: tuple[float, float, float]
    radius: float
    texture: Texture
    thin: bool = False

    def corners(self) -> np.ndarray:
        c = np.asarray(self.center)
        return _box_corners(c - self.radius, c + self.radius)

    def aabb(self) -> tuple[np.ndarray, np.ndarray]:
        c = np.asarray(self.center)
        return c - self.radius, c + self.radius

    def intersect(self, origin: np.ndarray, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray) -> np.ndarray:
        """Nearer root of |o + t d - c|^2 = r^2 (the camera is outside, so it is the visible one)."""
        rel = origin - np.asarray(self.center)
        a = dx * dx + dy * dy + dz * dz
        half_b = dx * rel[0] + dy * rel[1] + dz * rel[2]
        c = float(rel @ rel) - self.radius**2
        disc = half_b * half_b - a * c
        with np.errstate(invalid="ignore"):
            t = (-half_b - np.sqrt(disc)) / a
        return np.where((disc >= 0) & (t > _HIT_EPS), t, np.inf)

    def shade(self, px: np.ndarray, py: np.ndarray, pz: np.ndarray, noise: np.ndarray) -> Shading:
        q = (px - self.center[0], py - self.center[1], pz - self.center[2])
        normal = np.stack(q, axis=1) / self.radius
        axis = np.argmax(np.abs(normal), axis=1)
        a, b = _plane_coords(q, axis)
        return normal, self.texture.evaluate(a, b, noise)


@dataclass(frozen=True)
class Cylinder:
    """A vertical, capped cylinder; `center` is the midpoint of its axis."""

    center: tuple[float, float, float]
    radius: float
    half_height: float
    texture: Texture
    thin: bool = False

    def aabb(self) -> tuple[np.ndarray, np.ndarray]:
        half = np.array([self.radius, self.radius, self.half_height])
        return np.asarray(self.center) - half, np.asarray(self.center) + half

    def corners(self) -> np.ndarray:
        return _box_corners(*self.aabb())

    def intersect(self, origin: np.ndarray, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray) -> np.ndarray:
        """The side (a 2-D circle quadratic, limited in z) or, seen from above or below, one cap."""
        rel = origin - np.asarray(self.center)
        a = dx * dx + dy * dy
        half_b = dx * rel[0] + dy * rel[1]
        c = rel[0] ** 2 + rel[1] ** 2 - self.radius**2
        disc = half_b * half_b - a * c
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (-half_b - np.sqrt(disc)) / a
            side = (disc >= 0) & (t > _HIT_EPS) & (np.abs(rel[2] + t * dz) <= self.half_height)
            t = np.where(side, t, np.inf)
            if abs(rel[2]) > self.half_height:  # outside the slab: the facing cap may be hit first
                cap_z = math.copysign(self.half_height, rel[2])
                t_cap = (cap_z - rel[2]) / dz
                inside = (rel[0] + t_cap * dx) ** 2 + (rel[1] + t_cap * dy) ** 2 <= self.radius**2
                t = np.where(inside & (t_cap > _HIT_EPS) & (t_cap < t), t_cap, t)
        return t

    def shade(self, px: np.ndarray, py: np.ndarray, pz: np.ndarray, noise: np.ndarray) -> Shading:
        """Side texture is unrolled (arc length, height); caps use (x, y)."""
        qx, qy, qz = px - self.center[0], py - self.center[1], pz - self.center[2]
        radial = np.hypot(qx, qy)
        cap = np.abs(qz) / self.half_height > radial / self.radius
        with np.errstate(invalid="ignore", divide="ignore"):
            normal = np.stack([qx / radial, qy / radial, np.zeros_like(qx)], axis=1)
        normal[cap] = 0.0
        normal[cap, 2] = np.sign(qz[cap])
        a = np.where(cap, qx, self.radius * np.arctan2(qy, qx))
        b = np.where(cap, qy, qz)
        return normal, self.texture.evaluate(a, b, noise)


# ----------------------------------------------------------------------------------------------
# Scene


def _smooth_wave(
    rng: np.random.Generator, s: np.ndarray, max_amplitude: float, wavelength: tuple[float, float]
) -> np.ndarray:
    """A random-amplitude, random-phase sinusoid of arc length `s`: the building block of smooth paths."""
    amplitude = rng.uniform(0.0, max_amplitude)
    return amplitude * np.sin(2 * math.pi * s / rng.uniform(*wavelength) + rng.uniform(0.0, 2 * math.pi))


def _look_rotation(forward: np.ndarray) -> np.ndarray:
    """Camera-to-world rotation looking along `forward` with zero roll (image y points world-down)."""
    z = forward / np.linalg.norm(forward)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


@dataclass(frozen=True, eq=False)
class Scene:
    """A room, the objects in it, a fixed light and the noise tile textures sample from."""

    room: Room
    objects: tuple[Primitive, ...]
    noise: np.ndarray = field(repr=False)  # [_NOISE_SIZE, _NOISE_SIZE] float32, periodic
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
        the room centre) with a slow yaw / pitch wobble and no roll.
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
        yaw = np.arctan2(delta[:, 1], delta[:, 0]) + _smooth_wave(rng, arc, 0.25, (2.0, 6.0))
        pitch = np.arctan2(delta[:, 2], np.hypot(delta[:, 0], delta[:, 1])) + _smooth_wave(rng, arc, 0.25, (2.0, 6.0))
        pitch = np.clip(pitch, *_PITCH_LIMITS)
        forward = np.stack([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)], axis=1)

        poses = np.tile(np.eye(4), (num_frames, 1, 1))
        for pose, position, direction in zip(poses, positions, forward):
            pose[:3, :3] = _look_rotation(direction)
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
        lo, hi = self.config.camera_height
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
        z = rng.uniform(*self._camera_z_range()) + _smooth_wave(rng, s, 0.15, (2.0, 6.0))
        moves = np.stack([np.cos(heading[:-1]), np.sin(heading[:-1])], axis=1) * step
        xy = start + np.concatenate([np.zeros((1, 2)), np.cumsum(moves, axis=0)])
        points = np.concatenate([xy, z[:, None]], axis=1)
        return points[::_PATH_SUBSTEPS] if self._free(points) else None

    def _zone_path(self, rng: np.random.Generator, num_frames: int, spacing: float) -> np.ndarray:
        """Fallback: a straight sweep through the object-free disc, shortened to fit inside it."""
        if num_frames > 1:
            spacing = min(spacing, 2 * (_ZONE_RADIUS - self.config.camera_clearance) / (num_frames - 1))
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
        corners = _box_corners(np.array([inset, inset, height]), np.array([*(size[:2] - inset), height]))
        return corners[np.argmax(np.linalg.norm(corners - positions.mean(axis=0), axis=1))]


# ----------------------------------------------------------------------------------------------
# Scene generation


def _random_light(rng: np.random.Generator) -> tuple[float, float, float]:
    """A light from above, tilted up to about 40 degrees, so walls differ in brightness."""
    direction = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), 1.0])
    return tuple(float(c) for c in direction / np.linalg.norm(direction))


def _solid_object(rng: np.random.Generator, size: np.ndarray) -> Primitive:
    """A random box, sphere or cylinder, resting on the floor or (less often) floating."""
    texture = _random_texture(rng)
    kind = rng.integers(3)
    floating = rng.uniform() < 0.25
    xy = rng.uniform(0.0, size[:2])
    if kind == 0:
        half = rng.uniform([0.15, 0.15, 0.1], [0.6, 0.6, 0.6])
        z = rng.uniform(half[2] + 0.3, size[2] - half[2] - 0.1) if floating else half[2]
        yaw = 0.0 if rng.uniform() < 0.3 else rng.uniform(0.0, math.pi / 2)
        return Box((xy[0], xy[1], z), tuple(half), yaw, texture)
    if kind == 1:
        radius = rng.uniform(0.15, 0.55)
        z = rng.uniform(radius + 0.3, size[2] - radius - 0.1) if floating else radius
        return Sphere((xy[0], xy[1], z), radius, texture)
    radius = rng.uniform(0.1, 0.45)
    half_height = rng.uniform(0.2, 0.9)
    z = rng.uniform(half_height + 0.3, size[2] - half_height - 0.1) if floating else half_height
    return Cylinder((xy[0], xy[1], z), radius, half_height, texture)


def _thin_object(rng: np.random.Generator, size: np.ndarray, thin_width: tuple[float, float]) -> Primitive:
    """A pole (often floor to ceiling), a standing panel or a floating shelf, 1-4 px across."""
    texture = _random_texture(rng)
    width = rng.uniform(*thin_width)
    xy = rng.uniform(0.0, size[:2])
    kind = rng.integers(3)
    if kind == 0:
        top = size[2] if rng.uniform() < 0.5 else rng.uniform(1.0, size[2] - 0.2)
        return Cylinder((xy[0], xy[1], top / 2), width / 2, top / 2, texture, thin=True)
    yaw = rng.uniform(0.0, math.pi)
    if kind == 1:
        half = (width / 2, rng.uniform(0.2, 0.7), rng.uniform(0.4, 1.0))
        return Box((xy[0], xy[1], half[2]), half, yaw, texture, thin=True)
    half = (rng.uniform(0.3, 1.0), rng.uniform(0.1, 0.4), width / 2)
    return Box((xy[0], xy[1], rng.uniform(0.5, size[2] - 0.3)), half, yaw, texture, thin=True)


def _fits(obj: Primitive, size: np.ndarray, placed: list[Primitive], zone: np.ndarray, keep_out: float) -> bool:
    """Inside the room, clear of the camera zone and not overlapping anything already placed."""
    lo, hi = obj.aabb()
    if np.any(lo < -1e-9) or np.any(hi > size + 1e-9):
        return False
    nearest = np.clip(zone, lo[:2], hi[:2])
    if np.linalg.norm(nearest - zone) < keep_out:
        return False
    for other in placed:
        other_lo, other_hi = other.aabb()
        if np.all(lo < other_hi + 0.05) and np.all(hi > other_lo - 0.05):
            return False
    return True


def generate_scene(seed: int, config: SyntheticConfig = SyntheticConfig()) -> Scene:
    """A random room with 'num_objects' solid and 'num_thin' thin objects, fixed by `seed`.

    Objects that find no free spot after a few tries are dropped, so a crowded draw may hold
    fewer. A disc around `camera_zone` stays clear so a camera path always fits.
    """
    rng = np.random.default_rng(seed)
    size = np.array([*rng.uniform(*config.room_size, size=2), rng.uniform(*config.room_height)])
    room = Room(tuple(float(s) for s in size), tuple(_random_texture(rng) for _ in range(6)))
    edge = config.wall_margin + _ZONE_RADIUS
    zone = rng.uniform(edge, size[:2] - edge)
    keep_out = _ZONE_RADIUS + config.camera_clearance

    placed: list[Primitive] = []
    count = rng.integers(config.num_objects[0], config.num_objects[1] + 1)
    thin_count = rng.integers(config.num_thin[0], config.num_thin[1] + 1)
    for index in range(count + thin_count):
        for _ in range(30):
            obj = _solid_object(rng, size) if index < count else _thin_object(rng, size, config.thin_width)
            if _fits(obj, size, placed, zone, keep_out):
                placed.append(obj)
                break
    return Scene(
        room=room,
        objects=tuple(placed),
        noise=_periodic_noise(rng),
        light_dir=_random_light(rng),
        ambient=float(rng.uniform(0.3, 0.45)),
        camera_zone=(float(zone[0]), float(zone[1])),
        config=config,
    )


def generate_sequence(seed: int, num_frames: int, config: SyntheticConfig = SyntheticConfig()) -> RGBDSequence:
    """`num_frames` rendered views of scene `seed` along its camera path `seed`."""
    scene = generate_scene(seed, config)
    poses = scene.camera_path(num_frames, seed)
    intrinsics = default_intrinsics(config)
    frames = [scene.render(pose, intrinsics, config.height, config.width) for pose in poses]
    images, depth, valid = (np.stack(parts) for parts in zip(*frames))
    return RGBDSequence(
        name=f"synthetic_{seed:06d}",
        images=images,
        depth=depth,
        valid=valid,
        intrinsics=np.repeat(intrinsics[None], num_frames, axis=0),
        cam_to_world=poses,
    )
