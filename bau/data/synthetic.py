"""Synthetic multi-domain pedestrians: bau's built-in data set when no real re-ID data is at hand.

``generate(out_dir)`` draws several *domains* of cartoon pedestrians and writes each one in the
Market-1501 layout, so the ordinary Market parser reads them::

    out_dir/synth_a/bounding_box_train/0001_c3s1_004211_01.jpg
    out_dir/synth_a/bounding_box_test/...
    out_dir/synth_a/query/...
    out_dir/synthetic.json          # options, seed, per-domain statistics and styles

Why it is a fair stand-in for a domain-generalization benchmark:

* An **identity** is a person model with fixed clothing colours, a pattern (stripes, a chest band,
  an open jacket, a front logo), hair style and colour, shoes, an optional bag (backpack,
  cross-body bag on one side, handbag) and body proportions. Clothing colours come from a small
  shared palette with skewed weights (many people wear black, grey, navy...), so colour alone does
  not tell identities apart: the cues are *combinations and details*.
* Every image of an identity changes **viewpoint** (front/back/left/right: the logo is only on
  the front, the backpack covers the back, a side bag shows only from its side), **pose** (gait
  phase swings legs and arms), **scale and crop offset**, **partial occlusion** (a pole, a box or
  barrier, another pedestrian in front) and **lighting** (gain and a shadow gradient).
* **Domains** differ the way real data sets do: scene types and palettes (brick walls, facades,
  vegetation, shop fronts, pavement, asphalt, indoor tiles), colour temperature, saturation,
  contrast, resolution (a low-res domain is rendered small and upsampled), blur, sensor noise,
  JPEG quality, camera count, images per identity, occlusion rate and the local clothing fashion
  (summer vs winter wear).

Determinism: every random draw comes from a NumPy generator keyed by ``(seed, domain, what,
ids...)``, never from shared state, so the same seed gives byte-identical JPEGs whatever the
number of worker processes or the order in which chunks finish.

Splits follow Market: about half the ids train, the rest test; for each test id one image per
camera goes to ``query`` and the rest to ``bounding_box_test``. Every camera of an id holds at
least two images and every id is seen by at least two cameras, so each query has a gallery match
from another camera (the Market protocol ignores same-id same-camera gallery entries).
"""
from __future__ import annotations

import io
import json
import os
import shutil
from bisect import bisect_right
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from itertools import accumulate
from multiprocessing import get_all_start_methods, get_context
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from bau.core.atomic import atomic_write_json
from bau.core.errors import BauError

GENERATOR_VERSION = 1  # bump when the drawing changes: a stored synthetic.json with another version is stale
SPLIT_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
VIEWS = ("front", "back", "left", "right")  # "left": the person's left side faces the camera

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


_SUMMER_TOPS = {"white": 0.2, "black": 0.14, "grey": 0.1, "light_blue": 0.08, "blue": 0.07, "red": 0.07,
                "navy": 0.07, "pink": 0.05, "yellow": 0.05, "green": 0.05, "orange": 0.03, "teal": 0.04,
                "purple": 0.03, "beige": 0.02}
_WINTER_TOPS = {"black": 0.3, "charcoal": 0.15, "navy": 0.12, "grey": 0.1, "burgundy": 0.06, "olive": 0.06,
                "brown": 0.06, "white": 0.05, "red": 0.04, "blue": 0.04, "khaki": 0.02}
_MIXED_TOPS = {"black": 0.2, "white": 0.14, "grey": 0.1, "navy": 0.1, "blue": 0.08, "light_grey": 0.06,
               "red": 0.06, "beige": 0.05, "green": 0.05, "pink": 0.04, "purple": 0.04, "charcoal": 0.05,
               "yellow": 0.03}
_BOTTOMS = {"black": 0.32, "denim": 0.3, "grey": 0.1, "navy": 0.1, "khaki": 0.1, "charcoal": 0.04,
            "white": 0.02, "brown": 0.02}

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
        blur=0.0, noise=2.0, jpeg_quality=92, occlusion_prob=0.2, top_weights=_SUMMER_TOPS,
        bottom_weights=_BOTTOMS, shorts_prob=0.4, skirt_prob=0.1, coat_prob=0.0, short_sleeve_prob=0.7,
        pattern_weights=(0.4, 0.15, 0.1, 0.1, 0.25), bag_weights=(0.4, 0.25, 0.2, 0.15)),
    DomainStyle(
        description="winter campus", num_cameras=8, cams_per_id=(2, 3), imgs_per_cam=(2, 4),
        upper_scenes=("brick", "facade"), ground_scenes=("pavement", "asphalt"),
        wall_colors=((150, 70, 56), (128, 84, 70), (140, 140, 136), (110, 104, 100)),
        ground_colors=((128, 128, 130), (96, 96, 100), (150, 150, 152)),
        temperature=(0.94, 1.0, 1.08), saturation=0.8, contrast=1.0, brightness=0.94, render_scale=1.5,
        blur=0.3, noise=3.0, jpeg_quality=88, occlusion_prob=0.35, top_weights=_WINTER_TOPS,
        bottom_weights=_BOTTOMS, shorts_prob=0.02, skirt_prob=0.05, coat_prob=0.5, short_sleeve_prob=0.05,
        pattern_weights=(0.45, 0.1, 0.12, 0.2, 0.13), bag_weights=(0.3, 0.4, 0.2, 0.1)),
    DomainStyle(
        description="indoor mall", num_cameras=4, cams_per_id=(2, 3), imgs_per_cam=(2, 4),
        upper_scenes=("indoor_wall", "shopfront"), ground_scenes=("tiles",),
        wall_colors=((222, 218, 204), (200, 206, 210), (232, 224, 214), (190, 200, 186)),
        ground_colors=((200, 196, 188), (170, 172, 176), (216, 210, 200)),
        temperature=(0.95, 1.05, 1.0), saturation=1.0, contrast=0.9, brightness=1.1, render_scale=1.0,
        blur=0.6, noise=4.0, jpeg_quality=82, occlusion_prob=0.3, top_weights=_MIXED_TOPS,
        bottom_weights=_BOTTOMS, shorts_prob=0.15, skirt_prob=0.15, coat_prob=0.2, short_sleeve_prob=0.4,
        pattern_weights=(0.4, 0.15, 0.1, 0.15, 0.2), bag_weights=(0.35, 0.2, 0.25, 0.2)),
    DomainStyle(
        description="low-res street at dusk", num_cameras=3, cams_per_id=(2, 3), imgs_per_cam=(2, 3),
        upper_scenes=("brick", "vegetation", "facade"), ground_scenes=("asphalt",),
        wall_colors=((120, 90, 76), (96, 92, 90), (110, 120, 100)),
        ground_colors=((84, 84, 88), (70, 70, 72)),
        temperature=(1.06, 0.98, 0.86), saturation=0.6, contrast=0.85, brightness=0.7, render_scale=0.5,
        blur=0.7, noise=7.0, jpeg_quality=70, occlusion_prob=0.25, top_weights=_MIXED_TOPS,
        bottom_weights=_BOTTOMS, shorts_prob=0.1, skirt_prob=0.08, coat_prob=0.3, short_sleeve_prob=0.3,
        pattern_weights=(0.45, 0.15, 0.1, 0.15, 0.15), bag_weights=(0.4, 0.25, 0.2, 0.15)),
    DomainStyle(
        description="rainy station", num_cameras=5, cams_per_id=(2, 4), imgs_per_cam=(2, 3),
        upper_scenes=("shopfront", "facade", "brick"), ground_scenes=("tiles", "asphalt"),
        wall_colors=((150, 160, 168), (120, 132, 140), (176, 176, 170)),
        ground_colors=((110, 116, 120), (140, 144, 146)),
        temperature=(0.9, 1.0, 1.1), saturation=0.75, contrast=1.1, brightness=0.9, render_scale=1.0,
        blur=0.4, noise=5.0, jpeg_quality=80, occlusion_prob=0.4, top_weights=_WINTER_TOPS,
        bottom_weights=_BOTTOMS, shorts_prob=0.02, skirt_prob=0.08, coat_prob=0.6, short_sleeve_prob=0.05,
        pattern_weights=(0.5, 0.1, 0.1, 0.2, 0.1), bag_weights=(0.35, 0.3, 0.2, 0.15)),
)


