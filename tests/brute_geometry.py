"""Brute-force references for alignment (Eq. 1) and uniformity (Eq. 2): every pair i < j of the
L2-normalised features, straight from the definitions, in float64."""
import math

import numpy as np


def unit(f):
    f = np.asarray(f, dtype=np.float64)
    return f / np.linalg.norm(f, axis=1, keepdims=True)


def brute_alignment(f, ids):
    """Eq. 1 over all pairs i < j with the same id >= 0 (a negative id is a distractor, no identity)."""
    f = unit(f)
    i, j = np.triu_indices(len(f), k=1)
    pos = (ids[i] == ids[j]) & (ids[i] >= 0)
    return math.log(np.mean(((f[i[pos]] - f[j[pos]]) ** 2).sum(1)))


def brute_uniformity(f):
    """Eq. 2 (t = 2) over all pairs i < j."""
    f = unit(f)
    i, j = np.triu_indices(len(f), k=1)
    return math.log(np.mean(np.exp(-2.0 * ((f[i] - f[j]) ** 2).sum(1))))
