"""Weighted random choices with one uniform draw each, so the number of draws never depends on the weights."""
from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from typing import Dict, Sequence

import numpy as np


def choose(rng: np.random.Generator, weights: Sequence[float]) -> int:
    """An index drawn with probability proportional to ``weights`` (one uniform draw)."""
    cumulative = list(accumulate(weights))
    return min(bisect_right(cumulative, rng.random() * cumulative[-1]), len(cumulative) - 1)


def weighted(rng: np.random.Generator, weights: Dict[str, float]) -> str:
    """A key of ``weights`` drawn with probability proportional to its value (one uniform draw)."""
    names = list(weights)
    return names[choose(rng, list(weights.values()))]
