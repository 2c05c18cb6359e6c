"""Random scenes and sequences from a seed: the same seed always gives the same scene and path."""
from __future__ import annotations

import math

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
    """A random box, sphere or cylinder, resting on the floor or (less often) floating."""
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
    """A pole (often floor to ceiling), a standing panel or a floating shelf, 1-4 px across."""
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
    textures = TextureSource(rng, config.texture_style)
    room = Room(tuple(float(s) for s in size), textures.room())
    edge = config.wall_margin + ZONE_RADIUS
    zone = rng.uniform(edge, size[:2] - edge)
    keep_out = ZONE_RADIUS + config.camera_clearance

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
