"""Random scenes and sequences from a seed: the same seed always gives the same scene and path."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..sequence import RGBDSequence
from .config import SyntheticConfig, default_intrinsics
from .primitives import Box, Cylinder, Primitive, Room, Sphere
from .scene import ZONE_RADIUS, Scene
from .textures import Texture, TextureSource, periodic_noise


def _random_light(rng: np.random.Generator) -> tuple[float, float, float]:
    """A light from above, tilted up to about 40 degrees, so walls differ in brightness."""
    direction = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), 1.0])
    return tuple(float(c) for c in direction / np.linalg.norm(direction))


def _solid_object(rng: np.random.Generator, size: np.ndarray, texture: Texture) -> Primitive:
    """Floating world: a random box, sphere or cylinder, resting on the floor or (less often) floating."""
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


def _thin_object(rng: np.random.Generator, size: np.ndarray, thin_width: tuple[float, float], texture: Texture) -> Primitive:
    """Floating world: a pole (often floor to ceiling), a standing panel or a floating shelf, 1-4 px across."""
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


# Plausible world: object classes with the size ranges a room has (metres; half sizes of boxes,
# radius and half height of cylinders, radius of spheres), and how often each is drawn.
_SOLID_CLASSES = ("table", "cabinet", "crate", "bin", "pillar", "ball")
_SOLID_WEIGHTS = (0.2, 0.15, 0.25, 0.15, 0.1, 0.15)
_STACKABLE = ("crate", "bin", "ball")  # small enough to stand on a table, a cabinet or a crate
_STACK_PROBABILITY = 0.35
_SUPPORTS = ("table", "cabinet", "crate")
ObjectMaker = Callable[[float, float, float, Texture], Primitive]  # (x, y, base height, texture) -> object


def _plausible_solid(rng: np.random.Generator, kind: str, room_height: float) -> tuple[float, float, ObjectMaker]:
    """(footprint radius, height, maker) of one object of class `kind`; the maker stands it at a base height."""
    if kind in ("table", "cabinet", "crate"):
        lo, hi = {"table": ([0.3, 0.25, 0.36], [0.8, 0.5, 0.4]), "cabinet": ([0.2, 0.18, 0.4], [0.5, 0.3, 1.0]),
                  "crate": ([0.12, 0.12, 0.1], [0.35, 0.35, 0.3])}[kind]
        half = rng.uniform(lo, hi)
        yaw = 0.0 if rng.uniform() < 0.4 else rng.uniform(0.0, math.pi / 2)
        return float(np.hypot(half[0], half[1])), 2 * half[2], lambda x, y, base, tex: Box(
            (x, y, base + half[2]), tuple(half), yaw, tex)
    if kind == "ball":
        radius = rng.uniform(0.1, 0.35)
        return radius, 2 * radius, lambda x, y, base, tex: Sphere((x, y, base + radius), radius, tex)
    radius = rng.uniform(0.1, 0.25) if kind == "pillar" else rng.uniform(0.12, 0.3)
    half_height = room_height / 2 if kind == "pillar" else rng.uniform(0.2, 0.45)
    return radius, 2 * half_height, lambda x, y, base, tex: Cylinder((x, y, base + half_height), radius, half_height, tex)


def _plausible_thin(rng: np.random.Generator, size: np.ndarray, thin_width: tuple[float, float], texture: Texture) -> Primitive:
    """A pole (floor to ceiling, or a lamp's), a panel standing on the floor, or a shelf on a wall."""
    width = rng.uniform(*thin_width)
    kind = rng.integers(3)
    if kind == 0:
        top = size[2] if rng.uniform() < 0.5 else rng.uniform(1.2, min(1.9, size[2] - 0.2))
        xy = rng.uniform(0.0, size[:2])
        return Cylinder((xy[0], xy[1], top / 2), width / 2, top / 2, texture, thin=True)
    if kind == 1:
        half = (width / 2, rng.uniform(0.2, 0.7), rng.uniform(0.4, 1.0))
        xy = rng.uniform(0.0, size[:2])
        return Box((xy[0], xy[1], half[2]), half, rng.uniform(0.0, math.pi), texture, thin=True)
    length, depth = rng.uniform(0.3, 0.8), rng.uniform(0.1, 0.18)
    height = rng.uniform(0.5, min(2.0, size[2] - 0.3))
    wall = rng.integers(4)  # -x, +x, -y, +y: the shelf's back touches that wall
    axis, side = wall // 2, wall % 2
    along = rng.uniform(length, size[1 - axis] - length)
    out = depth if side == 0 else size[axis] - depth
    center = (out, along, height) if axis == 0 else (along, out, height)
    return Box(center, (length, depth, width / 2), math.pi / 2 if axis == 0 else 0.0, texture, thin=True)


def _fits(obj: Primitive, size: np.ndarray, placed: list[Primitive], zone: np.ndarray, keep_out: float,
          support: Primitive | None = None) -> bool:
    """Inside the room, clear of the camera zone and not overlapping anything already placed
    (but `support`, which it stands on)."""
    lo, hi = obj.aabb()
    if np.any(lo < -1e-9) or np.any(hi > size + 1e-9):
        return False
    nearest = np.clip(zone, lo[:2], hi[:2])
    if np.linalg.norm(nearest - zone) < keep_out:
        return False
    for other in placed:
        if other is support:
            continue
        other_lo, other_hi = other.aabb()
        if np.all(lo < other_hi + 0.05) and np.all(hi > other_lo - 0.05):
            return False
    return True


def _floating_objects(rng: np.random.Generator, size: np.ndarray, config: SyntheticConfig, textures: TextureSource,
                      zone: np.ndarray, keep_out: float) -> list[Primitive]:
    """The floating world's objects: solids on the floor or floating, thin poles, panels and shelves."""
    placed: list[Primitive] = []
    count = rng.integers(config.num_objects[0], config.num_objects[1] + 1)
    thin_count = rng.integers(config.num_thin[0], config.num_thin[1] + 1)
    for index in range(count + thin_count):
        for _ in range(30):
            texture = textures.surface()
            obj = _solid_object(rng, size, texture) if index < count else _thin_object(rng, size, config.thin_width, texture)
            if _fits(obj, size, placed, zone, keep_out):
                placed.append(obj)
                break
    return placed


def _plausible_objects(rng: np.random.Generator, size: np.ndarray, config: SyntheticConfig, textures: TextureSource,
                       zone: np.ndarray, keep_out: float) -> list[Primitive]:
    """The plausible world's objects: each stands on the floor or on a table, cabinet or crate;
    shelves hang on walls; sizes by class (_plausible_solid)."""
    placed: list[Primitive] = []
    supports: list[Box] = []
    count = rng.integers(config.num_objects[0], config.num_objects[1] + 1)
    thin_count = rng.integers(config.num_thin[0], config.num_thin[1] + 1)
    for index in range(count + thin_count):
        for _ in range(30):
            texture = textures.surface()
            support, is_support = None, False
            if index >= count:
                obj = _plausible_thin(rng, size, config.thin_width, texture)
            else:
                kind = str(rng.choice(_SOLID_CLASSES, p=_SOLID_WEIGHTS))
                radius, height, make = _plausible_solid(rng, kind, float(size[2]))
                if kind in _STACKABLE and supports and rng.uniform() < _STACK_PROBABILITY:
                    support = supports[int(rng.integers(len(supports)))]
                    room_on_top = min(support.half_size[:2]) - radius
                    if room_on_top < 0:
                        continue
                    offset = rng.uniform(-1.0, 1.0, size=2) * room_on_top / math.sqrt(2)
                    top = support.center[2] + support.half_size[2]
                    obj = make(support.center[0] + offset[0], support.center[1] + offset[1], top, texture)
                else:
                    xy = rng.uniform(radius, size[:2] - radius)
                    obj = make(xy[0], xy[1], 0.0, texture)
                is_support = kind in _SUPPORTS
            if _fits(obj, size, placed, zone, keep_out, support):
                placed.append(obj)
                if is_support:
                    supports.append(obj)
                break
    return placed


def generate_scene(seed: int, config: SyntheticConfig = SyntheticConfig()) -> Scene:
    """A random room with 'num_objects' solid and 'num_thin' thin objects, fixed by `seed`,
    placed as `config.world` says.

    Objects that find no free spot after a few tries are dropped, so a crowded draw may hold
    fewer. A disc around `camera_zone` stays clear so a camera path always fits.
    """
    rng = np.random.default_rng(seed)
    size = np.array([*rng.uniform(*config.room_size, size=2), rng.uniform(*config.room_height)])
    textures = TextureSource(rng, config.texture_style)
    room = Room(tuple(float(s) for s in size), textures.room())
    edge = config.wall_margin + ZONE_RADIUS
    zone = rng.uniform(edge, size[:2] - edge)
    keep_out = ZONE_RADIUS + config.camera_clearance
    place = _plausible_objects if config.world == "plausible" else _floating_objects
    placed = place(rng, size, config, textures, zone, keep_out)
    return Scene(
        room=room,
        objects=tuple(placed),
        noise=periodic_noise(rng),
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
