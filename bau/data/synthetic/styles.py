"""Domain styles: everything that makes one synthetic domain look like its own data set.

``PRESETS`` are hand-made domains; ``random_style`` mixes scene, optics and fashion at random for
the domains beyond them. A style's fields end up in ``synthetic.json``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

from bau.data.synthetic.palettes import BAGS, BOTTOMS, MIXED_TOPS, PATTERNS, RGB, SUMMER_TOPS, WINTER_TOPS


@dataclass
class DomainStyle:
    """Everything that makes one domain look like its own data set (all fields end up in the JSON)."""

    description: str
    num_cameras: int
    cams_per_id: Tuple[int, int]  # inclusive range of cameras that see one identity
    imgs_per_cam: Tuple[int, int]  # inclusive range of images of one identity in one camera
    upper_scenes: Tuple[str, ...]  # what is behind the person above the horizon
    ground_scenes: Tuple[str, ...]
    wall_colors: Tuple[RGB, ...]
    ground_colors: Tuple[RGB, ...]
    temperature: Tuple[float, float, float]  # RGB gains: >1 red and <1 blue is warm light
    saturation: float  # 1 = unchanged, 0 = grey
    contrast: float
    brightness: float
    render_scale: float  # canvas size / output size; < 1 renders small and upsamples (low-res domain)
    blur: float  # Gaussian radius in output pixels
    noise: float  # sensor noise std on the 0..255 scale
    jpeg_quality: int
    occlusion_prob: float
    top_weights: Dict[str, float]
    bottom_weights: Dict[str, float]
    shorts_prob: float
    skirt_prob: float
    coat_prob: float  # long tops covering the thighs
    short_sleeve_prob: float
    pattern_weights: Tuple[float, ...]  # over PATTERNS
    bag_weights: Tuple[float, ...]  # over BAGS


# Hand-made domains, loosely after Market (sunny campus), Duke (winter campus), CUHK/MSMT indoor
# scenes and the small low-resolution street sets (GRID/PRID/VIPeR). Further domains are drawn at
# random from the seed by ``random_style``.
PRESETS: Tuple[DomainStyle, ...] = (
    DomainStyle(
        description="sunny campus", num_cameras=6, cams_per_id=(2, 4), imgs_per_cam=(2, 3),
        upper_scenes=("vegetation", "facade"), ground_scenes=("pavement", "grass"),
        wall_colors=((210, 196, 168), (226, 214, 190), (176, 96, 72), (190, 182, 170)),
        ground_colors=((170, 166, 158), (196, 184, 160), (150, 146, 140)),
        temperature=(1.08, 1.0, 0.86), saturation=1.15, contrast=1.05, brightness=1.06, render_scale=2.0,
        blur=0.0, noise=2.0, jpeg_quality=92, occlusion_prob=0.2, top_weights=SUMMER_TOPS,
        bottom_weights=BOTTOMS, shorts_prob=0.4, skirt_prob=0.1, coat_prob=0.0, short_sleeve_prob=0.7,
        pattern_weights=(0.4, 0.15, 0.1, 0.1, 0.25), bag_weights=(0.4, 0.25, 0.2, 0.15)),
    DomainStyle(
        description="winter campus", num_cameras=8, cams_per_id=(2, 3), imgs_per_cam=(2, 4),
        upper_scenes=("brick", "facade"), ground_scenes=("pavement", "asphalt"),
        wall_colors=((150, 70, 56), (128, 84, 70), (140, 140, 136), (110, 104, 100)),
        ground_colors=((128, 128, 130), (96, 96, 100), (150, 150, 152)),
        temperature=(0.94, 1.0, 1.08), saturation=0.8, contrast=1.0, brightness=0.94, render_scale=1.5,
        blur=0.3, noise=3.0, jpeg_quality=88, occlusion_prob=0.35, top_weights=WINTER_TOPS,
        bottom_weights=BOTTOMS, shorts_prob=0.02, skirt_prob=0.05, coat_prob=0.5, short_sleeve_prob=0.05,
        pattern_weights=(0.45, 0.1, 0.12, 0.2, 0.13), bag_weights=(0.3, 0.4, 0.2, 0.1)),
    DomainStyle(
        description="indoor mall", num_cameras=4, cams_per_id=(2, 3), imgs_per_cam=(2, 4),
        upper_scenes=("indoor_wall", "shopfront"), ground_scenes=("tiles",),
        wall_colors=((222, 218, 204), (200, 206, 210), (232, 224, 214), (190, 200, 186)),
        ground_colors=((200, 196, 188), (170, 172, 176), (216, 210, 200)),
        temperature=(0.95, 1.05, 1.0), saturation=1.0, contrast=0.9, brightness=1.1, render_scale=1.0,
        blur=0.6, noise=4.0, jpeg_quality=82, occlusion_prob=0.3, top_weights=MIXED_TOPS,
        bottom_weights=BOTTOMS, shorts_prob=0.15, skirt_prob=0.15, coat_prob=0.2, short_sleeve_prob=0.4,
        pattern_weights=(0.4, 0.15, 0.1, 0.15, 0.2), bag_weights=(0.35, 0.2, 0.25, 0.2)),
    DomainStyle(
        description="low-res street at dusk", num_cameras=3, cams_per_id=(2, 3), imgs_per_cam=(2, 3),
        upper_scenes=("brick", "vegetation", "facade"), ground_scenes=("asphalt",),
        wall_colors=((120, 90, 76), (96, 92, 90), (110, 120, 100)),
        ground_colors=((84, 84, 88), (70, 70, 72)),
        temperature=(1.06, 0.98, 0.86), saturation=0.6, contrast=0.85, brightness=0.7, render_scale=0.5,
        blur=0.7, noise=7.0, jpeg_quality=70, occlusion_prob=0.25, top_weights=MIXED_TOPS,
        bottom_weights=BOTTOMS, shorts_prob=0.1, skirt_prob=0.08, coat_prob=0.3, short_sleeve_prob=0.3,
        pattern_weights=(0.45, 0.15, 0.1, 0.15, 0.15), bag_weights=(0.4, 0.25, 0.2, 0.15)),
    DomainStyle(
        description="rainy station", num_cameras=5, cams_per_id=(2, 4), imgs_per_cam=(2, 3),
        upper_scenes=("shopfront", "facade", "brick"), ground_scenes=("tiles", "asphalt"),
        wall_colors=((150, 160, 168), (120, 132, 140), (176, 176, 170)),
        ground_colors=((110, 116, 120), (140, 144, 146)),
        temperature=(0.9, 1.0, 1.1), saturation=0.75, contrast=1.1, brightness=0.9, render_scale=1.0,
        blur=0.4, noise=5.0, jpeg_quality=80, occlusion_prob=0.4, top_weights=WINTER_TOPS,
        bottom_weights=BOTTOMS, shorts_prob=0.02, skirt_prob=0.08, coat_prob=0.6, short_sleeve_prob=0.05,
        pattern_weights=(0.5, 0.1, 0.1, 0.2, 0.1), bag_weights=(0.35, 0.3, 0.2, 0.15)),
)


def random_style(rng: np.random.Generator) -> DomainStyle:
    """A domain beyond the presets: scene, optics and fashion mixed at random."""
    uppers = ("brick", "facade", "vegetation", "indoor_wall", "shopfront")
    grounds = ("pavement", "grass", "asphalt", "tiles")

    def pick(options: Tuple[str, ...], k: int) -> Tuple[str, ...]:
        return tuple(sorted(rng.choice(options, size=k, replace=False).tolist()))

    cams = int(rng.integers(2, 9))
    tops = (SUMMER_TOPS, WINTER_TOPS, MIXED_TOPS)[int(rng.integers(3))]
    patterns = rng.dirichlet(np.full(len(PATTERNS), 3.0))
    bags = rng.dirichlet(np.full(len(BAGS), 3.0))
    return DomainStyle(
        description="random mix", num_cameras=cams, cams_per_id=(2, min(cams, int(rng.integers(2, 5)))),
        imgs_per_cam=(2, int(rng.integers(2, 5))), upper_scenes=pick(uppers, 2), ground_scenes=pick(grounds, 1),
        wall_colors=tuple(tuple(int(v) for v in rng.integers(60, 230, 3)) for _ in range(3)),
        ground_colors=tuple(tuple(int(v) for v in rng.integers(60, 200, 1).repeat(3) + rng.integers(-10, 10, 3))
                            for _ in range(2)),
        temperature=tuple(float(round(v, 3)) for v in 1.0 + rng.uniform(-0.12, 0.12, 3)),
        saturation=float(round(rng.uniform(0.55, 1.2), 3)), contrast=float(round(rng.uniform(0.85, 1.1), 3)),
        brightness=float(round(rng.uniform(0.8, 1.1), 3)), render_scale=float(rng.choice([0.5, 1.0, 1.5, 2.0])),
        blur=float(round(rng.uniform(0.0, 0.8), 3)), noise=float(round(rng.uniform(1.0, 7.0), 3)),
        jpeg_quality=int(rng.integers(70, 95)), occlusion_prob=float(round(rng.uniform(0.15, 0.4), 3)),
        top_weights=tops, bottom_weights=BOTTOMS, shorts_prob=float(round(rng.uniform(0.0, 0.4), 3)),
        skirt_prob=float(round(rng.uniform(0.0, 0.15), 3)), coat_prob=float(round(rng.uniform(0.0, 0.5), 3)),
        short_sleeve_prob=float(round(rng.uniform(0.05, 0.7), 3)),
        pattern_weights=tuple(float(round(v, 3)) for v in patterns / patterns.sum()),
        bag_weights=tuple(float(round(v, 3)) for v in bags / bags.sum()))


def domain_style(seed: int, index: int) -> DomainStyle:
    """The style of domain ``index``: a preset, or beyond them one drawn from ``(seed, index)``."""
    if index < len(PRESETS):
        return PRESETS[index]
    return random_style(np.random.default_rng([seed, index, 9]))
