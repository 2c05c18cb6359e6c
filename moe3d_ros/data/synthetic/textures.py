"""Surface textures in world or object coordinates, so every view of a surface sees the same pattern."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NOISE_SIZE = 128  # texels per side of the scene's periodic noise tile (a power of two)
TEXTURE_KINDS = ("checker", "stripes", "noise", "gradient")
# "hard": two-colour checkers, stripes, noise and gradients on every surface (most colour edges are
# not depth edges); "natural": one albedo per object, different from every other surface in the
# room, with low-contrast detail, so that colour edges are mostly where depth steps.
TEXTURE_STYLES = ("hard", "natural")
MIN_ALBEDO_GAP = 0.25  # natural style: largest channel difference between any two surfaces' albedos


def periodic_noise(rng: np.random.Generator, size: int = NOISE_SIZE) -> np.ndarray:
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


def random_texture(rng: np.random.Generator) -> Texture:
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


def natural_texture(rng: np.random.Generator, albedo: np.ndarray) -> Texture:
    """One albedo with low-contrast detail: fine noise that changes neighbouring pixels by a few
    percent at most, or a few large, soft patches."""
    fine = rng.uniform() < 0.5
    spread = rng.uniform(0.01, 0.02) if fine else rng.uniform(0.04, 0.08)  # per channel, either side of the albedo
    return Texture(
        kind="noise",
        color_a=tuple(float(c) for c in np.clip(albedo - spread, 0.0, 1.0)),
        color_b=tuple(float(c) for c in np.clip(albedo + spread, 0.0, 1.0)),
        scale=float(rng.uniform(0.3, 0.8) if fine else rng.uniform(2.0, 5.0)),
        angle=float(rng.uniform(0.0, math.pi)),
        offset=(float(rng.uniform()), float(rng.uniform())),
        grain=float(rng.uniform(0.01, 0.03)),
        grain_scale=float(rng.uniform(1.5, 3.0)),
    )


def distinct_albedo(rng: np.random.Generator, taken: list[np.ndarray]) -> np.ndarray:
    """An RGB albedo whose largest channel difference to every albedo in `taken` is at least
    MIN_ALBEDO_GAP (the best of 200 draws when the room is crowded); appended to `taken`."""
    best, best_gap = None, -1.0
    for _ in range(200):
        albedo = rng.uniform(0.1, 0.9, 3)
        gap = min((float(np.abs(albedo - other).max()) for other in taken), default=1.0)
        if gap > best_gap:
            best, best_gap = albedo, gap
        if gap >= MIN_ALBEDO_GAP:
            break
    taken.append(best)
    return best


class TextureSource:
    """The textures of one scene in one style; in the natural style it remembers the albedos
    handed out so that no two surfaces share one."""

    def __init__(self, rng: np.random.Generator, style: str) -> None:
        if style not in TEXTURE_STYLES:
            raise ValueError(f"texture style {style!r}: choose from {TEXTURE_STYLES}")
        self.rng, self.style = rng, style
        self.albedos: list[np.ndarray] = []

    def surface(self) -> Texture:
        if self.style == "hard":
            return random_texture(self.rng)
        return natural_texture(self.rng, distinct_albedo(self.rng, self.albedos))

    def room(self) -> tuple[Texture, ...]:
        """-x, +x, -y, +y, floor, ceiling; in the natural style the four walls share one paint."""
        if self.style == "hard":
            return tuple(random_texture(self.rng) for _ in range(6))
        walls = self.surface()
        return (walls, walls, walls, walls, self.surface(), self.surface())


def plane_coords(q: tuple[np.ndarray, ...], axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Texture coordinates: the two components of q orthogonal to each point's normal axis."""
    a = np.where(axis == 0, q[1], q[0])
    b = np.where(axis == 2, q[1], q[2])
    return a, b
