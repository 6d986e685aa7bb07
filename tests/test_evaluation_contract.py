"""bau.evaluation.metrics beyond the numbers of test_evaluation.py: the rank kernel against a brute-force
stable argsort on the tie patterns it special-cases, which backend and device run the ranking, the block
sizes, the defaults, the label and bad-input contract (one-line ValueErrors naming the function)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import bau.evaluation.metrics as ev
from bau.evaluation.metrics import (
    distance_matrix,
    evaluate_features,
    evaluate_ranking,
    feature_block_rows,
    pairwise_distance,
    top_k_gallery,
)

pytestmark = pytest.mark.unit

POSITIONS = [ev._positions_numpy, ev._positions_torch]


def _stable_positions(block: np.ndarray) -> np.ndarray:
    """Brute force: the position of every entry of every row in a full stable argsort of its row."""
    out = np.empty(block.shape, dtype=np.int64)
    for i, row in enumerate(block):
        out[i, np.argsort(row, kind="stable")] = np.arange(len(row))
    return out


def _call(positions, block, rows, cols, where="test"):
    data = torch.from_numpy(block) if positions is ev._positions_torch else block
    return positions(data, np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64), where)


# -- the rank kernel ------------------------------------------------------------------------------------------
def _tie_patterns() -> np.ndarray:
    """Rows whose ties are exactly pairs (in the middle, at the top) or single: the cases the tie test must catch."""
    return np.array([
        [5.0, 1.0, 3.0, 3.0, 0.0, 9.0],   # one pair in the middle
        [2.0, 7.0, 4.0, 0.0, 7.0, 1.0],   # the largest value twice: the last two sorted entries tie
        [8.0, 8.0, 1.0, 2.0, 6.0, 6.0],   # two pairs, one of them at the top
        [0.5, 0.25, 1.5, 1.0, 2.0, 3.0],  # no tie
        [4.0, 4.0, 4.0, 1.0, 0.0, 4.0],   # four equal, the largest
    ])


@pytest.mark.parametrize("positions", POSITIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_positions_of_pairs_of_ties_are_the_stable_positions(positions, dtype):
    block = _tie_patterns().astype(dtype)
    rows, cols = np.divmod(np.arange(block.size), block.shape[1])  # every entry of every row
    np.testing.assert_array_equal(_call(positions, block, rows, cols), _stable_positions(block).reshape(-1))
    # Only the later entry of each pair (the one a binary search alone places one too early).
    rows, cols = [0, 1, 2, 2], [3, 4, 1, 5]
    np.testing.assert_array_equal(_call(positions, block, rows, cols), _stable_positions(block)[rows, cols])


@pytest.mark.parametrize("positions", POSITIONS)
def test_positions_with_more_rows_than_columns_and_single_entries(positions):
    rng = np.random.default_rng(3)
    block = rng.permutation(7 * 3).reshape(7, 3).astype(np.float32)
    block[6, 2] = block[6, 0]  # one tie in the last row
    rows, cols = np.array([1, 4, 6, 6]), np.array([2, 0, 0, 2])  # rows beyond the column count
    np.testing.assert_array_equal(_call(positions, block, rows, cols), _stable_positions(block)[rows, cols])
    for r, c in [(0, 0), (6, 2), (5, 1)]:  # exactly one entry to place
        out = _call(positions, block, [r], [c])
        assert out.dtype == np.int64 and out.tolist() == [_stable_positions(block)[r, c]]


@pytest.mark.parametrize("positions", POSITIONS)
def test_positions_of_no_entry_is_an_empty_int64_array(positions):
    out = _call(positions, np.zeros((3, 4), dtype=np.float32), [], [])
    assert isinstance(out, np.ndarray) and out.shape == (0,) and out.dtype == np.int64


@pytest.mark.parametrize("positions", POSITIONS)
def test_positions_refuse_a_single_nan_anywhere_in_the_block(positions):
    block = np.arange(12, dtype=np.float32).reshape(3, 4)
    block[1, 0] = np.nan  # one NaN, in a row of four: it sorts last, the other sorted entries are numbers
    with pytest.raises(ValueError, match=r"^where_it_is: the distances contain NaN; expected real distances "
                                         r"\(check the features\)$"):
        _call(positions, block, [0], [1], where="where_it_is")


def test_torch_positions_stay_on_the_block_device():
    # Under a default device of "meta" every tensor the kernel makes without naming the block's device would be
    # a meta tensor, and mixing it with the CPU block fails: the kernel must name the device of its block.
    block = _tie_patterns().astype(np.float32)
    rows, cols = np.divmod(np.arange(block.size), block.shape[1])
    with torch.device("meta"):
        out = ev._positions_torch(torch.from_numpy(block), rows, cols, "test")
    np.testing.assert_array_equal(out, _stable_positions(block).reshape(-1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_torch_positions_on_a_gpu_block():
    # The index tensors built from NumPy must move to the block's device (on a CPU they are there already).
    block = _tie_patterns().astype(np.float32)
    rows, cols = np.divmod(np.arange(block.size), block.shape[1])
    out = ev._positions_torch(torch.from_numpy(block).cuda(), rows, cols, "test")
    np.testing.assert_array_equal(out, _stable_positions(block).reshape(-1))


# -- which backend and which device -------------------------------------------------------------------------
class _Stop(Exception):
    pass


def _spy_positions(monkeypatch, stop=False):
    """Record which kernel ranks each block (and the block's type and device); ``stop`` ends the run there."""
    calls = []
    for name in ("_positions_numpy", "_positions_torch"):
        real = getattr(ev, name)

        def spy(block, rows, cols, where, _real=real, _name=name):
            device = block.device.type if isinstance(block, torch.Tensor) else "numpy"
            calls.append((_name, device, where))
            if stop:
                raise _Stop
            return _real(block, rows, cols, where)

        monkeypatch.setattr(ev, name, spy)
    return calls


def _problem(num_q=6, num_g=9):
    rng = np.random.default_rng(0)
    distmat = rng.random((num_q, num_g))
    q_pids, g_pids = np.arange(num_q) % 3, np.arange(num_g) % 3
    return distmat, q_pids, g_pids, np.zeros(num_q, dtype=np.int64), np.ones(num_g, dtype=np.int64)


def test_backend_names():
    assert ev._backend(None, True, "w") == "numpy"
    assert ev._backend(None, False, "w") == "torch"
    assert ev._backend("torch", True, "w") == "torch" and ev._backend("numpy", False, "w") == "numpy"
    with pytest.raises(ValueError, match=r"^w: backend must be one of \('numpy', 'torch'\) or None, got 'jax'$"):
        ev._backend("jax", True, "w")


@pytest.mark.parametrize("as_tensor", [False, True])
@pytest.mark.parametrize("backend", [None, "numpy", "torch"])
def test_evaluate_ranking_runs_the_backend_asked_for(as_tensor, backend, monkeypatch):
    distmat, *labels = _problem()
    expected = evaluate_ranking(distmat, *labels, max_rank=5)
    calls = _spy_positions(monkeypatch)
    data = torch.from_numpy(distmat) if as_tensor else distmat
    out = evaluate_ranking(data, *labels, max_rank=5, backend=backend)
    kernel = "_positions_torch" if backend == "torch" else "_positions_numpy"  # a CPU tensor ranks in NumPy
    assert calls == [(kernel, "cpu" if backend == "torch" else "numpy", "evaluate_ranking")]
    assert (out["mAP"], out["mINP"]) == (expected["mAP"], expected["mINP"])


def test_evaluate_ranking_ranks_a_device_tensor_in_torch_on_its_device(monkeypatch):
    calls = _spy_positions(monkeypatch, stop=True)
    distmat, *labels = _problem()
    with pytest.raises(_Stop):
        evaluate_ranking(torch.from_numpy(distmat).to("meta"), *labels)
    assert calls == [("_positions_torch", "meta", "evaluate_ranking")]


def test_evaluate_ranking_accepts_a_tensor_that_requires_grad():
    distmat, *labels = _problem()
    expected = evaluate_ranking(distmat, *labels, max_rank=5)
    for backend in ("numpy", "torch", None):
        out = evaluate_ranking(torch.from_numpy(distmat).requires_grad_(), *labels, max_rank=5, backend=backend)
        assert out["mAP"] == expected["mAP"]


def _features(num_q=6, num_g=9, dim=4):
    rng = np.random.default_rng(1)
    return (rng.normal(size=(num_q, dim)).astype(np.float32), rng.normal(size=(num_g, dim)).astype(np.float32),
            *_problem(num_q, num_g)[1:])


@pytest.mark.parametrize("backend", [None, "numpy", "torch"])
def test_evaluate_features_runs_the_backend_asked_for(backend, monkeypatch):
    qf, gf, *labels = _features()
    expected = evaluate_ranking(pairwise_distance(qf, gf), *labels, max_rank=5)
    calls = _spy_positions(monkeypatch)
    out = evaluate_features(torch.from_numpy(qf), gf, *labels, max_rank=5, backend=backend)
    kernel = "_positions_torch" if backend == "torch" else "_positions_numpy"
    assert calls == [(kernel, "cpu" if backend == "torch" else "numpy", "evaluate_features")]
    assert (out["mAP"], out["mINP"]) == (expected["mAP"], expected["mINP"])


@pytest.mark.parametrize("where", ["device", "features"])
def test_evaluate_features_computes_and_ranks_on_the_device(where, monkeypatch):
    calls = _spy_positions(monkeypatch, stop=True)
    seen = []
    distance_block = ev._distance_block
    monkeypatch.setattr(ev, "_distance_block", lambda q, g, m: seen.append((q.device.type, g.device.type))
                        or distance_block(q, g, m))
    qf, gf, *labels = _features()
    with pytest.raises(_Stop):
        if where == "device":  # CPU features, device="meta"
            evaluate_features(qf, gf, *labels, device="meta")
        else:  # meta query features: the gallery follows them
            evaluate_features(torch.from_numpy(qf).to("meta"), gf, *labels)
    assert seen == [("meta", "meta")] and calls == [("_positions_torch", "meta", "evaluate_features")]


def test_distance_matrix_device():
    qf, gf = _features()[:2]
    out = distance_matrix(qf, gf, device="meta")  # computed where asked ...
    assert out.device.type == "meta" and out.shape == (6, 9) and out.dtype == torch.float32
    out = distance_matrix(torch.from_numpy(qf).to("meta"), gf)  # ... by default where the query features are
    assert out.device.type == "meta" and out.shape == (6, 9)
    out = distance_matrix(qf, gf)
    assert out.device.type == "cpu"
    np.testing.assert_array_equal(out.numpy(), pairwise_distance(qf, gf))


def test_distances_are_float32_whatever_the_default_dtype():
    qf, gf = _features()[:2]
    expected = pairwise_distance(qf, gf)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        out = distance_matrix(qf.astype(np.float64), gf.astype(np.float64))
        assert out.dtype == torch.float32 and pairwise_distance(qf, gf).dtype == np.float32
    finally:
        torch.set_default_dtype(previous)
    np.testing.assert_array_equal(out.numpy(), expected)


# -- block sizes and chunks -----------------------------------------------------------------------------------
def _spy_blocks(monkeypatch):
    seen = []
    distance_block = ev._distance_block
    monkeypatch.setattr(ev, "_distance_block", lambda q, g, m: seen.append(len(q)) or distance_block(q, g, m))
    return seen


def test_chunks_of_one_row_fill_every_row(monkeypatch):
    qf, gf = _features()[:2]
    qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    seen = _spy_blocks(monkeypatch)
    np.testing.assert_allclose(pairwise_distance(qf, gf, "cosine", chunk_size=1), 1 - qn @ gn.T, atol=1e-6)
    np.testing.assert_allclose(distance_matrix(qf, gf, "cosine", chunk_size=1).numpy(), 1 - qn @ gn.T, atol=1e-6)
    assert seen == [1] * 12


def test_default_chunk_is_4096_query_rows(monkeypatch):
    qf, gf = np.ones((4097, 2), dtype=np.float32), np.ones((1, 2), dtype=np.float32)
    seen = _spy_blocks(monkeypatch)
    pairwise_distance(qf, gf)
    distance_matrix(qf, gf)
    assert seen == [4096, 1, 4096, 1]


@pytest.mark.parametrize("elements, num_g, step", [(9, 9, 1), (5, 9, 1), (4, 1, 4), (4, 0, 4)])
def test_evaluate_ranking_block_rows(elements, num_g, step, monkeypatch):
    # rows per block = _BLOCK_ELEMENTS // gallery size, at least one row (a gallery of 0 or 1 entries: the budget).
    monkeypatch.setattr(ev, "_BLOCK_ELEMENTS", elements)
    blocks = []
    real = ev._positions_numpy
    monkeypatch.setattr(ev, "_positions_numpy", lambda b, r, c, w: blocks.append(b.shape) or real(b, r, c, w))
    distmat, q_pids, g_pids, q_cams, g_cams = _problem(num_q=6, num_g=max(num_g, 1))
    distmat, g_pids, g_cams = distmat[:, :num_g], g_pids[:num_g], g_cams[:num_g]
    try:
        evaluate_ranking(distmat, q_pids, g_pids, q_cams, g_cams)
    except ValueError as error:  # a gallery of one image matches only one query identity; of none, no query
        assert "no query has a true match" in str(error) and num_g <= 1
    expected = [min(step, 6 - start) for start in range(0, 6, step)]
    assert [b[0] for b in blocks] == expected and all(b[1] == num_g for b in blocks)


def test_feature_block_rows():
    assert feature_block_rows(0) == feature_block_rows(1) == 256  # capped at 256 rows
    assert feature_block_rows(82161) == 256 and feature_block_rows(200_000) == (1 << 25) // 200_000 == 167
    assert feature_block_rows(1 << 26) == 1 and feature_block_rows(10**9) == 1  # at least one row


def test_feature_block_rows_splits_the_budget(monkeypatch):
    monkeypatch.setattr(ev, "_FEATURE_BLOCK_ELEMENTS", 100)
    assert [feature_block_rows(n) for n in (0, 1, 2, 3, 100, 101)] == [100, 100, 50, 33, 1, 1]


def test_a_block_without_any_same_id_entry(monkeypatch):
    # One query per block; queries 0 and 2 have no gallery image of their identity at all.
    # Query 1 (pid 1) finds its matches at ranks 1 and 3, query 3 (pid 2) at ranks 2 and 4.
    monkeypatch.setattr(ev, "_BLOCK_ELEMENTS", 4)
    distmat = np.array([[0.1, 0.2, 0.3, 0.4]] * 4)
    labels = ([7, 1, 8, 2], [1, 2, 1, 2], [0, 0, 0, 0], [1, 1, 1, 1])
    for backend in ("numpy", "torch"):
        out = evaluate_ranking(distmat, *labels, max_rank=2, backend=backend)
        assert out["num_valid_queries"] == 2 and out["mAP"] == pytest.approx((5 / 6 + 1 / 2) / 2)
        np.testing.assert_array_equal(out["cmc"], [0.5, 1.0])


# -- defaults ------------------------------------------------------------------------------------------------
def test_default_max_rank_is_50():
    distmat, *labels = _problem()
    assert evaluate_ranking(distmat, *labels)["cmc"].shape == (50,)
    qf, gf, *labels = _features()
    assert evaluate_features(qf, gf, *labels)["cmc"].shape == (50,)


def test_max_rank_one_is_rank1_only():
    distmat, *labels = _problem()
    out = evaluate_ranking(distmat, *labels, max_rank=1)
    assert out["cmc"].shape == (1,)
    assert out["cmc"][0] == evaluate_ranking(distmat, *labels, max_rank=5)["cmc"][0]


# -- the metric of evaluate_features --------------------------------------------------------------------------
def test_evaluate_features_ranks_by_the_metric_asked_for(monkeypatch):
    # For unit features the two metrics rank alike (2 - 2s against 1 - s) except where euclidean clamps at 0, which
    # needs a rounding accident; so the metric each distance block is computed with is recorded instead.
    qf, gf, *labels = _features()
    seen = []
    block = ev._distance_block

    def recording(q, g, metric):
        seen.append(metric)
        return block(q, g, metric)

    monkeypatch.setattr(ev, "_distance_block", recording)
    cosine = evaluate_features(qf, gf, *labels, metric="cosine")
    assert seen and set(seen) == {"cosine"}
    seen.clear()
    evaluate_features(qf, gf, *labels)
    assert seen and set(seen) == {"euclidean"}  # euclidean by default
    monkeypatch.setattr(ev, "_distance_block", block)
    want = evaluate_ranking(pairwise_distance(qf, gf, "cosine"), *labels)
    assert cosine["mAP"] == pytest.approx(want["mAP"], abs=1e-12)
    np.testing.assert_allclose(cosine["cmc"], want["cmc"], atol=1e-12)


# -- labels --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("values", [np.array([[3], [1], [2]], dtype=np.int32), np.array([3, 1, 2], dtype=np.uint8),
                                    np.array([3.0, 1.0, 2.0], dtype=np.float32), torch.tensor([[3, 1, 2]])])