def random_style(rng: np.random.Generator) -> DomainStyle:
    """A domain beyond the presets: scene, optics and fashion mixed at random."""
    uppers = ("brick", "facade", "vegetation", "indoor_wall", "shopfront")
    grounds = ("pavement", "grass", "asphalt", "tiles")

    def pick(options: Tuple[str, ...], k: int) -> Tuple[str, ...]:
        return tuple(sorted(rng.choice(options, size=k, replace=False).tolist()))

    cams = int(rng.integers(2, 9))
    tops = (_SUMMER_TOPS, _WINTER_TOPS, _MIXED_TOPS)[int(rng.integers(3))]
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
        top_weights=tops, bottom_weights=_BOTTOMS, shorts_prob=float(round(rng.uniform(0.0, 0.4), 3)),
        skirt_prob=float(round(rng.uniform(0.0, 0.15), 3)), coat_prob=float(round(rng.uniform(0.0, 0.5), 3)),
        short_sleeve_prob=float(round(rng.uniform(0.05, 0.7), 3)),
        pattern_weights=tuple(float(round(v, 3)) for v in patterns / patterns.sum()),
        bag_weights=tuple(float(round(v, 3)) for v in bags / bags.sum()))


def domain_names(num_domains: int) -> List[str]:
    """``synth_a``, ``synth_b``, ... ``synth_z``, ``synth_aa``, ``synth_ab``, ..."""
    names = []
    for i in range(num_domains):
        letters, k = "", i
        while True:
            letters = chr(ord("a") + k % 26) + letters
            k = k // 26 - 1
            if k < 0:
                break
        names.append(f"synth_{letters}")
    return names


def domain_style(seed: int, index: int) -> DomainStyle:
    if index < len(PRESETS):
        return PRESETS[index]
    return random_style(np.random.default_rng([seed, index, 9]))


# -- identities --------------------------------------------------------------------------------
@dataclass
class Person:
    """One identity: what stays the same in every image of it."""

    skin: RGB
    hair: RGB
    hair_style: str
    cap: RGB
    top: RGB
    top_name: str
    second: RGB  # stripes / band / inner shirt / logo colour
    pattern: str
    logo_shape: str
    stripe_period: float  # in person heights
    sleeves: str  # "long" | "short"
    top_length: float  # how far below the hip the top reaches (coats), in person heights
    bottom: RGB
    bottom_kind: str  # "trousers" | "shorts" | "skirt"
    shoes: RGB
    bag: str
    bag_color: RGB
    bag_side: str  # "L" | "R": the person's side the bag hangs on
    bag_size: float
    build: float  # width multiplier
    head_scale: float
    leg_ratio: float  # leg length / height
    stride: float


def _choose(rng: np.random.Generator, weights: Sequence[float]) -> int:
    """An index drawn with probability proportional to ``weights`` (one uniform draw)."""
    cumulative = list(accumulate(weights))
    return min(bisect_right(cumulative, rng.random() * cumulative[-1]), len(cumulative) - 1)


def _weighted(rng: np.random.Generator, weights: Dict[str, float]) -> str:
    names = list(weights)
    return names[_choose(rng, list(weights.values()))]


def _jitter(rng: np.random.Generator, color: RGB, std: float = 7.0) -> RGB:
    return tuple(int(v) for v in np.clip(np.array(color) + rng.normal(0, std, 3), 0, 255))  # type: ignore[return-value]


def sample_person(rng: np.random.Generator, style: DomainStyle) -> Person:
    """Draw an identity from the domain's fashion. Colours repeat across people on purpose."""
    top_name = _weighted(rng, style.top_weights)
    second_name = top_name
    while second_name == top_name:
        second_name = _weighted(rng, _MIXED_TOPS)
    pattern = PATTERNS[_choose(rng, style.pattern_weights)]
    u = rng.random()
    bottom_kind = "shorts" if u < style.shorts_prob else ("skirt" if u < style.shorts_prob + style.skirt_prob
                                                          else "trousers")
    bag = BAGS[_choose(rng, style.bag_weights)]
    return Person(
        skin=_jitter(rng, SKIN[int(rng.integers(len(SKIN)))], 5),
        hair=_jitter(rng, HAIR[_choose(rng, HAIR_WEIGHTS)], 5),
        hair_style=_weighted(rng, HAIR_STYLES),
        cap=_jitter(rng, PALETTE[_weighted(rng, _MIXED_TOPS)]),
        top=_jitter(rng, PALETTE[top_name]), top_name=top_name,
        second=_jitter(rng, PALETTE[second_name]), pattern=pattern,
        logo_shape=LOGO_SHAPES[int(rng.integers(len(LOGO_SHAPES)))],
        stripe_period=float(rng.uniform(0.035, 0.06)),
        sleeves="short" if rng.random() < style.short_sleeve_prob else "long",
        top_length=float(rng.uniform(0.1, 0.2)) if rng.random() < style.coat_prob else float(rng.uniform(0.0, 0.03)),
        bottom=_jitter(rng, PALETTE[_weighted(rng, style.bottom_weights)]), bottom_kind=bottom_kind,
        shoes=_jitter(rng, PALETTE[_weighted(rng, SHOES)]),
        bag=bag, bag_color=_jitter(rng, PALETTE[_weighted(rng, _MIXED_TOPS)]),
        bag_side="L" if rng.random() < 0.5 else "R", bag_size=float(rng.uniform(0.8, 1.15)),
        build=float(rng.uniform(0.85, 1.2)), head_scale=float(rng.uniform(0.9, 1.1)),
        leg_ratio=float(rng.uniform(0.44, 0.52)), stride=float(rng.uniform(0.8, 1.2)))


