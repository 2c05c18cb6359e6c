"""Files for people and other tools: binary PLY point clouds and colourised depth images."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

_PLY_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])


def write_ply(path: str | Path, points: np.ndarray, colors: np.ndarray) -> int:
    """Binary little-endian PLY of finite points [N, 3] with uint8 RGB [N, 3]; returns the count."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    if len(points) != len(colors):
        raise ValueError(f"{len(points)} points but {len(colors)} colours")
    keep = np.isfinite(points).all(axis=1)
    vertices = np.empty(int(keep.sum()), dtype=_PLY_DTYPE)
    for i, name in enumerate("xyz"):
        vertices[name] = points[keep, i]
    for i, name in enumerate(("red", "green", "blue")):
        vertices[name] = colors[keep, i]
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(vertices)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    )
    with open(path, "wb") as fh:
        fh.write(header.encode("ascii"))
        fh.write(vertices.tobytes())
    return len(vertices)


def read_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read back a PLY written by write_ply: (points [N, 3] float32, colours [N, 3] uint8)."""
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    if header[1] != "format binary_little_endian 1.0":
        raise ValueError(f"{path}: only binary little-endian PLY files written by write_ply are supported")
    count = int(next(line for line in header if line.startswith("element vertex")).split()[-1])
    vertices = np.frombuffer(data, dtype=_PLY_DTYPE, count=count, offset=end)
    points = np.stack([vertices[c] for c in "xyz"], axis=1)
    colors = np.stack([vertices[c] for c in ("red", "green", "blue")], axis=1)
    return points, colors


def colorize_depth(depth: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Depth [H, W] -> RGB uint8 (turbo, near = red); NaN / non-positive pixels black.

    Inverse depth is mapped, so near structure gets most of the colour range.
    """
    valid = np.isfinite(depth) & (depth > 0)
    inverse = np.zeros_like(depth, dtype=np.float32)
    inverse[valid] = 1.0 / depth[valid]
    if valid.any():
        lo_inv = 1.0 / hi if hi else float(np.percentile(inverse[valid], 2))
        hi_inv = 1.0 / lo if lo else float(np.percentile(inverse[valid], 98))
    else:
        lo_inv, hi_inv = 0.0, 1.0
    scaled = np.clip((inverse - lo_inv) / max(hi_inv - lo_inv, 1e-12), 0, 1)
    bgr = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    bgr[~valid] = 0
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_png(path: str | Path, rgb: np.ndarray) -> None:
    """RGB uint8 (or single-channel) image -> PNG; raises if OpenCV cannot write it."""
    image = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")
