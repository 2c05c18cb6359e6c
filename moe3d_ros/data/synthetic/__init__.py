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

from .config import SyntheticConfig, default_intrinsics
from .generator import generate_scene, generate_sequence
from .primitives import Box, Cylinder, Room, Sphere
from .scene import Scene

__all__ = ["Box", "Cylinder", "Room", "Scene", "Sphere", "SyntheticConfig", "default_intrinsics", "generate_scene",
           "generate_sequence"]