def test_labels_are_flat_int64(values):
    out = ev._labels(values, "g_pids", "w")
    assert out.dtype == np.int64 and out.shape == (3,) and out.tolist() == [3, 1, 2]
    flags = ev._labels(np.array([True, False]), "g_pids", "w")
    assert flags.dtype == np.int64 and flags.tolist() == [1, 0]


def test_labels_keep_every_int64_bit():
    # 2**53 and 2**53 + 1 are one float64: two identities only as integers.
    big = 2**53
    distmat = np.array([[0.1, 0.2, 0.3]])
    out = evaluate_ranking(distmat, [big + 1], [big, big + 1, 5], [0], [1, 1, 1], max_rank=3)
    assert out["mAP"] == 0.5 and out["cmc"].tolist() == [0.0, 1.0, 1.0]


def test_column_vector_labels_are_accepted():
    distmat, q_pids, g_pids, q_cams, g_cams = _problem()
    expected = evaluate_ranking(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=5)
    out = evaluate_ranking(distmat, q_pids[:, None], g_pids[:, None], q_cams[:, None], g_cams[:, None], max_rank=5)
    assert out["mAP"] == expected["mAP"]
    np.testing.assert_array_equal(out["cmc"], expected["cmc"])
    indices, _ = top_k_gallery(distmat[:1], q_pids[0], q_cams[0], g_pids[:, None], g_cams[:, None], k=9)
    assert indices.tolist() == np.argsort(distmat[0], kind="stable").tolist()