def _shade(color: RGB, factor: float) -> RGB:
    return tuple(int(min(255, max(0, c * factor))) for c in color)  # type: ignore[return-value]


def draw_person(draw: ImageDraw.ImageDraw, p: Person, view: str, swing: float, cx: float, top: float,
                h: float) -> None:
    """Draw ``p`` seen from ``view`` with gait phase ``swing`` in [-1, 1]; ``h`` is the body height in
    pixels, ``(cx, top)`` the top-centre of the head. Body coordinates are in units of ``h``."""
    side = view in ("left", "right")
    facing = -1.0 if view == "left" else 1.0  # image direction the nose points in a side view
    b = p.build

    def X(u: float) -> float:
        return cx + u * h

    def Y(v: float) -> float:
        return top + v * h

    def poly(points: Sequence[Tuple[float, float]], color: RGB) -> None:
        draw.polygon([(X(u), Y(v)) for u, v in points], fill=color)

    def line(u0: float, v0: float, u1: float, v1: float, width: float, color: RGB) -> None:
        draw.line([(X(u0), Y(v0)), (X(u1), Y(v1))], fill=color, width=max(1, int(round(width * h))))

    def ellipse(u0: float, v0: float, u1: float, v1: float, color: RGB) -> None:
        x0, x1 = sorted((X(u0), X(u1)))
        draw.ellipse([x0, Y(v0), x1, Y(v1)], fill=color)

    r_head = 0.062 * p.head_scale
    v_head = r_head + 0.004
    v_sh = 2 * r_head + 0.022
    v_hip = 1.0 - p.leg_ratio
    v_end = v_hip + p.top_length
    v_knee = v_hip + 0.5 * p.leg_ratio
    shoe_h = 0.03
    w_sh = (0.066 if side else 0.106) * b
    w_hip = (0.062 if side else 0.086) * b
    w_leg = 0.036 * b
    w_arm = 0.03 * b
    # Which image side the person's left is on (front: image right; back: image left).
    left_sign = {"front": 1.0, "back": -1.0}.get(view, 0.0)
    bag_visible_side = side and ((view == "left") == (p.bag_side == "L"))

    def half_width(v: float) -> float:  # torso half width at height v (linear from shoulders to hem)
        t = (v - v_sh) / max(1e-6, v_end - v_sh)
        return w_sh + (w_hip * 1.08 - w_sh) * t

    # -- things behind the body ------------------------------------------------------------
    if side and p.bag == "backpack":
        back = -facing
        d = 0.075 * p.bag_size
        u_edge = back * w_sh * 0.9
        poly([(u_edge, v_sh + 0.02), (u_edge + back * d, v_sh + 0.04), (u_edge + back * d, v_hip - 0.02),
              (u_edge, v_hip - 0.01)], p.bag_color)
    if side and p.bag in ("shoulder", "handbag") and not bag_visible_side:
        s = 0.05 * p.bag_size
        poly([(-facing * 0.02 - s, v_hip - 0.03), (-facing * 0.02 + s, v_hip - 0.03),
              (-facing * 0.02 + s, v_hip + 0.06), (-facing * 0.02 - s, v_hip + 0.06)], _shade(p.bag_color, 0.7))
    if side:  # far arm, in shadow, swinging against the near one
        hand_u = -0.11 * swing * facing
        line(0.0, v_sh + 0.02, hand_u, v_hip + 0.03, 2 * w_arm, _shade(p.skin, 0.75))
        sleeve_t = 0.35 if p.sleeves == "short" else 0.9
        line(0.0, v_sh + 0.02, hand_u * sleeve_t, v_sh + 0.02 + (v_hip + 0.03 - v_sh - 0.02) * sleeve_t,
             2 * w_arm * 1.1, _shade(p.top, 0.75))
    if p.hair_style == "long" and view == "front":  # hair falling behind the shoulders
        poly([(-r_head * 1.0, v_head), (r_head * 1.0, v_head), (r_head * 1.15, v_sh + 0.07),
              (-r_head * 1.15, v_sh + 0.07)], p.hair)

    # -- legs and shoes -----------------------------------------------------------------------
    if side:
        stride = 0.11 * p.stride * swing
        feet = [(0.0, facing * stride, 0.0), (0.0, -facing * stride, 0.012 * abs(swing))]
    else:
        spread = 0.045 * b
        feet = [(-spread, -spread * 1.1, 0.02 * max(0.0, swing)), (spread, spread * 1.1, 0.02 * max(0.0, -swing))]
    for k, (hip_u, foot_u, lift) in enumerate(feet):
        far = side and k == 1
        v_ankle = 1.0 - shoe_h - lift
        leg_color = p.bottom if p.bottom_kind == "trousers" else p.skin
        if far:
            leg_color = _shade(leg_color, 0.8)
        poly([(hip_u - w_leg, v_hip), (hip_u + w_leg, v_hip), (foot_u + w_leg * 0.8, v_ankle),
              (foot_u - w_leg * 0.8, v_ankle)], leg_color)
        if p.bottom_kind == "shorts":
            t = (v_knee - 0.02 - v_hip) / (v_ankle - v_hip)
            ku = hip_u + (foot_u - hip_u) * t
            poly([(hip_u - w_leg * 1.1, v_hip), (hip_u + w_leg * 1.1, v_hip), (ku + w_leg * 1.05, v_knee - 0.02),
                  (ku - w_leg * 1.05, v_knee - 0.02)], _shade(p.bottom, 0.8) if far else p.bottom)
        toe = 0.035 * facing if side else 0.0
        shoe = _shade(p.shoes, 0.8) if far else p.shoes
        poly([(foot_u - w_leg * 0.95 + min(0.0, toe), v_ankle), (foot_u + w_leg * 0.95 + max(0.0, toe), v_ankle),
              (foot_u + w_leg * 0.95 + max(0.0, toe), 1.0 - lift), (foot_u - w_leg * 0.95 + min(0.0, toe), 1.0 - lift)],
             shoe)
    if p.bottom_kind == "trousers" or p.bottom_kind == "shorts":
        poly([(-w_hip, v_hip - 0.01), (w_hip, v_hip - 0.01), (w_hip, v_hip + 0.04), (-w_hip, v_hip + 0.04)], p.bottom)
    else:  # skirt: a trapezoid from the hip to above the knee
        poly([(-w_hip, v_hip - 0.01), (w_hip, v_hip - 0.01), (w_hip * 1.6, v_knee - 0.03),
              (-w_hip * 1.6, v_knee - 0.03)], p.bottom)

    # -- torso and its pattern --------------------------------------------------------------
    line(0.0, v_head + r_head * 0.6, 0.0, v_sh + 0.01, 0.05 * b, p.skin)  # neck
    poly([(-w_sh, v_sh), (w_sh, v_sh), (w_hip * 1.08, v_end), (-w_hip * 1.08, v_end)], p.top)
    ellipse(-w_sh - 0.012, v_sh - 0.008, -w_sh + 0.05, v_sh + 0.04, p.top)  # rounded shoulders
    ellipse(w_sh - 0.05, v_sh - 0.008, w_sh + 0.012, v_sh + 0.04, p.top)

    def band(v0: float, v1: float, color: RGB) -> None:
        poly([(-half_width(v0), v0), (half_width(v0), v0), (half_width(v1), v1), (-half_width(v1), v1)], color)

    if p.pattern == "stripes":
        v = v_sh + 0.03
        while v + p.stripe_period * 0.5 < v_end - 0.01:
            band(v, v + p.stripe_period * 0.5, p.second)
            v += p.stripe_period
    elif p.pattern == "band":
        band(v_sh + 0.07, v_sh + 0.12, p.second)
    elif p.pattern == "jacket":  # open jacket: the inner shirt shows in front, a sliver from the side
        if view == "front":
            poly([(-0.3 * w_sh, v_sh), (0.3 * w_sh, v_sh), (0.22 * w_sh, v_end), (-0.22 * w_sh, v_end)], p.second)
        elif side:
            edge = facing * w_sh
            poly([(edge - facing * 0.02, v_sh), (edge, v_sh), (facing * w_hip, v_end),
                  (facing * w_hip - facing * 0.015, v_end)], p.second)
    elif p.pattern == "logo" and view == "front":
        s = 0.04 * b
        vc = v_sh + 0.1
        if p.logo_shape == "circle":
            ellipse(-s, vc - s, s, vc + s, p.second)
        elif p.logo_shape == "square":
            poly([(-s, vc - s), (s, vc - s), (s, vc + s), (-s, vc + s)], p.second)
        elif p.logo_shape == "triangle":
            poly([(0.0, vc - s * 1.1), (s * 1.1, vc + s), (-s * 1.1, vc + s)], p.second)
        else:
            poly([(0.0, vc - s * 1.2), (s, vc), (0.0, vc + s * 1.2), (-s, vc)], p.second)

    # -- arms ------------------------------------------------------------------------------------
    sleeve_t = 0.35 if p.sleeves == "short" else 0.9
    if side:
        arms = [(0.0, 0.11 * swing * facing)]
    else:
        arms = [(-w_sh + w_arm * 0.6, -w_sh - 0.014), (w_sh - w_arm * 0.6, w_sh + 0.014)]
    for k, (sh_u, hand_u) in enumerate(arms):
        v_hand = v_hip + 0.03 - (0.0 if side else 0.015 * abs(swing))
        line(sh_u, v_sh + 0.02, hand_u, v_hand, 2 * w_arm, p.skin)
        ellipse(hand_u - w_arm, v_hand - w_arm * 0.6, hand_u + w_arm, v_hand + w_arm * 1.2, p.skin)
        line(sh_u, v_sh + 0.02, sh_u + (hand_u - sh_u) * sleeve_t, v_sh + 0.02 + (v_hand - v_sh - 0.02) * sleeve_t,
             2 * w_arm * 1.12, p.top)

    # -- head and hair ---------------------------------------------------------------------------
    hu = 0.01 * facing if side else 0.0
    rw, rh = r_head * 0.86, r_head
    if view == "back" or p.hair_style != "buzz":
        hair_box = [X(hu - rw * 1.08), Y(v_head - rh * 1.08), X(hu + rw * 1.08), Y(v_head + rh * 1.02)]
    if view == "back":
        draw.ellipse(hair_box, fill=p.hair if p.hair_style != "buzz" else _shade(p.hair, 0.6))
        if p.hair_style == "long":
            poly([(-rw * 1.05, v_head), (rw * 1.05, v_head), (rw * 1.2, v_sh + 0.09), (-rw * 1.2, v_sh + 0.09)], p.hair)
        if p.hair_style == "ponytail":
            ellipse(-0.02, v_head + rh * 0.5, 0.02, v_head + rh * 1.6, p.hair)
    else:
        ellipse(hu - rw, v_head - rh, hu + rw, v_head + rh, p.skin)
        if p.hair_style == "buzz":
            draw.chord([X(hu - rw), Y(v_head - rh), X(hu + rw), Y(v_head + rh)], 190, 350,
                       fill=tuple((np.array(p.hair) * 0.6 + np.array(p.skin) * 0.4).astype(int).tolist()))
        elif side:
            # Hair on top and on the back half of the head; the face shows towards ``facing``.
            start, end = (100, 360) if facing > 0 else (180, 440)
            draw.pieslice(hair_box, start, end, fill=p.hair)
            if p.hair_style == "long":
                poly([(hu - facing * rw * 0.2, v_head), (hu - facing * rw * 1.1, v_head),
                      (hu - facing * rw * 1.2, v_sh + 0.07), (hu - facing * rw * 0.3, v_sh + 0.07)], p.hair)
            if p.hair_style == "ponytail":
                ellipse(hu - facing * rw * 1.5, v_head - 0.01, hu - facing * rw * 0.8, v_head + rh * 1.2, p.hair)
        else:
            draw.chord(hair_box, 180, 360, fill=p.hair)
            if p.hair_style == "long":  # strands beside the face
                poly([(-rw * 1.08, v_head), (-rw * 0.8, v_head), (-rw * 0.85, v_sh + 0.05),
                      (-rw * 1.15, v_sh + 0.05)], p.hair)
                poly([(rw * 0.8, v_head), (rw * 1.08, v_head), (rw * 1.15, v_sh + 0.05), (rw * 0.85, v_sh + 0.05)],
                     p.hair)
    if p.hair_style == "cap":
        draw.chord([X(hu - rw * 1.12), Y(v_head - rh * 1.12), X(hu + rw * 1.12), Y(v_head + rh * 0.6)], 180, 360,
                   fill=p.cap)
        if view == "front":
            ellipse(hu - rw * 1.1, v_head - rh * 0.4, hu + rw * 1.1, v_head - rh * 0.05, _shade(p.cap, 0.8))
        elif side:
            poly([(hu, v_head - rh * 0.3), (hu + facing * rw * 1.7, v_head - rh * 0.3),
                  (hu + facing * rw * 1.7, v_head - rh * 0.15), (hu, v_head - rh * 0.15)], _shade(p.cap, 0.8))

    # -- bags in front of the body -----------------------------------------------------------------
    if p.bag == "backpack":
        if view == "back":
            s = p.bag_size
            poly([(-w_sh * 0.75 * s, v_sh + 0.025), (w_sh * 0.75 * s, v_sh + 0.025),
                  (w_sh * 0.8 * s, v_hip - 0.02), (-w_sh * 0.8 * s, v_hip - 0.02)], p.bag_color)
            band_v = v_sh + 0.09
            poly([(-w_sh * 0.6 * s, band_v), (w_sh * 0.6 * s, band_v), (w_sh * 0.6 * s, band_v + 0.012),
                  (-w_sh * 0.6 * s, band_v + 0.012)], _shade(p.bag_color, 0.7))
        elif view == "front":
            for sgn in (-1.0, 1.0):
                line(sgn * w_sh * 0.55, v_sh, sgn * w_sh * 0.62, v_sh + 0.16, 0.018, _shade(p.bag_color, 0.8))
        else:
            line(0.0, v_sh + 0.005, -facing * w_sh * 0.5, v_sh + 0.15, 0.018, _shade(p.bag_color, 0.8))
    elif p.bag == "shoulder":
        s = 0.05 * p.bag_size
        if side:
            if bag_visible_side:
                line(0.0, v_sh, 0.0, v_hip - 0.02, 0.012, _shade(p.bag_color, 0.7))
                poly([(-s * 1.2, v_hip - 0.04), (s * 1.2, v_hip - 0.04), (s * 1.2, v_hip + 0.06),
                      (-s * 1.2, v_hip + 0.06)], p.bag_color)
        else:
            bag_u = left_sign * (1.0 if p.bag_side == "L" else -1.0) * (w_hip + 0.02)
            line(-bag_u * 0.7, v_sh, bag_u * 0.9, v_hip - 0.03, 0.014, _shade(p.bag_color, 0.7))
            poly([(bag_u - s, v_hip - 0.04), (bag_u + s, v_hip - 0.04), (bag_u + s, v_hip + 0.06),
                  (bag_u - s, v_hip + 0.06)], p.bag_color)
    elif p.bag == "handbag":
        s = 0.04 * p.bag_size
        if side:
            if bag_visible_side:
                hand_u = 0.11 * swing * facing
                poly([(hand_u - s, v_hip + 0.04), (hand_u + s, v_hip + 0.04), (hand_u + s * 1.2, v_hip + 0.12),
                      (hand_u - s * 1.2, v_hip + 0.12)], p.bag_color)
        else:
            hand_u = left_sign * (1.0 if p.bag_side == "L" else -1.0) * (w_sh + 0.014)
            poly([(hand_u - s, v_hip + 0.04), (hand_u + s, v_hip + 0.04), (hand_u + s * 1.2, v_hip + 0.12),
                  (hand_u - s * 1.2, v_hip + 0.12)], p.bag_color)


