"""Identities: what stays the same in every image of one synthetic person, drawn from a domain's fashion."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bau.data.synthetic.draws import choose, weighted
from bau.data.synthetic.palettes import (
    BAGS,
    HAIR,
    HAIR_STYLES,
    HAIR_WEIGHTS,
    LOGO_SHAPES,
    MIXED_TOPS,
    PALETTE,
    PATTERNS,
    RGB,
    SHOES,
    SKIN,
    jitter,
)
from bau.data.synthetic.styles import DomainStyle


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


def sample_person(rng: np.random.Generator, style: DomainStyle) -> Person:
    """Draw an identity from the domain's fashion. Colours repeat across people on purpose."""
    top_name = weighted(rng, style.top_weights)
    second_name = top_name
    while second_name == top_name:
        second_name = weighted(rng, MIXED_TOPS)
    pattern = PATTERNS[choose(rng, style.pattern_weights)]
    u = rng.random()
    bottom_kind = "shorts" if u < style.shorts_prob else ("skirt" if u < style.shorts_prob + style.skirt_prob
                                                          else "trousers")
    bag = BAGS[choose(rng, style.bag_weights)]
    return Person(
        skin=jitter(rng, SKIN[int(rng.integers(len(SKIN)))], 5),
        hair=jitter(rng, HAIR[choose(rng, HAIR_WEIGHTS)], 5),
        hair_style=weighted(rng, HAIR_STYLES),
        cap=jitter(rng, PALETTE[weighted(rng, MIXED_TOPS)]),
        top=jitter(rng, PALETTE[top_name]), top_name=top_name,
        second=jitter(rng, PALETTE[second_name]), pattern=pattern,
        logo_shape=LOGO_SHAPES[int(rng.integers(len(LOGO_SHAPES)))],
        stripe_period=float(rng.uniform(0.035, 0.06)),
        sleeves="short" if rng.random() < style.short_sleeve_prob else "long",
        top_length=float(rng.uniform(0.1, 0.2)) if rng.random() < style.coat_prob else float(rng.uniform(0.0, 0.03)),
        bottom=jitter(rng, PALETTE[weighted(rng, style.bottom_weights)]), bottom_kind=bottom_kind,
        shoes=jitter(rng, PALETTE[weighted(rng, SHOES)]),
        bag=bag, bag_color=jitter(rng, PALETTE[weighted(rng, MIXED_TOPS)]),
        bag_side="L" if rng.random() < 0.5 else "R", bag_size=float(rng.uniform(0.8, 1.15)),
        build=float(rng.uniform(0.85, 1.2)), head_scale=float(rng.uniform(0.9, 1.1)),
        leg_ratio=float(rng.uniform(0.44, 0.52)), stride=float(rng.uniform(0.8, 1.2)))
