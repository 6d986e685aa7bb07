"""evaluate_ranking / evaluate_features / top_k_gallery / pairwise_distance against hand-computed values,
a brute-force per-query loop and torchreid's Market-1501 evaluation (written here from its algorithm)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import bau.evaluation.metrics as ev
from bau.evaluation.metrics import (
    distance_matrix,
    evaluate_features,
    evaluate_ranking,
    pairwise_distance,
    top_k_gallery,
)

pytestmark = pytest.mark.unit


def _brute_force(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):
    """One query at a time, written as the protocol reads (no vectorisation).

    Python's sort is stable, so equal distances keep gallery order: the documented tie rule. A
    negative pid is a distractor (never a match, never junk); a query with a negative pid is skipped.
    """
    aps, inps, cmcs = [], [], []
    for i in range(distmat.shape[0]):
        if q_pids[i] < 0:
            continue
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
def test_matches_brute_force_on_random_problems(seed, monkeypatch):
    monkeypatch.setattr(ev, "_BLOCK_ELEMENTS", 64 * 80)  # blocks of 64 rows: the chunking is exercised
    rng = np.random.default_rng(seed)
    num_q, num_g = 300, 80
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


# -- torchreid's evaluation, the tie rule, distractors --------------------------------------------
def _torchreid_market(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, kind="quicksort"):
    """torchreid's ``eval_market1501`` (with the mINP of Ye et al.'s AGW code), re-written from its algorithm:
    one full argsort, a matches matrix, then per query the junk mask, a cumsum for CMC and INP,
    and AP as the mean of the precisions at the matches. Its CMC is accumulated in float32. ``kind``:
    the argsort (torchreid uses NumPy's default, which leaves the order of equal distances open)."""
    indices = np.argsort(distmat, axis=1, kind=kind)
    matches = (g_pids[indices] == q_pids[:, None]).astype(np.int32)
    all_cmc, all_ap, all_inp = [], [], []
    for q in range(len(q_pids)):
        order = indices[q]
        keep = ~((g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q]))
        raw = matches[q][keep]
        if not raw.any():
            continue
        cmc = raw.cumsum()
        last = np.max(np.where(raw == 1))
        all_inp.append(cmc[last] / (last + 1.0))
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        precisions = raw.cumsum() / (np.arange(len(raw)) + 1.0)
        all_ap.append((precisions * raw).sum() / raw.sum())
    cmc = np.asarray(all_cmc).astype(np.float32).sum(0) / len(all_cmc)
    return float(np.mean(all_ap)), cmc, float(np.mean(all_inp)), len(all_ap)


def _random_problem(seed, num_q=120, num_g=400, num_ids=25, num_cams=4, distractors=60, ties=False):
    """Random labels with same-camera junk, queries without a valid match and distractors (pid -1 / -7)."""
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(0, num_ids, num_q)
    g_pids = rng.integers(0, num_ids + 5, num_g)  # ids >= num_ids are never queried
    g_pids[rng.choice(num_g, distractors, replace=False)] = rng.choice([-1, -7], distractors)
    q_cams, g_cams = rng.integers(0, num_cams, num_q), rng.integers(0, num_cams, num_g)
    q_cams[q_pids == 0], g_cams[g_pids == 0] = 0, 0  # identity 0 is only junk for its queries
    q_pids[:3] = num_ids + 10  # and three queries have no gallery image at all
    if ties:  # few distinct values: most entries tie with many others
        distmat = rng.integers(0, 6, (num_q, num_g)).astype(np.float32)
    else:  # a permutation: no two entries equal
        distmat = (rng.permutation(num_q * num_g).reshape(num_q, num_g) / (num_q * num_g)).astype(np.float64)
    return distmat, q_pids, g_pids, q_cams, g_cams


