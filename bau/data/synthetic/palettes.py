"""Colours and wardrobe of the synthetic pedestrians, and the colour arithmetic that uses them.

The tables are shared by every domain; a domain only weights them differently (its fashion, see
``styles``). ``shade``, ``jitter`` and ``pick`` turn a table colour into the one that is drawn.
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np

RGB = Tuple[int, int, int]

# Clothing colours. Domains weight them differently (fashion), identities jitter them slightly.
PALETTE: Dict[str, RGB] = {
    "black": (28, 28, 32), "charcoal": (58, 58, 64), "grey": (120, 120, 124), "light_grey": (178, 178, 180),
    "white": (226, 226, 220), "navy": (32, 42, 82), "blue": (44, 84, 168), "light_blue": (126, 162, 208),
    "denim": (62, 88, 128), "red": (168, 38, 36), "burgundy": (102, 28, 42), "orange": (214, 118, 44),
    "yellow": (216, 188, 64), "green": (52, 118, 62), "olive": (98, 104, 58), "khaki": (172, 154, 112),
    "beige": (204, 190, 160), "brown": (98, 66, 42), "pink": (218, 142, 162), "purple": (98, 62, 128),
    "teal": (40, 118, 120),
}
SKIN: Tuple[RGB, ...] = ((236, 200, 170), (222, 178, 142), (196, 150, 112), (160, 112, 78), (112, 76, 52))
HAIR: Tuple[RGB, ...] = ((20, 18, 18), (52, 36, 26), (92, 62, 38), (150, 112, 62), (196, 168, 112), (150, 150, 150),
                         (120, 48, 30))
HAIR_WEIGHTS = (0.36, 0.22, 0.14, 0.09, 0.07, 0.07, 0.05)
HAIR_STYLES = {"short": 0.38, "long": 0.24, "cap": 0.12, "buzz": 0.12, "ponytail": 0.14}
SHOES = {"black": 0.38, "white": 0.24, "brown": 0.12, "grey": 0.1, "red": 0.05, "blue": 0.06, "beige": 0.05}
PATTERNS = ("plain", "stripes", "band", "jacket", "logo")
LOGO_SHAPES = ("circle", "square", "triangle", "diamond")
BAGS = ("none", "backpack", "shoulder", "handbag")

# Weights over PALETTE names: what people wear on top (per season) and below.
SUMMER_TOPS = {"white": 0.2, "black": 0.14, "grey": 0.1, "light_blue": 0.08, "blue": 0.07, "red": 0.07,
               "navy": 0.07, "pink": 0.05, "yellow": 0.05, "green": 0.05, "orange": 0.03, "teal": 0.04,
               "purple": 0.03, "beige": 0.02}
WINTER_TOPS = {"black": 0.3, "charcoal": 0.15, "navy": 0.12, "grey": 0.1, "burgundy": 0.06, "olive": 0.06,
               "brown": 0.06, "white": 0.05, "red": 0.04, "blue": 0.04, "khaki": 0.02}
MIXED_TOPS = {"black": 0.2, "white": 0.14, "grey": 0.1, "navy": 0.1, "blue": 0.08, "light_grey": 0.06,
              "red": 0.06, "beige": 0.05, "green": 0.05, "pink": 0.04, "purple": 0.04, "charcoal": 0.05,
              "yellow": 0.03}
BOTTOMS = {"black": 0.32, "denim": 0.3, "grey": 0.1, "navy": 0.1, "khaki": 0.1, "charcoal": 0.04,
           "white": 0.02, "brown": 0.02}


def shade(color: RGB, factor: float) -> RGB:
    """``color`` darkened (``factor`` < 1) or lightened, clipped to 0..255."""
    return tuple(int(min(255, max(0, c * factor))) for c in color)  # type: ignore[return-value]


def jitter(rng: np.random.Generator, color: RGB, std: float = 7.0) -> RGB:
    """``color`` with Gaussian noise of ``std`` per channel (three normal draws), as integers."""
    return tuple(int(v) for v in np.clip(np.array(color) + rng.normal(0, std, 3), 0, 255))  # type: ignore[return-value]


def pick(rng: np.random.Generator, colors: Sequence[RGB], std: float = 10.0) -> np.ndarray:
    """One of ``colors`` (one integer draw) with Gaussian noise of ``std`` (three normal draws), as floats."""
    return np.clip(np.asarray(colors[int(rng.integers(len(colors)))], np.float32) + rng.normal(0, std, 3), 0, 255)