# -- scenes ------------------------------------------------------------------------------------
def _value_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth noise in [0, 1], shape (h, w): a coarse random grid upsampled bilinearly."""
    cell = max(1.0, cell)
    gh, gw = int(h / cell) + 2, int(w / cell) + 2
    grid = rng.random((gh, gw), dtype=np.float32)
    return np.asarray(Image.fromarray(grid).resize((w, h), Image.BILINEAR), dtype=np.float32)


def _lerp_colors(t: np.ndarray, c0: Sequence[float], c1: Sequence[float]) -> np.ndarray:
    t = t[..., None]
    return np.asarray(c0, np.float32) * (1 - t) + np.asarray(c1, np.float32) * t


def _pick(rng: np.random.Generator, colors: Sequence[RGB], std: float = 10.0) -> np.ndarray:
    return np.clip(np.asarray(colors[int(rng.integers(len(colors)))], np.float32) + rng.normal(0, std, 3), 0, 255)


def _upper_scene(kind: str, rng: np.random.Generator, h: int, w: int, s: float, style: DomainStyle) -> np.ndarray:
    """Behind the person above the horizon, (h, w, 3) float; ``s`` = canvas pixels per output pixel."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = _pick(rng, style.wall_colors)
    if kind == "brick":
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
    if kind == "facade":
        img = base + (_value_noise(rng, h, w, 20 * s)[..., None] - 0.5) * 20
        ww, wh = rng.uniform(8, 14) * s, rng.uniform(10, 18) * s
        px, py = ww * rng.uniform(1.6, 2.4), wh * rng.uniform(1.4, 2.0)
        ox, oy = rng.uniform(0, px), rng.uniform(0, py)
        inside = (((xx + ox) % px) < ww) & (((yy + oy) % py) < wh)
        glass = np.clip(np.array([70, 84, 100], np.float32) + rng.normal(0, 10, 3), 0, 255)
        img[inside] = glass + (yy[inside, None] % max(1, int(py))) * 1.2
        return img
    if kind == "vegetation":
        n = 0.65 * _value_noise(rng, h, w, 10 * s) + 0.35 * _value_noise(rng, h, w, 3 * s)
        dark = np.array([30, 62, 30], np.float32) + rng.normal(0, 8, 3)
        light = np.array([104, 150, 70], np.float32) + rng.normal(0, 12, 3)
        img = _lerp_colors(np.clip(n * 1.4 - 0.2, 0, 1), dark, light)
        trunks = (_value_noise(rng, 1, w, 14 * s)[0] > 0.8)[None, :] & (yy > h * 0.5)
        img[trunks] = np.array([72, 54, 38], np.float32)
        return img
    if kind == "indoor_wall":
        img = base + (_value_noise(rng, h, w, 30 * s)[..., None] - 0.5) * 16
        period = max(4, int(rng.uniform(18, 30) * s))
        img[(xx % period) < max(1, int(s))] *= 0.8
        return img
    if kind == "shopfront":
        img = base + (_value_noise(rng, h, w, 30 * s)[..., None] - 0.5) * 12
        x = 0.0
        while x < w:  # shop windows and signs side by side
            sw = rng.uniform(14, 30) * s
            color = np.asarray(PALETTE[list(PALETTE)[int(rng.integers(len(PALETTE)))]], np.float32)
            y0 = int(h * rng.uniform(0.15, 0.35))
            img[y0:y0 + int(5 * s), int(x):int(x + sw)] = color
            img[y0 + int(6 * s):, int(x + 2 * s):int(x + sw - 2 * s)] = np.clip(color * 0.4 + 70, 0, 255)
            x += sw + rng.uniform(3, 8) * s
        return img
    raise ValueError(f"unknown scene {kind!r}")