def _assert_same(out, ref_map, ref_cmc, ref_minp, ref_n, atol=1e-12):
    assert out["num_valid_queries"] == ref_n
    assert out["mAP"] == pytest.approx(ref_map, abs=atol)
    assert out["mINP"] == pytest.approx(ref_minp, abs=atol)
    np.testing.assert_allclose(out["cmc"], ref_cmc, atol=max(atol, 1e-6) if ref_cmc.dtype == np.float32 else atol)


@pytest.mark.parametrize("seed", range(3))
def test_matches_torchreid_with_distractors_to_rank_50(seed):
    distmat, q_pids, g_pids, q_cams, g_cams = _random_problem(seed)
    assert (g_pids < 0).sum() == 60 and (q_pids >= 0).all()
    ref = _torchreid_market(distmat, q_pids, g_pids, q_cams, g_cams, 50)
    assert 0 < ref[3] < len(q_pids)  # some queries have no valid match
    _assert_same(evaluate_ranking(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=50), *ref)
    # Relabelling the distractors as 0 or -1 (Market's files) or any other negative pid changes nothing.
    relabelled = np.where(g_pids < 0, -1 - (np.arange(len(g_pids)) % 3), g_pids)
    _assert_same(evaluate_ranking(distmat, q_pids, relabelled, q_cams, g_cams, max_rank=50), *ref)


def test_negative_pids_are_distractors_and_negative_queries_are_skipped():
    # Query 0 (pid 5, cam 0): g0 is a distractor with pid -1 seen by camera 0 -- it is a miss at rank 1,
    # not junk. Query 1 has pid -1 like g0 and g3: it is skipped, g0 and g3 are not its matches.
    distmat = np.array([[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]])
    g_pids, g_cams = np.array([-1, 5, 5, -1]), np.array([0, 0, 1, 1])
    out = evaluate_ranking(distmat, [5, -1], g_pids, [0, 1], g_cams, max_rank=3)
    assert out["num_valid_queries"] == 1
    assert out["mAP"] == pytest.approx(1 / 2)  # g1 is junk; ranking g0 (miss), g2 (hit), g3
    np.testing.assert_allclose(out["cmc"], [0, 1, 1])
    alone = evaluate_ranking(distmat[:1], [5], g_pids, [0], g_cams, max_rank=3)
    assert alone["mAP"] == out["mAP"] and np.array_equal(alone["cmc"], out["cmc"])
    with pytest.raises(ValueError, match="no query has a true match"):
        evaluate_ranking(distmat[1:], [-1], g_pids, [1], g_cams)


@pytest.mark.parametrize("seed", range(3))
def test_exact_ties_follow_the_stable_argsort(seed):
    distmat, q_pids, g_pids, q_cams, g_cams = _random_problem(seed, num_q=60, num_g=150, ties=True)
    out = evaluate_ranking(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=50)
    # The brute force sorts stably (lower gallery index first among equal distances) ...
    _assert_same(out, *_brute_force(distmat, q_pids, g_pids, q_cams, g_cams, 50))
    # ... as does torchreid's algorithm once its argsort is stable.
    _assert_same(out, *_torchreid_market(distmat, q_pids, g_pids, q_cams, g_cams, 50, kind="stable"))


