"""Pictures for evaluation reports: coloured maps and a point cloud rendered from a side view.

A side view is what shows flying points: seen from the camera that produced it, a depth map
always looks plausible; seen from the side, points smeared between foreground and background
stand out.
"""
from __future__ import annotations

import math

import cv2
import numpy as np


def error_colors(values: np.ndarray, vmax: float) -> np.ndarray:
    """Non-negative errors [...] -> RGB uint8 (turbo: blue = 0, red >= vmax)."""
    scaled = np.clip(np.nan_to_num(values, nan=vmax) / vmax, 0, 1)
    bgr = cv2.applyColorMap((scaled * 255).astype(np.uint8).reshape(-1, 1), cv2.COLORMAP_TURBO)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).reshape(*values.shape, 3)


def side_view(points: np.ndarray, yaw_deg: float = 30.0, pitch_deg: float = 15.0) -> np.ndarray:
    """A 3x4 camera-from-points pose orbiting the cloud's median point (OpenCV axes).

    The camera keeps the original camera's distance to the median point and turns by `yaw_deg`
    about the vertical (y) axis and `pitch_deg` about x, looking back at the median point.
    """
    centre = np.median(points, axis=0)
    distance = max(float(np.linalg.norm(centre)), 1e-6)
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    rot_y = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
    rot_x = np.array([[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]])
    rotation = rot_x @ rot_y  # camera-from-points rotation
    # Place the camera so that the median point sits `distance` ahead on its optical axis.
    translation = np.array([0.0, 0.0, distance]) - rotation @ centre
    return np.hstack([rotation, translation[:, None]])


def render_points(points: np.ndarray, colors: np.ndarray, pose: np.ndarray, intrinsics: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Z-buffered splat of points [N, 3] with colours [N, 3] into an HxW RGB image (black background)."""
    height, width = hw
    image = np.zeros((height, width, 3), np.uint8)
    finite = np.isfinite(points).all(axis=1)
    camera = points[finite] @ pose[:, :3].T + pose[:, 3]
    colors = colors[finite]
    front = camera[:, 2] > 1e-6
    camera, colors = camera[front], colors[front]
    u = np.round(intrinsics[0, 0] * camera[:, 0] / camera[:, 2] + intrinsics[0, 2]).astype(np.int64)
    v = np.round(intrinsics[1, 1] * camera[:, 1] / camera[:, 2] + intrinsics[1, 2]).astype(np.int64)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    u, v, depth, colors = u[inside], v[inside], camera[inside, 2], colors[inside]
    pixel = v * width + u
    order = np.lexsort((depth, pixel))  # by pixel, nearest first
    first = np.unique(pixel[order], return_index=True)[1]
    nearest = order[first]
    image.reshape(-1, 3)[pixel[nearest]] = colors[nearest]
    return image


CAPTION_LINE = 14  # pixels per caption line
CAPTION_CHAR = 6  # about the width of one character of the caption font (FONT_HERSHEY_SIMPLEX at 0.4)


def caption_lines(label: str, width: int) -> list[str]:
    """`label` broken into lines that fit `width` pixels, at word boundaries: a title is shown whole."""
    per_line = max(1, (width - 6) // CAPTION_CHAR)
    lines: list[str] = []
    for word in label.split():
        if lines and len(lines[-1]) + 1 + len(word) <= per_line:
            lines[-1] += " " + word
        else:
            lines += [word[i : i + per_line] for i in range(0, len(word), per_line)]
    return lines or [""]


def labelled(image: np.ndarray, label: str, lines: int = 1) -> np.ndarray:
    """The image with a caption bar on top, `lines` lines high (at least the caption's own)."""
    text = caption_lines(label, image.shape[1])
    bar = np.full((CAPTION_LINE * max(lines, len(text)) + 4, image.shape[1], 3), 255, np.uint8)
    for row, line in enumerate(text):
        cv2.putText(bar, line, (3, 13 + CAPTION_LINE * row), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, image])


def panel(rows: list[list[tuple[str, np.ndarray]]]) -> np.ndarray:
    """A grid of captioned images (all the same size) -> one RGB image; every caption whole, the
    captions of a row given the same height."""
    lines = []
    width = max(len(row) for row in rows)
    for row in rows:
        height = max(len(caption_lines(label, img.shape[1])) for label, img in row)
        tiles = [labelled(img, label, height) for label, img in row]
        blank = np.full_like(tiles[0], 255)
        lines.append(np.hstack(tiles + [blank] * (width - len(tiles))))
    return np.vstack(lines)


def depth_comparison(depth: np.ndarray, gt: np.ndarray, max_error: float = 0.25) -> list[tuple[str, np.ndarray]]:
    """Prediction and ground truth in one colour scale, and the relative error, as captioned tiles.

    The prediction is first scaled by the median ratio to the ground truth (the evaluation's
    scale fit), so that equal colours mean equal depth; pixels without a prediction are black.
    """
    from ..io.export import colorize_depth

    valid = np.isfinite(depth) & (depth > 0) & np.isfinite(gt) & (gt > 0)
    if not valid.any():
        return [("prediction (no overlap with ground truth)", colorize_depth(depth)), ("ground truth", colorize_depth(gt))]
    scale = float(np.median(gt[valid] / depth[valid]))
    scaled = depth * np.float32(scale)
    lo, hi = np.percentile(gt[np.isfinite(gt) & (gt > 0)], [2, 98])
    error = np.abs(scaled - gt) / np.where(gt > 0, gt, np.nan)
    error_image = error_colors(error, max_error)
    error_image[~valid] = 0
    return [
        (f"prediction x{scale:.3g} (fit)", colorize_depth(scaled, lo, hi)),
        ("ground truth (same colours)", colorize_depth(gt, lo, hi)),
        (f"rel. error 0-{max_error:g}, AbsRel {float(np.mean(error[valid])):.3f}", error_image),
    ]


def gating_with_legend(winner: np.ndarray, num_experts: int, palette: np.ndarray) -> np.ndarray:
    """Winning-expert indices [H, W] -> the palette's colours with a legend of each expert's share."""
    image = palette[winner % len(palette)].copy()
    height = image.shape[0]
    for expert in range(num_experts):
        share = float(np.mean(winner == expert))
        top = height - 14 * (num_experts - expert) - 2
        cv2.rectangle(image, (2, top), (70, top + 12), (0, 0, 0), -1)
        cv2.rectangle(image, (4, top + 2), (12, top + 10), tuple(int(c) for c in palette[expert % len(palette)]), -1)
        cv2.putText(image, f"e{expert} {100 * share:.0f}%", (16, top + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return image