def _ground_scene(kind: str, rng: np.random.Generator, h: int, w: int, s: float, style: DomainStyle) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    base = _pick(rng, style.ground_colors)
    if kind == "pavement" or kind == "tiles":
        size = max(3, int(rng.uniform(8, 12) * s if kind == "pavement" else rng.uniform(14, 22) * s))
        row, col = yy // size, xx // size
        per_tile = rng.normal(0, 10 if kind == "pavement" else 4, (int(row.max()) + 1, int(col.max()) + 1, 1))
        img = base + per_tile.astype(np.float32)[row, col]
        if kind == "tiles":
            img = img + ((row + col) % 2)[..., None] * rng.uniform(-18, 18)
        grout = (yy % size < max(1, int(s * 0.7))) | (xx % size < max(1, int(s * 0.7)))
        img[grout] *= 0.75
        return img
    if kind == "grass":
        n = 0.5 * _value_noise(rng, h, w, 6 * s) + 0.5 * _value_noise(rng, h, w, 1.5 * s)
        return _lerp_colors(n, np.array([50, 90, 36], np.float32) + rng.normal(0, 6, 3),
                            np.array([116, 150, 70], np.float32) + rng.normal(0, 8, 3))
    if kind == "asphalt":
        img = base + (rng.random((h, w, 1), dtype=np.float32) - 0.5) * 24
        y_line = int(h * rng.uniform(0.3, 0.8))
        img[y_line:y_line + max(1, int(2 * s))] = (210, 200, 150) if rng.random() < 0.5 else (220, 220, 220)
        return img
    raise ValueError(f"unknown ground {kind!r}")