def test_ties_hand_example():
    # Query pid 1 cam 0. g0 (miss) and g1 (hit) tie at 0.5: g0 has the lower index, so it ranks first
    # and the hit is at rank 2; g2 (junk, also 0.5) is removed; g3 (hit) ties with g4 (miss) at 0.7.
    distmat = np.array([[0.5, 0.5, 0.5, 0.7, 0.7]], dtype=np.float32)
    out = evaluate_ranking(distmat, [1], [2, 1, 1, 1, 3], [0], [1, 1, 0, 2, 1], max_rank=4)
    assert out["mAP"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert out["mINP"] == pytest.approx(2 / 3)
    np.testing.assert_allclose(out["cmc"], [0, 1, 1, 1])
    # The same gallery listed in reverse order reverses both ties: the first hit now precedes its miss
    # (rank 1), the second follows its miss (rank 4 of the 4 kept entries).
    out = evaluate_ranking(distmat[:, ::-1], [1], [3, 1, 1, 1, 2], [0], [1, 2, 0, 1, 1], max_rank=4)
    assert out["mAP"] == pytest.approx((1 / 1 + 2 / 4) / 2)
    assert out["mINP"] == pytest.approx(2 / 4)
    np.testing.assert_allclose(out["cmc"], [1, 1, 1, 1])


# -- the rank kernel, the torch path, evaluation from features --------------------------------------
@pytest.mark.parametrize("positions", [ev._positions_numpy, ev._positions_torch])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_positions_are_the_stable_argsort_positions(positions, dtype):
    rng = np.random.default_rng(1)
    block = rng.integers(-3, 4, (7, 40)).astype(dtype)  # many exact ties
    block[2] = rng.permutation(40)  # a row without ties
    block[3, :5] = np.inf if block.dtype.kind == "f" else 10**9
    rows = np.repeat(np.arange(7), [5, 0, 6, 40, 1, 3, 2])  # row 1 has no entry, row 3 all of them
    cols = np.concatenate([np.sort(rng.choice(40, n, replace=False)) for n in [5, 0, 6, 40, 1, 3, 2]])
    stable = np.argsort(np.argsort(block, axis=1, kind="stable"), axis=1, kind="stable")  # position of each entry
    data = torch.from_numpy(block) if positions is ev._positions_torch else block
    np.testing.assert_array_equal(positions(data, rows, cols, "test"), stable[rows, cols])


@pytest.mark.parametrize("ties", [False, True])
def test_torch_backend_gives_the_numpy_numbers(ties, monkeypatch):
    monkeypatch.setattr(ev, "_BLOCK_ELEMENTS", 50 * 400)  # three blocks
    problem = _random_problem(4, ties=ties)
    a = evaluate_ranking(*problem, max_rank=30)
    b = evaluate_ranking(*(torch.as_tensor(x) for x in problem), max_rank=30, backend="torch")
    assert (a["mAP"], a["mINP"], a["num_valid_queries"]) == (b["mAP"], b["mINP"], b["num_valid_queries"])
    np.testing.assert_array_equal(a["cmc"], b["cmc"])


def _feature_problem(seed, num_q=90, num_g=300, num_ids=20, dim=16):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_ids, dim))
    q_pids, g_pids = rng.integers(0, num_ids, num_q), rng.integers(0, num_ids, num_g)
    g_pids[:30] = -1  # distractors, with features of their own
    qf = centres[q_pids] + rng.normal(size=(num_q, dim))
    gf = np.where((g_pids >= 0)[:, None], centres[np.maximum(g_pids, 0)], 0) + rng.normal(size=(num_g, dim))
    return (qf.astype(np.float32), gf.astype(np.float32), q_pids, g_pids,
            rng.integers(0, 3, num_q), rng.integers(0, 3, num_g))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_evaluate_features_never_holds_the_full_matrix(metric, backend, monkeypatch):
    qf, gf, q_pids, g_pids, q_cams, g_cams = _feature_problem(0)
    expected = evaluate_ranking(pairwise_distance(qf, gf, metric), q_pids, g_pids, q_cams, g_cams, max_rank=20)
    assert 0.2 < expected["mAP"] < 0.95  # neither trivial nor hopeless
    blocks = []
    distance_block = ev._distance_block

    def spy(q, g, m):
        blocks.append(tuple(q.shape[:1]) + tuple(g.shape[:1]))
        return distance_block(q, g, m)

    monkeypatch.setattr(ev, "_distance_block", spy)
    monkeypatch.setattr(ev, "_FEATURE_BLOCK_ROWS", 32)
    out = evaluate_features(torch.from_numpy(qf), gf, q_pids, g_pids, q_cams, g_cams, max_rank=20, metric=metric,
                            backend=backend)
    assert blocks == [(32, 300), (32, 300), (26, 300)]
    assert (out["mAP"], out["mINP"], out["num_valid_queries"]) == \
        (expected["mAP"], expected["mINP"], expected["num_valid_queries"])
    np.testing.assert_array_equal(out["cmc"], expected["cmc"])


