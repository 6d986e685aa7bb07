"""Alignment (Eq. 1) and uniformity (Eq. 2): chunked exact values against full-matrix references."""
import math

import numpy as np
import pytest
import torch

from bau.core.errors import BauError
from bau.evaluation.geometry import alignment, alignment_uniformity, uniformity, uniformity_by_group

pytestmark = pytest.mark.unit


def unit(rng, n, d, dtype=np.float64):
    x = rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(dtype)


def brute_alignment(f, pids):
    f = np.asarray(f, dtype=np.float64)
    sq = ((f[:, None, :] - f[None, :, :]) ** 2).sum(-1)
    pos = (pids[:, None] == pids[None, :]) & ~np.eye(len(f), dtype=bool)
    return math.log(sq[pos].mean())


def brute_uniformity(f, t=2.0):
    f = np.asarray(f, dtype=np.float64)
    sq = ((f[:, None, :] - f[None, :, :]) ** 2).sum(-1)
    off = ~np.eye(len(f), dtype=bool)
    return math.log(np.exp(-t * sq[off]).mean())


@pytest.mark.parametrize("n,d,chunk", [(2, 3, 1), (7, 4, 3), (50, 16, 7), (64, 8, 64), (33, 5, 1000)])
def test_uniformity_matches_full_matrix(n, d, chunk):
    f = unit(np.random.default_rng(n + d), n, d)
    assert uniformity(f, chunk_size=chunk) == pytest.approx(brute_uniformity(f), abs=1e-12)


def test_uniformity_float32_and_torch_input():
    f = unit(np.random.default_rng(0), 40, 12)
    ref = brute_uniformity(f)
    assert uniformity(f.astype(np.float32), chunk_size=9) == pytest.approx(ref, abs=1e-5)
    assert uniformity(torch.from_numpy(f), chunk_size=9) == pytest.approx(ref, abs=1e-12)
    assert isinstance(uniformity(f), float)


