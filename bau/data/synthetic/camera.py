"""Cameras of a domain: a fixed scene wider than one crop, viewpoint habits, colour cast and scale."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np
from PIL import Image

from bau.data.synthetic.scene import ground_scene, upper_scene
from bau.data.synthetic.styles import DomainStyle


@dataclass
class Camera:
    """A camera of a domain: its scene (wider than a crop), viewpoint habits, colour cast, scale."""

    scene: Image.Image  # RGB, at canvas resolution, wider and taller than one crop
    view_probs: np.ndarray  # over figure.VIEWS
    gain: float
    cast: np.ndarray  # (3,) RGB gains
    scale_range: Tuple[float, float]  # body height as a fraction of the image height
    shadow: float  # strength of the lighting gradient


def camera_canvas(style: DomainStyle, height: int, width: int) -> Tuple[int, int]:
    """Drawing size (h, w): supersampled for crisp domains, small for low-resolution ones."""
    return max(16, int(round(height * style.render_scale))), max(8, int(round(width * style.render_scale)))


def make_camera(rng: np.random.Generator, style: DomainStyle, canvas_h: int, canvas_w: int) -> Camera:
    """A camera of ``style``'s domain for crops of ``canvas_h`` x ``canvas_w`` canvas pixels."""
    s = canvas_h / 128.0
    hs, ws = int(canvas_h * 1.15), int(canvas_w * 2.2)
    horizon = int(hs * rng.uniform(0.45, 0.7))
    upper = upper_scene(str(rng.choice(style.upper_scenes)), rng, horizon, ws, s, style)
    ground = ground_scene(str(rng.choice(style.ground_scenes)), rng, hs - horizon, ws, s, style)
    scene = np.concatenate([upper, ground], axis=0)
    # A vertical light gradient, its direction and strength fixed per camera (sky, lamps, shade).
    scene *= np.linspace(rng.uniform(0.85, 1.1), rng.uniform(0.9, 1.1), hs, dtype=np.float32)[:, None, None]
    lo = rng.uniform(0.74, 0.86)
    return Camera(scene=Image.fromarray(np.clip(scene, 0, 255).astype(np.uint8)),
                  view_probs=rng.dirichlet(np.full(4, 1.2)),
                  gain=float(rng.uniform(0.85, 1.15)), cast=1.0 + rng.normal(0, 0.05, 3),
                  scale_range=(lo, min(0.98, lo + rng.uniform(0.1, 0.18))), shadow=float(rng.uniform(0.0, 0.3)))