def test_evaluate_features_caps_the_block_by_gallery_size(monkeypatch):
    qf, gf, q_pids, g_pids, q_cams, g_cams = _feature_problem(1)
    monkeypatch.setattr(ev, "_FEATURE_BLOCK_ELEMENTS", 20 * 300)  # 20 rows of a 300-image gallery
    seen = []
    distance_block = ev._distance_block
    monkeypatch.setattr(ev, "_distance_block", lambda q, g, m: seen.append(len(q)) or distance_block(q, g, m))
    evaluate_features(qf, gf, q_pids, g_pids, q_cams, g_cams)
    assert max(seen) == 20 and sum(seen) == len(qf)


def test_distance_matrix_is_pairwise_distance_as_a_tensor():
    qf, gf = _feature_problem(2)[:2]
    for metric in ("euclidean", "cosine"):
        out = distance_matrix(qf, torch.from_numpy(gf), metric, device="cpu", chunk_size=7)
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
        np.testing.assert_array_equal(out.numpy(), pairwise_distance(qf, gf, metric))


# -- top_k_gallery: the display ranking -------------------------------------------------------------
@pytest.mark.parametrize("ties", [False, True])
def test_top_k_gallery_lists_the_evaluation_ranking(ties):
    distmat, q_pids, g_pids, q_cams, g_cams = _random_problem(5, num_q=40, num_g=120, ties=ties)
    for i in range(len(q_pids)):
        everything, matches = top_k_gallery(distmat[i], q_pids[i], q_cams[i], g_pids, g_cams, k=1000)
        junk = (g_pids == q_pids[i]) & (g_cams == q_cams[i]) & (g_pids >= 0)
        expected = [j for j in np.argsort(distmat[i], kind="stable") if not junk[j]]
        assert everything.tolist() == expected
        np.testing.assert_array_equal(matches, (g_pids[expected] == q_pids[i]) & (g_pids[expected] >= 0))
        for k in (1, 5, 17):  # the partial selection, with ties across the k-th entry
            top, top_matches = top_k_gallery(distmat[i], q_pids[i], q_cams[i], g_pids, g_cams, k=k)
            assert top.tolist() == expected[:k] and top_matches.tolist() == matches[:k].tolist()
        if matches.any() and q_pids[i] >= 0:  # the first match is where the evaluation finds it
            one = evaluate_ranking(distmat[i:i + 1], q_pids[i:i + 1], g_pids, q_cams[i:i + 1], g_cams,
                                   max_rank=len(g_pids))
            assert int(np.argmax(one["cmc"] > 0)) == int(np.argmax(matches))


