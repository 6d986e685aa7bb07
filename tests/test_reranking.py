"""re_ranking against a plain, loop-by-loop re-implementation of Zhong et al.'s algorithm.

The reference below follows the conventions of the NumPy implementation used across re-ID code bases
(squared distances normalised by the column maximum, ``k1 + 1`` nearest neighbours including the point
itself, ``round(k1 / 2)`` for the expansion, the 2/3 overlap rule, query expansion over the ``k2``
nearest rows, Jaccard ``1 - m / (2 - m)``), written for readability with Python sets and dense arrays.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bau.evaluation.reranking import re_ranking

pytestmark = pytest.mark.unit


def _reference_re_ranking(q_g, q_q, g_g, k1, k2, lam):
    num_q, num_g = q_g.shape
    n = num_q + num_g
    d = np.zeros((n, n))
    d[:num_q, :num_q], d[:num_q, num_q:] = q_q, q_g
    d[num_q:, :num_q], d[num_q:, num_q:] = q_g.T, g_g
    sq = (d.astype(np.float64) ** 2).astype(np.float32)
    # dist[i, j] = sq[j, i] / (max of column i of sq)
    dist = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        dist[i] = sq[:, i] / sq[:, i].max()
    ranking = [sorted(range(n), key=lambda j, i=i: dist[i, j]) for i in range(n)]

    def nearest(i, k):
        return set(ranking[i][: k + 1])

    def reciprocal(i, k):
        return {j for j in nearest(i, k) if i in nearest(j, k)}

    v = np.zeros((n, n))
    for i in range(n):
        r = reciprocal(i, k1)
        expanded = set(r)
        for c in r:
            r_half = reciprocal(c, int(round(k1 / 2)))
            if len(r_half & r) > 2.0 / 3.0 * len(r_half):
                expanded |= r_half
        idx = sorted(expanded)
        w = np.exp(-dist[i, idx].astype(np.float64))
        v[i, idx] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[ranking[i][:k2]].mean(axis=0) for i in range(n)])
    final = np.zeros((num_q, num_g))
    for qi in range(num_q):
        for gi in range(num_g):
            shared = np.minimum(v[qi], v[num_q + gi]).sum()
            jaccard = 1 - shared / (2 - shared)
            final[qi, gi] = jaccard * (1 - lam) + dist[qi, num_q + gi] * lam
    return final


def _problem(num_q, num_g, seed, dim=6, num_ids=8):
    """Clustered features (several images per identity) so neighbourhoods are non-trivial."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_ids, dim))
    q = centres[rng.integers(0, num_ids, num_q)] + 0.5 * rng.normal(size=(num_q, dim))
    g = centres[rng.integers(0, num_ids, num_g)] + 0.5 * rng.normal(size=(num_g, dim))

    def euclid(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    return euclid(q, g), euclid(q, q), euclid(g, g)


@pytest.mark.parametrize(
    "seed,num_q,num_g,k1,k2,lam",
    [
        (0, 10, 40, 20, 6, 0.3),  # the paper's setting
        (1, 12, 35, 6, 3, 0.3),
        (2, 8, 30, 5, 1, 0.5),  # round(5 / 2) = 2 (half to even); k2 = 1 skips query expansion
        (3, 5, 12, 30, 20, 0.1),  # k1 + 1 and k2 larger than the 17 points
        (4, 15, 25, 3, 2, 0.0),
    ],
)
def test_matches_reference(seed, num_q, num_g, k1, k2, lam):
    q_g, q_q, g_g = _problem(num_q, num_g, seed)
    out = re_ranking(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lam)
    ref = _reference_re_ranking(q_g, q_q, g_g, k1, k2, lam)
    assert out.shape == (num_q, num_g) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-6, rtol=0)


def test_float32_and_torch_inputs_give_the_same_result():
    q_g, q_q, g_g = _problem(9, 30, 5)
    a = re_ranking(q_g, q_q, g_g, k1=8, k2=3)
    b = re_ranking(*(torch.as_tensor(x, dtype=torch.float32) for x in (q_g, q_q, g_g)), k1=8, k2=3)
    ref32 = _reference_re_ranking(q_g.astype(np.float32), q_q.astype(np.float32), g_g.astype(np.float32), 8, 3, 0.3)
    np.testing.assert_allclose(b, ref32, atol=1e-6, rtol=0)
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_lambda_one_returns_normalised_squared_distance():
    q_g, q_q, g_g = _problem(4, 10, 6)
    out = re_ranking(q_g, q_q, g_g, k1=4, k2=2, lambda_value=1.0)
    col_max = np.concatenate([q_q, q_g.T]).max(axis=0) ** 2  # max of each query column of D, squared
    np.testing.assert_allclose(out, q_g**2 / col_max[:, None], rtol=1e-6)


def test_hand_example_two_clusters():
    # 1 query, 2 gallery on a line: q=0, g0=0.1, g1=10. With k1 = 1 every point's reciprocal set is
    # {itself, its mutual nearest}; q and g0 are mutual nearest, g1 is alone. No expansion, k2 = 1.
    pos_q, pos_g = np.array([0.0]), np.array([0.1, 10.0])
    q_g = np.abs(pos_q[:, None] - pos_g[None, :])
    q_q = np.zeros((1, 1))
    g_g = np.abs(pos_g[:, None] - pos_g[None, :])
    out = re_ranking(q_g, q_q, g_g, k1=1, k2=1, lambda_value=0.0)
    # V[q] over (q, g0): exp(-0), exp(-0.01/100) normalised; V[g0] over (q, g0): exp(-0.01/9.9^2), exp(0).
    wq = np.array([1.0, math.exp(-0.01 / 100.0)])
    wq /= wq.sum()
    wg = np.array([math.exp(-0.01 / 9.9**2), 1.0])
    wg /= wg.sum()
    m = np.minimum(wq, wg).sum()
    assert out[0, 0] == pytest.approx(1 - m / (2 - m), abs=1e-6)
    assert out[0, 1] == pytest.approx(1.0)  # g1 shares nothing with q


def test_rejects_inconsistent_shapes():
    q_g, q_q, g_g = _problem(3, 5, 7)
    with pytest.raises(ValueError, match="g_g_dist"):
        re_ranking(q_g, q_q, g_g[:4, :4])
    with pytest.raises(ValueError, match="k1"):
        re_ranking(q_g, q_q, g_g, k1=0)


def test_collapsed_features_give_finite_distances():
    """All features equal (an untrained model can collapse them): every distance is 0, no NaN."""
    from bau.evaluation.reranking import re_ranking

    q_g, q_q, g_g = np.zeros((3, 5), np.float32), np.zeros((3, 3), np.float32), np.zeros((5, 5), np.float32)
    out = re_ranking(q_g, q_q, g_g, k1=2, k2=1)
    assert out.shape == (3, 5) and np.isfinite(out).all()