@dataclass
class Camera:
    """A camera of a domain: its scene (wider than a crop), viewpoint habits, colour cast, scale."""

    scene: Image.Image  # RGB, at canvas resolution, wider and taller than one crop
    view_probs: np.ndarray  # over VIEWS
    gain: float
    cast: np.ndarray  # (3,) RGB gains
    scale_range: Tuple[float, float]  # body height as a fraction of the image height
    shadow: float  # strength of the lighting gradient


def make_camera(rng: np.random.Generator, style: DomainStyle, canvas_h: int, canvas_w: int) -> Camera:
    s = canvas_h / 128.0
    hs, ws = int(canvas_h * 1.15), int(canvas_w * 2.2)
    horizon = int(hs * rng.uniform(0.45, 0.7))
    upper = _upper_scene(str(rng.choice(style.upper_scenes)), rng, horizon, ws, s, style)
    ground = _ground_scene(str(rng.choice(style.ground_scenes)), rng, hs - horizon, ws, s, style)
    scene = np.concatenate([upper, ground], axis=0)
    # A vertical light gradient, its direction and strength fixed per camera (sky, lamps, shade).
    scene *= np.linspace(rng.uniform(0.85, 1.1), rng.uniform(0.9, 1.1), hs, dtype=np.float32)[:, None, None]
    lo = rng.uniform(0.74, 0.86)
    return Camera(scene=Image.fromarray(np.clip(scene, 0, 255).astype(np.uint8)),
                  view_probs=rng.dirichlet(np.full(4, 1.2)),
                  gain=float(rng.uniform(0.85, 1.15)), cast=1.0 + rng.normal(0, 0.05, 3),
                  scale_range=(lo, min(0.98, lo + rng.uniform(0.1, 0.18))), shadow=float(rng.uniform(0.0, 0.3)))


def render_image(person: Person, camera: Camera, style: DomainStyle, rng: np.random.Generator, height: int,
                 width: int, occluder: Optional[Person] = None) -> Image.Image:
    """One RGB image (``height`` x ``width``) of ``person`` seen by ``camera`` in ``style``'s domain."""
    ch, cw = camera_canvas(style, height, width)
    ws, hs = camera.scene.size
    y0, x0 = int(rng.integers(0, hs - ch + 1)), int(rng.integers(0, ws - cw + 1))
    canvas = camera.scene.crop((x0, y0, x0 + cw, y0 + ch))
    draw = ImageDraw.Draw(canvas)

    view = VIEWS[_choose(rng, camera.view_probs.tolist())]
    h = ch * rng.uniform(*camera.scale_range)
    top = (ch - h) * rng.uniform(0.25, 0.85) + ch * rng.normal(0, 0.02)  # crop offset, sometimes cuts feet/head
    cx = cw * (0.5 + rng.uniform(-0.08, 0.08))
    draw_person(draw, person, view, float(rng.uniform(-1, 1)), cx, top, h)

    if occluder is not None:
        kind = int(rng.integers(3))
        if kind == 0:  # pole or tree trunk
            pw = cw * rng.uniform(0.07, 0.14)
            px = cw * rng.uniform(0.1, 0.9)
            color = _shade((120, 120, 124), rng.uniform(0.4, 1.3))
            draw.rectangle([px - pw / 2, 0, px + pw / 2, ch], fill=color)
        elif kind == 1:  # box, bin or barrier in front of the legs
            bh = ch * rng.uniform(0.18, 0.38)
            bx0 = cw * rng.uniform(-0.3, 0.4)
            color = tuple(int(v) for v in _pick(rng, ((112, 86, 60), (90, 96, 90), (150, 146, 140), (60, 80, 120)),
                                                 20))
            draw.rectangle([bx0, ch - bh, bx0 + cw * rng.uniform(0.5, 1.0), ch], fill=color)
            draw.rectangle([bx0, ch - bh, bx0 + cw, ch - bh + max(1, ch * 0.02)], fill=_shade(color, 1.3))
        else:  # another pedestrian walking past in front, half out of the frame
            side = -1 if rng.random() < 0.5 else 1
            draw_person(draw, occluder, VIEWS[int(rng.integers(4))], float(rng.uniform(-1, 1)),
                        cw * (0.5 + side * rng.uniform(0.55, 0.75)), top + ch * rng.normal(0, 0.03),
                        h * rng.uniform(0.95, 1.1))

    img = canvas.resize((width, height), Image.BILINEAR) if (cw, ch) != (width, height) else canvas
    if style.blur > 0:
        img = img.filter(ImageFilter.GaussianBlur(style.blur * rng.uniform(0.7, 1.3)))
    # Lighting: a global gain and a linear shadow across the image, then the camera's colour cast
    # and the domain's colour temperature, saturation and contrast.
    angle = rng.uniform(0, 2 * np.pi)
    yy = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    xx = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    ramp = 1.0 + camera.shadow * rng.uniform(0.5, 1.0) * (np.cos(angle) * xx + np.sin(angle) * yy)
    gains = camera.gain * rng.uniform(0.78, 1.22) * style.brightness * camera.cast * np.asarray(style.temperature)
    a = colour_transform(np.asarray(img, dtype=np.float32), ramp, gains, style.saturation, style.contrast)
    if style.noise > 0:  # uniform noise with the requested std: a third of the cost of Gaussian draws
        a += (rng.random(a.shape, dtype=np.float32) - np.float32(0.5)) * np.float32(style.noise * 12 ** 0.5)
    return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8))