# -- bad input ------------------------------------------------------------------------------------
def test_bad_input_is_a_one_line_value_error():
    d = np.array([[0.1, 0.2], [0.3, 0.4]])
    cases = [
        (lambda: evaluate_ranking(np.array([[0.1, np.nan], [0.3, 0.4]]), [1, 2], [1, 2], [0, 0], [1, 1]), "NaN"),
        (lambda: evaluate_ranking(d, ["a", "b"], [1, 2], [0, 0], [1, 1]), "q_pids must be integers"),
        (lambda: evaluate_ranking(d, [1.5, 2], [1, 2], [0, 0], [1, 1]), "q_pids must be integers"),
        (lambda: evaluate_ranking(d, [1, 2], [1, 2], [0, 0], [1, 1], max_rank=0), "max_rank"),
        (lambda: evaluate_ranking(d, [1, 2], [1, 2], [0, 0], [1, 1], backend="cupy"), "backend"),
        (lambda: evaluate_ranking(d[0], [1], [1, 2], [0], [1, 1]), "2-D"),
        (lambda: evaluate_ranking(d.astype(bool), [1, 2], [1, 2], [0, 0], [1, 1]), "real numbers"),
        (lambda: evaluate_ranking(d, [1], [1, 2], [0], [1, 1]), "2 query rows but 1 query pids"),
        (lambda: evaluate_ranking(np.zeros((2, 0)), [1, 2], [], [0, 0], []), "no query has a true match"),
        (lambda: evaluate_ranking(np.zeros((0, 2)), [], [1, 2], [], [1, 1]), "no query has a true match"),
        (lambda: evaluate_features(np.ones((2, 3)), np.ones((2, 4)), [1, 2], [1, 2], [0, 0], [1, 1]), "[Q, d]"),
        (lambda: evaluate_features(np.ones((2, 3)), np.ones((3, 3)), [1, 2], [1, 2], [0, 0], [1, 1]),
         "features have 3 gallery columns but 2 gallery pids"),
        (lambda: evaluate_features(np.ones((2, 3)), np.ones((2, 3)), [1, 2], [1, 2], [0, 0], [1, 1], metric="l1"),
         "metric"),
        (lambda: top_k_gallery([0.1, np.nan], 1, 0, [1, 2], [1, 1], k=1), "NaN"),
        (lambda: top_k_gallery([0.1, 0.2], 1, 0, [1, 2], [1, 1], k=0), "k must be at least 1"),
        (lambda: top_k_gallery([0.1, 0.2], 1, 0, [1, 2, 3], [1, 1], k=1), "2 distances but 3 gallery pids"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message.replace("[", r"\[")) as info:
            call()
        assert "\n" not in str(info.value)
    # Integral floats are fine as labels.
    assert evaluate_ranking(d, [1.0, 2.0], [1, 2], [0, 0], [1, 1])["mAP"] == pytest.approx(0.75)


# -- bau.evaluation.inference.rank_split: the per-split evaluation of `bau eval` and of every evaluation epoch ----
@pytest.mark.parametrize("rerank", [False, True])
def test_rank_split_uses_the_same_numbers(rerank, monkeypatch):
    from bau.evaluation.inference import rank_split
    from bau.evaluation.reranking import re_ranking

    qf, gf, q_pids, g_pids, q_cams, g_cams = _feature_problem(3, num_q=40, num_g=120)
    query = [(f"q{i}.jpg", int(p), int(c)) for i, (p, c) in enumerate(zip(q_pids, q_cams))]
    gallery = [(f"g{i}.jpg", int(p), int(c)) for i, (p, c) in enumerate(zip(g_pids, g_cams))]
    dist = pairwise_distance(qf, gf)
    if rerank:
        dist = re_ranking(dist, pairwise_distance(qf, qf), pairwise_distance(gf, gf))
    else:  # no [Q, G] matrix: blocks of 16 queries
        monkeypatch.setattr(ev, "_FEATURE_BLOCK_ROWS", 16)
        monkeypatch.setattr(ev, "pairwise_distance", None)
    expected = evaluate_ranking(dist, q_pids, g_pids, q_cams, g_cams, max_rank=10)
    out = rank_split(qf, gf, query, gallery, rerank=rerank, max_rank=10, device=torch.device("cpu"))
    assert out["mAP"] == expected["mAP"] and out["mINP"] == expected["mINP"]
    assert (out["rank1"], out["rank5"], out["rank10"]) == tuple(expected["cmc"][[0, 4, 9]])
    assert (out["num_query"], out["num_gallery"]) == (40, 120)


def test_consecutive_feature_rows_are_views_not_copies():
    from bau.evaluation.inference import _rows

    feats = np.arange(12, dtype=np.float32).reshape(6, 2)
    view = _rows(feats, [2, 3, 4])
    assert np.shares_memory(view, feats) and np.array_equal(view, feats[2:5])
    copy = _rows(feats, [0, 2])
    assert not np.shares_memory(copy, feats) and np.array_equal(copy, feats[[0, 2]])