def test_uniformity_known_values():
    # Two antipodal points: ||a - b||^2 = 4, L = -8. All identical points: L = 0.
    assert uniformity(np.array([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(-8.0)
    assert uniformity(np.ones((5, 3)) / math.sqrt(3), chunk_size=2) == pytest.approx(0.0, abs=1e-12)


def test_uniformity_stable_for_far_apart_unnormalised_points():
    # exp(-2 * 1e4) underflows float64; the log-sum-exp must still give the exact value.
    f = np.array([[0.0], [100.0], [200.0]])
    # pairs: d^2 = 1e4 (twice), 4e4 -> log mean = -2e4 + log((2 + exp(-6e4)) / 3)
    assert uniformity(f, chunk_size=1) == pytest.approx(-2e4 + math.log(2 / 3), rel=1e-12)


def test_uniformity_normalize_option():
    rng = np.random.default_rng(1)
    raw = rng.standard_normal((20, 6)) * 5
    assert uniformity(raw, normalize=True, chunk_size=6) == pytest.approx(brute_uniformity(unit_rows(raw)), abs=1e-12)


def unit_rows(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("chunk", [1, 4, 5, 100])
def test_alignment_matches_full_matrix_with_singletons(chunk):
    rng = np.random.default_rng(3)
    f = unit(rng, 23, 6)
    pids = np.array([5, 5, 5, 9, 1, 1, 7, 2, 2, 2, 2, 8, 3, 3, 11, 12, 4, 4, 4, 4, 4, 6, 0])  # 9, 7, 8, 11.. singletons
    assert alignment(f, pids, chunk_size=chunk) == pytest.approx(brute_alignment(f, pids), abs=1e-12)


def test_inputs_are_not_modified():
    rng = np.random.default_rng(10)
    for f in (unit(rng, 30, 4), unit(rng, 30, 4, dtype=np.float32)):
        for x in (f, torch.from_numpy(f)):
            before = np.array(x.numpy() if isinstance(x, torch.Tensor) else x, copy=True)
            pids = np.repeat(np.arange(10), 3)
            alignment(x, pids, chunk_size=7)
            alignment(x, pids, max_pairs=20, seed=0)
            uniformity(x, chunk_size=7)
            uniformity(x, max_pairs=20, seed=0)
            uniformity_by_group(x, pids % 2)
            np.testing.assert_array_equal(np.asarray(x), before)


def test_alignment_string_pids_and_torch():
    f = unit(np.random.default_rng(4), 6, 3)
    pids = np.array(["a", "b", "a", "c", "b", "a"])
    assert alignment(torch.from_numpy(f), pids) == pytest.approx(brute_alignment(f, pids), abs=1e-12)


def test_alignment_hand_computed():
    # One pair at distance^2 = 2 (orthogonal), one pair identical: mean = 1, log = 0.
    f = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    assert alignment(f, [0, 0, 1, 1]) == pytest.approx(0.0, abs=1e-12)
    # A tight pair (d^2 = 1e-14) next to unit norms: the uncentred form 2n sum|f|^2 - 2|sum f|^2
    # would lose about 5% of it to cancellation; centring on the group mean keeps every digit.
    g = np.array([[1.0, 0.0], [1.0, 1e-7]])
    assert alignment(g, [1, 1]) == pytest.approx(math.log(1e-14), rel=1e-9)
    assert alignment(np.ones((3, 2)), [0, 0, 0]) == float("-inf")


def test_alignment_without_positive_pairs_raises():
    with pytest.raises(BauError, match="no positive pair"):
        alignment(np.eye(3), [0, 1, 2])
    with pytest.raises(BauError, match="expected 4 labels"):
        alignment(np.eye(4), [0, 0, 1])


def test_bad_inputs_raise_bau_error():
    with pytest.raises(BauError, match="2-D"):
        uniformity(np.zeros(5))
    with pytest.raises(BauError, match="at least 2"):
        uniformity(np.ones((1, 3)))
    with pytest.raises(BauError, match="NaN"):
        uniformity(np.array([[0.0, np.nan], [1.0, 0.0]]))
    with pytest.raises(BauError, match="chunk_size"):
        uniformity(np.eye(3), chunk_size=0)


def test_subsample_is_deterministic_and_close():
    rng = np.random.default_rng(5)
    f = unit(rng, 400, 8)
    pids = np.repeat(np.arange(20), 20)  # 7,600 ordered positive pairs
    exact_u, exact_a = uniformity(f), alignment(f, pids)
    u1 = uniformity(f, max_pairs=20000, seed=7)
    assert u1 == uniformity(f, max_pairs=20000, seed=7)
    assert u1 != uniformity(f, max_pairs=20000, seed=8)
    assert u1 == pytest.approx(exact_u, abs=0.02)
    a1 = alignment(f, pids, max_pairs=3000, seed=7)
    assert a1 == alignment(f, pids, max_pairs=3000, seed=7)
    assert a1 != exact_a
    assert a1 == pytest.approx(exact_a, abs=0.02)
    # max_pairs at or above the number of pairs means exact
    assert uniformity(f[:10], max_pairs=45) == pytest.approx(brute_uniformity(f[:10]), abs=1e-12)


def test_pair_sample_never_pairs_a_point_with_itself():
    # Two identical points per identity would give d = 0 pairs; sampled i == j would do the same.
    # With all positive pairs at distance^2 = 2 exactly, any self-pair would pull the mean down.
    f = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
    assert alignment(f, [0, 0, 1, 1], max_pairs=1, seed=0) == pytest.approx(math.log(2.0))
    assert alignment(f, [0, 0, 1, 1], max_pairs=3, seed=1) == pytest.approx(math.log(2.0))
    assert uniformity(f, max_pairs=5, seed=2) == pytest.approx(-4.0)


def test_uniformity_by_group_and_names():
    rng = np.random.default_rng(6)
    f = unit(rng, 30, 5)
    domains = rng.integers(0, 3, size=30)
    domains[0] = 3  # a singleton group
    res = uniformity_by_group(f, domains, names=["msmt17", "cuhksysu", "cuhk03", "solo"], chunk_size=4)
    assert list(res) == ["msmt17", "cuhksysu", "cuhk03", "solo"]
    for g, name in enumerate(["msmt17", "cuhksysu", "cuhk03"]):
        assert res[name] == pytest.approx(brute_uniformity(f[domains == g]), abs=1e-12)
    assert math.isnan(res["solo"])
    raw = uniformity_by_group(f, np.where(np.arange(30) < 10, "target", "source"))
    assert set(raw) == {"source", "target"}
    assert raw["target"] == pytest.approx(brute_uniformity(f[:10]), abs=1e-12)
    with pytest.raises(BauError, match="names"):
        uniformity_by_group(f, domains, names=["a"])


def test_alignment_uniformity_pair():
    f = unit(np.random.default_rng(8), 12, 4)
    pids = np.repeat(np.arange(4), 3)
    out = alignment_uniformity(f, pids, chunk_size=5)
    assert out == {"alignment": pytest.approx(brute_alignment(f, pids), abs=1e-12),
                   "uniformity": pytest.approx(brute_uniformity(f), abs=1e-12)}


def test_moderately_large_input_matches_float64_reference():
    # A few blocks of a 3,000-point set: chunk 512 leaves a ragged last block.
    rng = np.random.default_rng(9)
    f = unit(rng, 3000, 32, dtype=np.float32)
    f64 = f.astype(np.float64)
    sq = np.maximum((f64 ** 2).sum(1)[:, None] + (f64 ** 2).sum(1)[None] - 2 * f64 @ f64.T, 0)
    np.fill_diagonal(sq, np.inf)
    ref = math.log(np.exp(-2 * sq).sum() / (3000 * 2999))
    assert uniformity(f, chunk_size=512) == pytest.approx(ref, abs=1e-5)


# -- distractors are not an identity ---------------------------------------------------------------
def test_alignment_ignores_negative_pids_uniformity_does_not():
    rng = np.random.default_rng(11)
    f = unit(rng, 14, 5)
    pids = np.array([3, 3, 4, 4, 4, 5, 6, 6, -2, -2, -2, -1, 7, 7])
    real = pids >= 0
    assert alignment(f, pids) == pytest.approx(brute_alignment(f[real], pids[real]), abs=1e-12)
    assert alignment(f, pids, max_pairs=50, seed=1) == alignment(f[real], pids[real], max_pairs=50, seed=1)
    # the distractors as one "identity" (the old pid-0 convention) would change it
    assert alignment(f, np.where(pids < 0, 0, pids)) != pytest.approx(alignment(f, pids), abs=1e-6)
    out = alignment_uniformity(f, pids)
    assert out["uniformity"] == pytest.approx(brute_uniformity(f), abs=1e-12), "uniformity: every row"
    with pytest.raises(BauError, match="no positive pair"):
        alignment(f[8:12], pids[8:12])


def test_figure1_geometry_is_blind_to_distractors_in_alignment(tmp_path):
    """``sweep_data.target_geometry`` on a target's query + gallery, read from a Market-named tree with
    and without gallery distractors; features made up per file name (same file, same feature)."""
    import os
    import zlib
    from types import SimpleNamespace

    from analysis.sweep_data import target_geometry
    from bau.core.config import Config
    from bau.data.base import DISTRACTOR_PID
    from bau.runs.features import collect_items
    from tests import fake_layouts as fl

    centres = unit(np.random.default_rng(0), 20, 8)

    def feature(path, pid):
        noise = np.random.default_rng(zlib.crc32(os.path.basename(path).encode())).standard_normal(8)
        return (centres[pid] if pid >= 0 else 0) + 0.3 * noise

    query = [(3, 1), (4, 2), (5, 1), (6, 3)]
    gallery = [(3, 2), (3, 3), (4, 1), (4, 4), (5, 2), (6, 1), (6, 2), (7, 2)]
    distractors = [(0, 1), (0, 2), (0, 5)]
    geometry, rows = {}, {}
    for tree, extra in (("plain", []), ("with", distractors)):
        fl.make_market_style(str(tmp_path / tree), [(1, 1), (1, 2), (2, 1), (2, 2)], query, gallery + extra)
        items = collect_items([f"folder:{tree}"], str(tmp_path), "test", Config())["items"]
        pids = np.array([pid for _, pid, _ in items])
        assert (pids == DISTRACTOR_PID).sum() == len(extra)
        feats = np.stack([feature(path, pid) for path, pid, _ in items]).astype(np.float32)
        geometry[tree] = target_geometry(SimpleNamespace(features=feats, pids=pids))  # a FeatureSet's fields
        rows[tree] = feats
    assert geometry["with"]["alignment"] == geometry["plain"]["alignment"]
    assert geometry["with"]["uniformity"] != pytest.approx(geometry["plain"]["uniformity"], abs=1e-4)
    assert geometry["with"]["uniformity"] == pytest.approx(brute_uniformity(unit_rows(rows["with"])),
                                                           abs=1e-5)