def colour_transform(rgb: np.ndarray, light: np.ndarray, gains: np.ndarray, saturation: float,
                     contrast: float) -> np.ndarray:
    """Lighting and colour grading of an image, as one linear map per pixel.

    ``rgb``: (H, W, 3) float; ``light``: (H, W) per-pixel brightness; ``gains``: (3,) RGB gains
    (colour temperature, camera cast, exposure). The result is, per pixel,
    ``c' = contrast * (grey + saturation * (c - grey) - 128) + 128`` with ``c = light * gains * rgb``
    and ``grey`` the mean of ``c`` over channels; returned as (H, W, 3) float32 (not clipped).
    Saturation and contrast are linear, so they fold into one 3x3 matrix.
    """
    s = float(saturation)
    saturate = s * np.eye(3) + (1.0 - s) / 3.0 * np.ones((3, 3))  # row i: s * c_i + (1 - s) * grey
    matrix = (float(contrast) * saturate * np.asarray(gains, np.float64)[None, :]).astype(np.float32)
    lit = np.asarray(rgb, np.float32) * np.asarray(light, np.float32)[..., None]
    return lit @ matrix.T + np.float32(128.0 * (1.0 - float(contrast)))


def camera_canvas(style: DomainStyle, height: int, width: int) -> Tuple[int, int]:
    """Drawing size (h, w): supersampled for crisp domains, small for low-resolution ones."""
    return max(16, int(round(height * style.render_scale))), max(8, int(round(width * style.render_scale)))


# -- the plan: which files exist ---------------------------------------------------------------
@dataclass
class Shot:
    """One image to render: its file, identity, camera (0-based) and index within the identity."""

    split: str
    filename: str
    pid: int
    cam: int
    index: int