def test_gallery_groups_list_the_same_id_entries_in_gallery_order():
    rng = np.random.default_rng(0)
    g_pids = rng.integers(-1, 3, 500)  # groups of ~125 entries: an unstable sort would shuffle them
    g_cams = rng.integers(0, 2, 500)
    groups = ev._GalleryGroups(g_pids, g_cams)
    q_pids, q_cams = np.array([2, -1, 0, 9, 1]), np.array([0, 0, 1, 1, 0])
    rows, cols, junk = groups.relevant(q_pids, q_cams)
    expected = [(i, j) for i in range(5) for j in range(500) if q_pids[i] >= 0 and g_pids[j] == q_pids[i]]
    assert list(zip(rows.tolist(), cols.tolist())) == expected
    np.testing.assert_array_equal(junk, g_cams[cols] == q_cams[rows])
    for g, q in [(np.array([-1, -2]), np.array([1])), (np.array([1, 2]), np.zeros(0, dtype=np.int64))]:
        rows, cols, junk = ev._GalleryGroups(g, np.zeros(len(g), dtype=np.int64)).relevant(q, np.zeros_like(q))
        assert rows.shape == cols.shape == junk.shape == (0,)
        assert (rows.dtype, cols.dtype, junk.dtype) == (np.int64, np.int64, np.bool_)


