"""evaluate_ranking / pairwise_distance against hand-computed and brute-force references."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bau.evaluation import evaluate_ranking, pairwise_distance


def _brute_force(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):
    """One query at a time, written as the protocol reads (no vectorisation)."""
    aps, inps, cmcs = [], [], []
    for i in range(distmat.shape[0]):
        order = sorted(range(distmat.shape[1]), key=lambda j: distmat[i, j])
        ranked = [j for j in order if not (g_pids[j] == q_pids[i] and g_camids[j] == q_camids[i])]
        matches = [g_pids[j] == q_pids[i] for j in ranked]
        if not any(matches):
            continue
        precisions, found = [], 0
        for r, m in enumerate(matches, start=1):
            if m:
                found += 1
                precisions.append(found / r)
        aps.append(sum(precisions) / len(precisions))
        last = max(r for r, m in enumerate(matches, start=1) if m)
        inps.append(found / last)
        first = min(r for r, m in enumerate(matches, start=1) if m)
        cmcs.append([1.0 if first <= r else 0.0 for r in range(1, max_rank + 1)])
    return float(np.mean(aps)), np.mean(np.array(cmcs), axis=0), float(np.mean(inps)), len(aps)


def test_hand_computed_single_query():
    # Gallery ranked by distance: g0 (match), g1 (miss), g2 (match), g3 (miss), g4 (match).
    distmat = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])
    q_pids, q_cams = np.array([7]), np.array([0])
    g_pids = np.array([7, 3, 7, 4, 7])
    g_cams = np.array([1, 1, 2, 1, 1])
    out = evaluate_ranking(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=5)
    # precisions at the hits: 1/1, 2/3, 3/5
    assert out["mAP"] == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    assert out["mINP"] == pytest.approx(3 / 5)
    np.testing.assert_allclose(out["cmc"], [1, 1, 1, 1, 1])
    assert out["num_valid_queries"] == 1


def test_same_camera_matches_are_ignored():
    # g0 is the same identity seen by the query's camera: it must vanish from the ranking,
    # so the first valid match (g2) is at rank 2 after removal, not rank 3.
    distmat = np.array([[0.1, 0.2, 0.3, 0.4]])
    out = evaluate_ranking(distmat, [5], [5, 1, 5, 2], [0], [0, 1, 1, 0], max_rank=3)
    assert out["mAP"] == pytest.approx(1 / 2)
    assert out["mINP"] == pytest.approx(1 / 2)
    np.testing.assert_allclose(out["cmc"], [0, 1, 1])


def test_different_identity_same_camera_is_kept():
    # Only (same pid AND same camera) is junk; a different person in the query camera still counts.
    distmat = np.array([[0.1, 0.2]])
    out = evaluate_ranking(distmat, [5], [1, 5], [0], [0, 1], max_rank=2)
    np.testing.assert_allclose(out["cmc"], [0, 1])
    assert out["mAP"] == pytest.approx(0.5)


def test_queries_without_valid_match_are_skipped():
    distmat = np.array([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]])
    # query 1 (pid 9) only has its match in its own camera -> skipped.
    out = evaluate_ranking(distmat, [1, 9], [1, 2, 9], [0, 0], [1, 1, 0], max_rank=3)
    assert out["num_valid_queries"] == 1
    assert out["mAP"] == pytest.approx(1.0)
    np.testing.assert_allclose(out["cmc"], [1, 1, 1])


def test_no_valid_query_raises():
    with pytest.raises(ValueError, match="no query has a true match"):
        evaluate_ranking(np.zeros((2, 2)), [1, 2], [3, 4], [0, 0], [1, 1])


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="gallery"):
        evaluate_ranking(np.zeros((2, 3)), [1, 2], [3, 4], [0, 0], [1, 1])


def test_max_rank_longer_than_gallery_pads_with_last_value():
    distmat = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]])
    out = evaluate_ranking(distmat, [2, 3], [1, 2, 3], [0, 0], [1, 1, 1], max_rank=6)
    # query 0's match at rank 2, query 1's at rank 3
    np.testing.assert_allclose(out["cmc"], [0, 0.5, 1, 1, 1, 1])
    assert out["cmc"].shape == (6,)


@pytest.mark.parametrize("seed", range(4))
def test_matches_brute_force_on_random_problems(seed):
    rng = np.random.default_rng(seed)
    num_q, num_g = 300, 80  # > one chunk of queries, so the chunking is exercised
    distmat = rng.permutation(num_q * num_g).reshape(num_q, num_g).astype(np.float64)  # no ties
    q_pids = rng.integers(0, 12, num_q)
    g_pids = rng.integers(0, 12, num_g)
    q_cams = rng.integers(0, 3, num_q)
    g_cams = rng.integers(0, 3, num_g)
    out = evaluate_ranking(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=20)
    ref_map, ref_cmc, ref_minp, ref_n = _brute_force(distmat, q_pids, g_pids, q_cams, g_cams, 20)
    assert out["num_valid_queries"] == ref_n
    assert out["mAP"] == pytest.approx(ref_map, abs=1e-12)
    assert out["mINP"] == pytest.approx(ref_minp, abs=1e-12)
    np.testing.assert_allclose(out["cmc"], ref_cmc, atol=1e-12)


def test_accepts_torch_inputs():
    rng = np.random.default_rng(0)
    distmat = rng.random((10, 15))
    q_pids, g_pids = rng.integers(0, 4, 10), rng.integers(0, 4, 15)
    q_cams, g_cams = rng.integers(0, 2, 10), rng.integers(0, 2, 15)
    a = evaluate_ranking(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=5)
    b = evaluate_ranking(*(torch.as_tensor(x) for x in (distmat, q_pids, g_pids, q_cams, g_cams)), max_rank=5)
    assert a["mAP"] == b["mAP"] and a["mINP"] == b["mINP"]
    np.testing.assert_array_equal(a["cmc"], b["cmc"])


def test_pairwise_distance_matches_definition():
    rng = np.random.default_rng(0)
    qf, gf = rng.normal(size=(7, 5)), rng.normal(size=(9, 5))
    qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    ref_euc = ((qn[:, None, :] - gn[None, :, :]) ** 2).sum(-1)
    ref_cos = 1 - qn @ gn.T
    out_euc = pairwise_distance(qf, gf, "euclidean", chunk_size=3)
    out_cos = pairwise_distance(torch.as_tensor(qf), torch.as_tensor(gf), "cosine", chunk_size=3)
    assert out_euc.shape == (7, 9) and out_euc.dtype == np.float32
    np.testing.assert_allclose(out_euc, ref_euc, atol=1e-5)
    np.testing.assert_allclose(out_cos, ref_cos, atol=1e-5)
    with pytest.raises(ValueError, match="metric"):
        pairwise_distance(qf, gf, "manhattan")