def plan_domain(rng: np.random.Generator, style: DomainStyle, num_ids: int, num_cameras: int,
                images_per_id: Optional[int]) -> List[Shot]:
    """Split ids into train/test, choose cameras, image counts, frame numbers and query images.

    Every id gets >= 2 cameras and >= 2 images per camera, so after taking one query per camera
    each query still has gallery images of its id from another camera.
    """
    pids = rng.permutation(np.arange(1, num_ids + 1))
    train_ids = set(int(p) for p in pids[: num_ids // 2])
    shots: List[Shot] = []
    for pid in range(1, num_ids + 1):
        if images_per_id is None:
            lo, hi = style.cams_per_id
            n_cams = int(rng.integers(max(2, lo), max(2, min(hi, num_cameras)) + 1))
            counts = rng.integers(style.imgs_per_cam[0], style.imgs_per_cam[1] + 1, n_cams)
        else:
            n_cams = min(num_cameras, images_per_id // 2)
            counts = np.full(n_cams, images_per_id // n_cams)
            counts[: images_per_id - int(counts.sum())] += 1
        cams = np.sort(rng.choice(num_cameras, size=n_cams, replace=False))
        index = 0
        for cam, count in zip(cams.tolist(), counts.tolist()):
            # Increasing frame numbers within (id, camera): names are unique and look like video.
            frames = int(rng.integers(1, 20000)) + np.cumsum(rng.integers(25, 3000, count))
            query_k = -1 if pid in train_ids else int(rng.integers(count))
            for k, frame in enumerate(frames.tolist()):
                split = "train" if pid in train_ids else ("query" if k == query_k else "gallery")
                seq = min(6, 1 + frame // 25000)
                name = f"{pid:04d}_c{cam + 1}s{seq}_{frame:06d}_01.jpg"
                shots.append(Shot(split, name, pid, cam, index))
                index += 1
    return shots


# -- rendering (one task = a chunk of ids of one domain; picklable for worker processes) --------
@dataclass
class _Task:
    folder: str
    seed: int
    domain: int
    style: DomainStyle
    height: int
    width: int
    shots: List[Shot] = field(default_factory=list)


def _render_task(task: _Task) -> int:
    ch, cw = camera_canvas(task.style, task.height, task.width)
    cameras: Dict[int, Camera] = {}
    people: Dict[int, Person] = {}
    for shot in task.shots:
        if shot.cam not in cameras:
            cameras[shot.cam] = make_camera(np.random.default_rng([task.seed, task.domain, 2, shot.cam]), task.style,
                                            ch, cw)
        if shot.pid not in people:
            people[shot.pid] = sample_person(np.random.default_rng([task.seed, task.domain, 1, shot.pid]), task.style)
        rng = np.random.default_rng([task.seed, task.domain, 3, shot.pid, shot.index])
        occluder = sample_person(rng, task.style) if rng.random() < task.style.occlusion_prob else None
        img = render_image(people[shot.pid], cameras[shot.cam], task.style, rng, task.height, task.width, occluder)
        buffer = io.BytesIO()  # encode in memory, then one write: file creation is the slow part here
        img.save(buffer, "JPEG", quality=task.style.jpeg_quality)
        with open(os.path.join(task.folder, SPLIT_DIRS[shot.split], shot.filename), "wb") as f:
            f.write(buffer.getvalue())
    return len(task.shots)


def _describe(shots: List[Shot], split: str) -> Dict[str, int]:
    sel = [s for s in shots if s.split == split]
    return {"ids": len({s.pid for s in sel}), "images": len(sel), "cameras": len({s.cam for s in sel})}


def _options(num_domains: int, ids_per_domain: int, seed: int, height: int, width: int,
             images_per_id: Optional[int], num_cameras: Optional[int]) -> Dict[str, object]:
    return {"num_domains": num_domains, "ids_per_domain": ids_per_domain, "seed": seed, "height": height,
            "width": width, "images_per_id": images_per_id, "num_cameras": num_cameras}


def _check_options(num_domains: int, ids_per_domain: int, height: int, width: int, images_per_id: Optional[int],
                   num_cameras: Optional[int], workers: int) -> None:
    if num_domains < 1:
        raise BauError(f"synthetic option num_domains={num_domains}: expected >= 1")
    if ids_per_domain < 2:
        raise BauError(f"synthetic option ids_per_domain={ids_per_domain}: expected >= 2 (train and test ids)")
    if height < 128 or width < 64:
        raise BauError(f"synthetic option height x width = {height}x{width}: expected at least 128x64")
    if images_per_id is not None and images_per_id < 4:
        raise BauError(f"synthetic option images_per_id={images_per_id}: expected >= 4 "
                       "(two cameras with two images each, so every query has a cross-camera match)")
    if num_cameras is not None and not 2 <= num_cameras <= 9:
        raise BauError(f"synthetic option num_cameras={num_cameras}: expected 2..9 (Market names use one digit)")
    if workers < 0:
        raise BauError(f"synthetic option workers={workers}: expected >= 0 (0 = one per CPU core)")


def generate(out_dir: str, num_domains: int = 4, ids_per_domain: int = 240, seed: int = 0, height: int = 128,
             width: int = 64, images_per_id: Optional[int] = None, num_cameras: Optional[int] = None,
             workers: int = 0, overwrite: bool = False) -> Dict[str, object]:
    """Write ``num_domains`` synthetic domains under ``out_dir`` and return their statistics.

    ``images_per_id`` / ``num_cameras``: ``None`` keeps each domain's own habits (they differ
    between domains on purpose); a number forces it for every domain. ``workers``: processes
    (0 = one per core); the output does not depend on it. If ``out_dir`` already holds this exact
    data set (same options, seed and generator version) it is reused; other existing domain
    folders are only replaced with ``overwrite=True``.

    Returns the content of ``out_dir/synthetic.json``: ``{"generator", "version", "seed",
    "options", "domains": {name: {"train"|"query"|"gallery": {"ids", "images", "cameras"},
    "style": {...}}}}``.
    """
    _check_options(num_domains, ids_per_domain, height, width, images_per_id, num_cameras, workers)
    options = _options(num_domains, ids_per_domain, seed, height, width, images_per_id, num_cameras)
    names = domain_names(num_domains)
    meta_path = os.path.join(out_dir, "synthetic.json")
    if not overwrite and os.path.isfile(meta_path):
        try:
            with open(meta_path) as f:
                stored = json.load(f)
        except (OSError, json.JSONDecodeError):
            stored = None
        if (isinstance(stored, dict) and stored.get("version") == GENERATOR_VERSION
                and stored.get("options") == options
                and all(os.path.isdir(os.path.join(out_dir, n, d)) for n in names for d in SPLIT_DIRS.values())):
            return stored
    for name in names:
        target = os.path.join(out_dir, name)
        if os.path.exists(target) and not overwrite:
            raise BauError(f"synthetic output {target}: already exists and holds other data; "
                           "choose another folder or overwrite it (--force)")
    os.makedirs(out_dir, exist_ok=True)

    tasks: List[_Task] = []
    domains: Dict[str, Dict[str, object]] = {}
    partial = {}
    for d, name in enumerate(names):
        style = domain_style(seed, d)
        cams = num_cameras if num_cameras is not None else style.num_cameras
        shots = plan_domain(np.random.default_rng([seed, d, 0]), style, ids_per_domain, cams, images_per_id)
        folder = os.path.join(out_dir, f".{name}.partial")  # renamed into place once complete
        if os.path.exists(folder):
            shutil.rmtree(folder)
        for sub in SPLIT_DIRS.values():
            os.makedirs(os.path.join(folder, sub))
        partial[name] = folder
        chunk = 40  # ids per task: small enough to balance two cores, large enough to reuse the scenes
        by_pid: Dict[int, List[Shot]] = {}
        for shot in shots:
            by_pid.setdefault(shot.pid, []).append(shot)
        pids = sorted(by_pid)
        for i in range(0, len(pids), chunk):
            ids = pids[i:i + chunk]
            tasks.append(_Task(folder, seed, d, style, height, width, [s for p in ids for s in by_pid[p]]))
        domains[name] = {split: _describe(shots, split) for split in SPLIT_DIRS}
        domains[name]["num_cameras"] = cams
        domains[name]["style"] = asdict(style)

    n_workers = min(workers or (os.cpu_count() or 1), len(tasks))
    try:
        if n_workers <= 1:
            for task in tasks:
                _render_task(task)
        else:
            # fork keeps start-up cheap; the output does not depend on which process draws what.
            method = "fork" if "fork" in get_all_start_methods() else "spawn"
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=get_context(method)) as pool:
                list(pool.map(_render_task, tasks))
    except BaseException:  # Ctrl-C or a failure: leave no half-written domain behind
        for folder in partial.values():
            shutil.rmtree(folder, ignore_errors=True)
        raise

    for name, folder in partial.items():
        target = os.path.join(out_dir, name)
        if os.path.exists(target):
            shutil.rmtree(target)
        os.replace(folder, target)
    stats: Dict[str, object] = {"generator": "bau.data.synthetic", "version": GENERATOR_VERSION, "seed": seed,
                                "options": options, "domains": domains}
    atomic_write_json(meta_path, stats)
    return stats


def format_stats(stats: Dict[str, object]) -> str:
    """A readable table of ``generate``'s result: ids / images / cameras per split and domain."""
    domains = stats.get("domains", {})
    if not isinstance(domains, dict):
        raise BauError("synthetic stats: expected a 'domains' mapping (the result of generate)")
    header = f"{'domain':<10} {'scene':<24} " + " ".join(f"{s + ' ids/imgs/cams':>24}" for s in SPLIT_DIRS)
    lines = [header, "-" * len(header)]
    totals = {s: [0, 0] for s in SPLIT_DIRS}
    for name, info in domains.items():
        cells = []
        for split in SPLIT_DIRS:
            c = info[split]
            cells.append(f"{c['ids']:>8} / {c['images']:>6} / {c['cameras']:>2}")
            totals[split][0] += c["ids"]
            totals[split][1] += c["images"]
        desc = str(info.get("style", {}).get("description", ""))
        lines.append(f"{name:<10} {desc:<24} " + " ".join(f"{c:>24}" for c in cells))
    lines.append("-" * len(header))
    lines.append(f"{'total':<10} {'':<24} " + " ".join(f"{totals[s][0]:>8} / {totals[s][1]:>6} / {'':>2}"
                                                        for s in SPLIT_DIRS))
    opts = stats.get("options", {})
    if isinstance(opts, dict) and opts:
        lines.append(f"seed {stats.get('seed')}, images {opts.get('height')}x{opts.get('width')} (HxW), "
                     f"generator version {stats.get('version')}")
    return "\n".join(lines)