# -- bad input: one-line ValueErrors naming the function ------------------------------------------------------
D = np.array([[0.1, 0.2], [0.3, 0.4]])
L = ([1, 2], [1, 2], [0, 0], [1, 1])
F2, F3 = np.ones((2, 3)), np.ones((3, 3))
NO_MATCH = ("no query has a true match in the gallery outside its own camera; "
            "check that the query/gallery pids and camids are right")


def _nan(x):
    x = np.array(x, dtype=np.float64)
    x.flat[0] = np.nan
    return x


BAD = [
    # evaluate_ranking
    (lambda: evaluate_ranking(D, [1], *L[1:]),
     "evaluate_ranking: distmat has 2 query rows but 1 query pids and 2 query camids"),
    (lambda: evaluate_ranking(D, L[0], L[1], [0], L[3]),
     "evaluate_ranking: distmat has 2 query rows but 2 query pids and 1 query camids"),
    (lambda: evaluate_ranking(D, L[0], [1], *L[2:]),
     "evaluate_ranking: distmat has 2 gallery columns but 1 gallery pids and 2 gallery camids"),
    (lambda: evaluate_ranking(D, *L[:3], [1, 1, 1]),
     "evaluate_ranking: distmat has 2 gallery columns but 2 gallery pids and 3 gallery camids"),
    (lambda: evaluate_ranking(D, [1.5, 2], *L[1:]), "evaluate_ranking: q_pids must be integers, got float64 values"),
    (lambda: evaluate_ranking(D, L[0], ["a", "b"], *L[2:]),
     "evaluate_ranking: g_pids must be integers, got <U1 values"),
    (lambda: evaluate_ranking(D, *L[:2], [0.5, 0], L[3]),
     "evaluate_ranking: q_camids must be integers, got float64 values"),
    (lambda: evaluate_ranking(D, *L[:3], [np.inf, 1]),
     "evaluate_ranking: g_camids must be integers, got float64 values"),
    (lambda: evaluate_ranking(D, *L, max_rank=0), "evaluate_ranking: max_rank must be an integer >= 1, got 0"),
    (lambda: evaluate_ranking(D, *L, max_rank=2.0), "evaluate_ranking: max_rank must be an integer >= 1, got 2.0"),
    (lambda: evaluate_ranking(D, *L, backend="cupy"),
     "evaluate_ranking: backend must be one of ('numpy', 'torch') or None, got 'cupy'"),
    (lambda: evaluate_ranking(D[0], [1], L[1], [0], L[3]),
     "evaluate_ranking: distmat must be 2-D [Q, G], got shape (2,)"),
    (lambda: evaluate_ranking(torch.ones(2, 2, dtype=torch.bool), *L),
     "evaluate_ranking: distmat must hold real numbers, got torch.bool"),
    (lambda: evaluate_ranking(torch.ones(2, 2, dtype=torch.complex64), *L),
     "evaluate_ranking: distmat must hold real numbers, got torch.complex64"),
    (lambda: evaluate_ranking(np.ones((2, 2), dtype=complex), *L),
     "evaluate_ranking: distmat must hold real numbers, got complex128"),
    (lambda: evaluate_ranking(_nan(D), *L), "evaluate_ranking: the distances contain NaN; expected real distances "
     "(check the features)"),
    (lambda: evaluate_ranking(_nan(D), *L, backend="torch"), "evaluate_ranking: the distances contain NaN; "
     "expected real distances (check the features)"),
    (lambda: evaluate_ranking(D, [1, 2], [3, 4], *L[2:]), f"evaluate_ranking: {NO_MATCH}"),
    # evaluate_features
    (lambda: evaluate_features(np.ones((2, 3, 3)), F3, *L),
     "evaluate_features: expected features [Q, d] and [G, d], got (2, 3, 3) and (3, 3)"),
    (lambda: evaluate_features(F2, np.ones((2, 3, 3)), *L),
     "evaluate_features: expected features [Q, d] and [G, d], got (2, 3) and (2, 3, 3)"),
    (lambda: evaluate_features(F2, np.ones((2, 4)), *L),
     "evaluate_features: expected features [Q, d] and [G, d], got (2, 3) and (2, 4)"),
    (lambda: evaluate_features(F2.astype(bool), F2, *L),
     "evaluate_features: features must be real numbers, got torch.bool and torch.float64"),
    (lambda: evaluate_features(F2, F2.astype(bool), *L),
     "evaluate_features: features must be real numbers, got torch.float64 and torch.bool"),
    (lambda: evaluate_features(F2, F2, *L, metric="l1"),
     "evaluate_features: metric must be 'euclidean' or 'cosine', got 'l1'"),
    (lambda: evaluate_features(F2, F3, *L),
     "evaluate_features: features have 3 gallery columns but 2 gallery pids and 2 gallery camids"),
    (lambda: evaluate_features(F2, F2, [1], *L[1:]),
     "evaluate_features: features have 2 query rows but 1 query pids and 2 query camids"),
    (lambda: evaluate_features(F2, F2, L[0], [0.5, 1], *L[2:]),
     "evaluate_features: g_pids must be integers, got float64 values"),
    (lambda: evaluate_features(F2, F2, *L, backend="cupy"),
     "evaluate_features: backend must be one of ('numpy', 'torch') or None, got 'cupy'"),
    (lambda: evaluate_features(_nan(F2), F2, *L), "evaluate_features: the distances contain NaN; "
     "expected real distances (check the features)"),
    (lambda: evaluate_features(_nan(F2), F2, *L, backend="torch"), "evaluate_features: the distances contain NaN; "
     "expected real distances (check the features)"),
    (lambda: evaluate_features(F2, F2, [1, 2], [3, 4], *L[2:]), f"evaluate_features: {NO_MATCH}"),
    # pairwise_distance, distance_matrix
    (lambda: pairwise_distance(F2, F2, "l2"), "pairwise_distance: metric must be 'euclidean' or 'cosine', got 'l2'"),
    (lambda: pairwise_distance(F2, np.ones((2, 4))),
     "pairwise_distance: expected features [Q, d] and [G, d], got (2, 3) and (2, 4)"),
    (lambda: pairwise_distance(F2.astype(complex), F2),
     "pairwise_distance: features must be real numbers, got torch.complex128 and torch.float64"),
    (lambda: distance_matrix(F2, F2, "l2"), "distance_matrix: metric must be 'euclidean' or 'cosine', got 'l2'"),
    (lambda: distance_matrix(np.ones(3), F2),
     "distance_matrix: expected features [Q, d] and [G, d], got (3,) and (2, 3)"),
    (lambda: distance_matrix(F2, F2.astype(bool)),
     "distance_matrix: features must be real numbers, got torch.float64 and torch.bool"),
    # top_k_gallery
    (lambda: top_k_gallery(np.array([True, False]), 1, 0, [1, 2], [1, 1], k=1),
     "top_k_gallery: distances must be real numbers, got bool"),
    (lambda: top_k_gallery([0.1, 0.2], 1, 0, [1, 2.5], [1, 1], k=1),
     "top_k_gallery: g_pids must be integers, got float64 values"),
    (lambda: top_k_gallery([0.1, 0.2], 1, 0, [1, 2], ["x", "y"], k=1),
     "top_k_gallery: g_camids must be integers, got <U1 values"),
    (lambda: top_k_gallery([0.1, 0.2], 1, 0, [1, 2, 3], [1, 1], k=1),
     "top_k_gallery: 2 distances but 3 gallery pids and 2 gallery camids"),
    (lambda: top_k_gallery([0.1, 0.2], 1, 0, [1, 2], [1], k=1),
     "top_k_gallery: 2 distances but 2 gallery pids and 1 gallery camids"),
    (lambda: top_k_gallery([0.1, 0.2], 1, 0, [1, 2], [1, 1], k=0), "top_k_gallery: k must be at least 1, got 0"),
    (lambda: top_k_gallery([0.1, np.nan], 1, 0, [1, 2], [1, 1], k=1),
     "top_k_gallery: the distances contain NaN; expected real distances (check the features)"),
]


@pytest.mark.parametrize("call, message", BAD, ids=[m[:60] for _, m in BAD])
def test_bad_input_names_the_function(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == message
