"""The room and the objects in it (boxes, spheres, vertical cylinders), ray cast analytically:
each gives exact hit distances, normals and albedo."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .textures import Texture, plane_coords

_HIT_EPS = 1e-6  # smallest accepted ray parameter; cameras never sit on a surface
Shading = tuple[np.ndarray, np.ndarray]  # (unit normals [N, 3], albedo [N, 3])


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


def box_corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
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
            a, b = plane_coords(points, np.full(points[0].shape, axis))
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
        local = box_corners(-half, half)
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
        a, b = plane_coords(q, axis)
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
        return box_corners(c - self.radius, c + self.radius)

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
        a, b = plane_coords(q, axis)
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
        return box_corners(*self.aabb())

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
