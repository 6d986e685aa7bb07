"""Backgrounds behind the pedestrians: walls above the horizon and the ground below it.

``upper_scene`` draws brick, facades with windows, vegetation, indoor walls or shop fronts;
``ground_scene`` pavement, tiles, grass or asphalt. Each returns an (h, w, 3) float array; ``s``
is the number of canvas pixels per output pixel, so textures keep their size at any render scale.
"""
from __future__ import annotations

from typing import Callable, Dict, Sequence

import numpy as np
from PIL import Image

from bau.data.synthetic.palettes import PALETTE, pick
from bau.data.synthetic.styles import DomainStyle

# (rng, h, w, s, yy, xx, base colour) -> (h, w, 3) float image
SceneFn = Callable[[np.random.Generator, int, int, float, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def value_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth noise in [0, 1], shape (h, w): a coarse random grid upsampled bilinearly."""
    cell = max(1.0, cell)
    gh, gw = int(h / cell) + 2, int(w / cell) + 2
    grid = rng.random((gh, gw), dtype=np.float32)
    return np.asarray(Image.fromarray(grid).resize((w, h), Image.BILINEAR), dtype=np.float32)


def lerp_colors(t: np.ndarray, c0: Sequence[float], c1: Sequence[float]) -> np.ndarray:
    """Per pixel, ``c0`` where ``t`` is 0 blending linearly into ``c1`` where it is 1."""
    t = t[..., None]
    return np.asarray(c0, np.float32) * (1 - t) + np.asarray(c1, np.float32) * t


def _brick(rng: np.random.Generator, h: int, w: int, s: float, yy: np.ndarray, xx: np.ndarray,
           base: np.ndarray) -> np.ndarray:
    bh = max(2, int(round(rng.uniform(4, 7) * s)))
    bw = bh * 3
    row = yy // bh
    shifted = xx + (row % 2) * (bw // 2)
    col = shifted // bw
    per_brick = rng.normal(0, 14, (int(row.max()) + 1, int(col.max()) + 1, 3)).astype(np.float32)
    img = base + per_brick[row, col]
    mortar = (yy % bh < max(1, int(s * 0.8))) | (shifted % bw < max(1, int(s * 0.8)))
    img[mortar] = np.clip(base * 0.5 + 110, 0, 255)
    return img


def _facade(rng: np.random.Generator, h: int, w: int, s: float, yy: np.ndarray, xx: np.ndarray,
            base: np.ndarray) -> np.ndarray:
    img = base + (value_noise(rng, h, w, 20 * s)[..., None] - 0.5) * 20
    ww, wh = rng.uniform(8, 14) * s, rng.uniform(10, 18) * s
    px, py = ww * rng.uniform(1.6, 2.4), wh * rng.uniform(1.4, 2.0)
    ox, oy = rng.uniform(0, px), rng.uniform(0, py)
    inside = (((xx + ox) % px) < ww) & (((yy + oy) % py) < wh)
    glass = np.clip(np.array([70, 84, 100], np.float32) + rng.normal(0, 10, 3), 0, 255)
    img[inside] = glass + (yy[inside, None] % max(1, int(py))) * 1.2
    return img


def _vegetation(rng: np.random.Generator, h: int, w: int, s: float, yy: np.ndarray, xx: np.ndarray,
                base: np.ndarray) -> np.ndarray:
    n = 0.65 * value_noise(rng, h, w, 10 * s) + 0.35 * value_noise(rng, h, w, 3 * s)
    dark = np.array([30, 62, 30], np.float32) + rng.normal(0, 8, 3)
    light = np.array([104, 150, 70], np.float32) + rng.normal(0, 12, 3)
    img = lerp_colors(np.clip(n * 1.4 - 0.2, 0, 1), dark, light)
    trunks = (value_noise(rng, 1, w, 14 * s)[0] > 0.8)[None, :] & (yy > h * 0.5)
    img[trunks] = np.array([72, 54, 38], np.float32)
    return img


def _indoor_wall(rng: np.random.Generator, h: int, w: int, s: float, yy: np.ndarray, xx: np.ndarray,
                 base: np.ndarray) -> np.ndarray:
    img = base + (value_noise(rng, h, w, 30 * s)[..., None] - 0.5) * 16
    period = max(4, int(rng.uniform(18, 30) * s))
    img[(xx % period) < max(1, int(s))] *= 0.8
    return img


def _shopfront(rng: np.random.Generator, h: int, w: int, s: float, yy: np.ndarray, xx: np.ndarray,
               base: np.ndarray) -> np.ndarray:
    img = base + (value_noise(rng, h, w, 30 * s)[..., None] - 0.5) * 12
    x = 0.0
    while x < w:  # shop windows and signs side by side
        sw = rng.uniform(14, 30) * s
        color = np.asarray(PALETTE[list(PALETTE)[int(rng.integers(len(PALETTE)))]], np.float32)
        y0 = int(h * rng.uniform(0.15, 0.35))
        img[y0:y0 + int(5 * s), int(x):int(x + sw)] = color
        img[y0 + int(6 * s):, int(x + 2 * s):int(x + sw - 2 * s)] = np.clip(color * 0.4 + 70, 0, 255)
        x += sw + rng.uniform(3, 8) * s
    return img


UPPER_SCENES: Dict[str, SceneFn] = {"brick": _brick, "facade": _facade, "vegetation": _vegetation,
                                    "indoor_wall": _indoor_wall, "shopfront": _shopfront}


def upper_scene(kind: str, rng: np.random.Generator, h: int, w: int, s: float, style: DomainStyle) -> np.ndarray:
    """Behind the person above the horizon, (h, w, 3) float; ``s`` = canvas pixels per output pixel."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = pick(rng, style.wall_colors)  # drawn for every kind, so the draws that follow do not depend on it
    if kind not in UPPER_SCENES:
        raise ValueError(f"unknown scene {kind!r}")
    return UPPER_SCENES[kind](rng, h, w, s, yy, xx, base)


def _paving(rng: np.random.Generator, h: int, w: int, s: float, yy: np.ndarray, xx: np.ndarray, base: np.ndarray,
            kind: str) -> np.ndarray:
    """Pavement (small slabs) or tiles (large ones in a checkerboard of two shades), with grout lines."""
    size = max(3, int(rng.uniform(8, 12) * s if kind == "pavement" else rng.uniform(14, 22) * s))
    row, col = yy // size, xx // size
    per_tile = rng.normal(0, 10 if kind == "pavement" else 4, (int(row.max()) + 1, int(col.max()) + 1, 1))
    img = base + per_tile.astype(np.float32)[row, col]
    if kind == "tiles":
        img = img + ((row + col) % 2)[..., None] * rng.uniform(-18, 18)
    grout = (yy % size < max(1, int(s * 0.7))) | (xx % size < max(1, int(s * 0.7)))
    img[grout] *= 0.75
    return img


def _pavement(rng: np.random.Generator, h: int, w: int, s: float, yy: np.ndarray, xx: np.ndarray,
              base: np.ndarray) -> np.ndarray:
    return _paving(rng, h, w, s, yy, xx, base, "pavement")


def _tiles(rng: np.random.Generator, h: int, w: int, s: float, yy: np.ndarray, xx: np.ndarray,
           base: np.ndarray) -> np.ndarray:
    return _paving(rng, h, w, s, yy, xx, base, "tiles")


def _grass(rng: np.random.Generator, h: int, w: int, s: float, yy: np.ndarray, xx: np.ndarray,
           base: np.ndarray) -> np.ndarray:
    n = 0.5 * value_noise(rng, h, w, 6 * s) + 0.5 * value_noise(rng, h, w, 1.5 * s)
    return lerp_colors(n, np.array([50, 90, 36], np.float32) + rng.normal(0, 6, 3),
                       np.array([116, 150, 70], np.float32) + rng.normal(0, 8, 3))


def _asphalt(rng: np.random.Generator, h: int, w: int, s: float, yy: np.ndarray, xx: np.ndarray,
             base: np.ndarray) -> np.ndarray:
    img = base + (rng.random((h, w, 1), dtype=np.float32) - 0.5) * 24
    y_line = int(h * rng.uniform(0.3, 0.8))
    img[y_line:y_line + max(1, int(2 * s))] = (210, 200, 150) if rng.random() < 0.5 else (220, 220, 220)
    return img


GROUND_SCENES: Dict[str, SceneFn] = {"pavement": _pavement, "tiles": _tiles, "grass": _grass, "asphalt": _asphalt}


def ground_scene(kind: str, rng: np.random.Generator, h: int, w: int, s: float, style: DomainStyle) -> np.ndarray:
    """The ground below the horizon, (h, w, 3) float; ``s`` = canvas pixels per output pixel."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = pick(rng, style.ground_colors)  # drawn for every kind, so the draws that follow do not depend on it
    if kind not in GROUND_SCENES:
        raise ValueError(f"unknown ground {kind!r}")
    return GROUND_SCENES[kind](rng, h, w, s, yy, xx, base)
