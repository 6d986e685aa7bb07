"""The benchmark scripts: their reference implementations against hand-computed values, their helpers,
and one tiny run of each ``main(argv)`` that must print (and write) the expected figures."""
from __future__ import annotations

import json
import math
import os
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks import common, data_pipeline, ranking, reranking, train_step  # noqa: E402
from bau.evaluation import evaluate_ranking  # noqa: E402
from bau.reranking import re_ranking  # noqa: E402


# -- common ---------------------------------------------------------------------------------------
def test_time_repeated_median_and_last_result():
    calls = []

    def fn():
        calls.append(1)
        return len(calls)

    timing = common.time_repeated(fn, repeats=3, warmup=2)
    assert len(calls) == 5 and len(timing.times) == 3
    assert timing.last_result == 5
    assert timing.median == sorted(timing.times)[1] and timing.best == min(timing.times)


def test_measure_memory_sees_a_numpy_allocation():
    def allocate():
        a = np.ones(40 * 2**20 // 8)  # 40 MiB, every page touched
        return float(a.sum())

    result, memory = common.measure_memory(allocate)
    assert result == 40 * 2**20 // 8
    assert 39.0 <= memory.traced_peak_mb <= 45.0
    if memory.exact_rss:  # Linux: the kernel's peak counter was reset for this call
        assert 35.0 <= memory.rss_growth_mb <= 60.0


def test_peak_of_takes_the_larger_figure():
    assert common.peak_of({"traced_peak_mb": 3.0, "rss_growth_mb": 5.0}) == 5.0
    assert common.peak_of({"traced_peak_mb": 7.0, "rss_growth_mb": 5.0}) == 7.0
    assert common.peak_of(None) is None


def test_machine_description_has_the_essentials():
    info = common.machine_description()
    assert info["cores"] >= 1 and "numpy" in info and "torch_threads" in info
    assert "load average" in common.describe_machine_line(info)


# -- ranking --------------------------------------------------------------------------------------
def test_per_query_loop_hand_example():
    # One query (pid 1, camera 0). Gallery sorted by distance: g0 pid 1 cam 0 (junk), g1 pid 2,
    # g2 pid 1 cam 1 (hit), g3 pid 3, g4 pid 1 cam 2 (hit). Without the junk the hits sit at ranks 2 and 4:
    # AP = (1/2 + 2/4) / 2 = 0.5, INP = 2 / 4, CMC = [0, 1, 1, ...].
    distmat = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])
    g_pids, g_cams = np.array([1, 2, 1, 3, 1]), np.array([0, 0, 1, 1, 2])
    out = ranking.per_query_loop(distmat, np.array([1]), g_pids, np.array([0]), g_cams, max_rank=6)
    assert out["mAP"] == pytest.approx(0.5)
    assert out["mINP"] == pytest.approx(0.5)
    assert out["num_valid_queries"] == 1
    np.testing.assert_allclose(out["cmc"], [0, 1, 1, 1, 1, 1])  # padded past the 4 kept entries


def test_per_query_loop_skips_queries_without_cross_camera_match():
    distmat = np.array([[0.1, 0.2], [0.2, 0.1]])
    out = ranking.per_query_loop(distmat, np.array([1, 2]), np.array([1, 2]), np.array([0, 0]), np.array([1, 0]),
                                 max_rank=2)
    assert out["num_valid_queries"] == 1 and out["mAP"] == pytest.approx(1.0)  # query 2's only match is junk


def test_market_like_problem_structure():
    f = ranking.market_like_features(num_queries=60, num_gallery=300, num_ids=15, num_cams=6, num_distractors=40,
                                     seed=3)
    assert f.q_feats.shape == (60, 128) and f.g_feats.shape == (300, 128)
    assert set(np.unique(f.g_pids[f.g_pids <= 0])) <= {0, -1} and np.sum(f.g_pids <= 0) == 40
    for pid, cam in zip(f.q_pids, f.q_camids):
        same = f.g_pids == pid
        assert np.any(same & (f.g_camids != cam)), "every query needs a cross-camera match"
        assert np.any(same & (f.g_camids == cam)), "every query has same-camera junk"
    per_id = np.bincount(f.q_pids)[1:]
    assert per_id.min() >= 2 and per_id.max() <= 6
    assert len({(p, c) for p, c in zip(f.q_pids, f.q_camids)}) == 60  # one query per (id, camera)


def test_loop_matches_bau_on_the_benchmark_problem():
    p = ranking.market_like_problem(num_queries=80, num_gallery=400, num_ids=20, num_distractors=70, seed=1)
    a = ranking.run_loop(p, 10)
    b = evaluate_ranking(p.distmat, p.q_pids, p.g_pids, p.q_camids, p.g_camids, max_rank=10)
    diff = ranking.compare_metrics(a, b)
    assert diff["mAP_abs_diff"] < 1e-12 and diff["cmc_max_abs_diff"] < 1e-12 and diff["same_valid_queries"]


def test_stable_loop_orders_ties_by_gallery_index():
    # g0 (a non-match) and g1 (the only match) are tied: a stable sort puts g0 first, so the match is
    # at rank 2 (AP 1/2); with the match first it would be rank 1.
    distmat = np.array([[0.5, 0.5, 0.9]])
    out = ranking.per_query_loop(distmat, np.array([1]), np.array([2, 1, 3]), np.array([0]), np.array([1, 1, 1]),
                                 max_rank=3, kind="stable")
    assert out["mAP"] == pytest.approx(0.5)
    np.testing.assert_allclose(out["cmc"], [0, 1, 1])


def test_tied_relevant_entries_counts_exact_ties():
    p = ranking.RankingProblem(distmat=np.array([[0.5, 0.5, 0.7, 0.9]], dtype=np.float32), q_pids=np.array([1]),
                               g_pids=np.array([1, 2, 1, 3]), q_camids=np.array([0]), g_camids=np.array([1, 1, 0, 1]))
    assert ranking.tied_relevant_entries(p) == {"relevant_entries": 2, "tied_relevant_entries": 1}


# -- re-ranking -----------------------------------------------------------------------------------
def test_dense_re_ranking_hand_example():
    # 1 query at 0, gallery at 0.1 and 10 on a line; k1 = 1, k2 = 1, lambda = 0 (pure Jaccard).
    q_g = np.array([[0.1, 10.0]])
    q_q = np.zeros((1, 1))
    g_g = np.array([[0.0, 9.9], [9.9, 0.0]])
    out = reranking.dense_re_ranking(q_g, q_q, g_g, k1=1, k2=1, lambda_value=0.0, v_dtype=np.float64)
    wq = np.array([1.0, math.exp(-0.01 / 100.0)])
    wq /= wq.sum()
    wg = np.array([math.exp(-0.01 / 9.9**2), 1.0])
    wg /= wg.sum()
    m = np.minimum(wq, wg).sum()
    assert out[0, 0] == pytest.approx(1 - m / (2 - m), abs=1e-6)
    assert out[0, 1] == pytest.approx(1.0)


@pytest.mark.parametrize("k1,k2", [(20, 6), (5, 1), (3, 2)])
def test_dense_re_ranking_matches_bau(k1, k2):
    distances, _ = reranking.make_distances(30, 120, seed=k1)
    dense = reranking.dense_re_ranking(*distances, k1=k1, k2=k2, lambda_value=0.3, v_dtype=np.float64)
    fast = re_ranking(*distances, k1=k1, k2=k2, lambda_value=0.3)
    np.testing.assert_allclose(dense, fast, atol=1e-6, rtol=0)
    # float16 V (the common implementation's storage) only rounds
    rounded = reranking.dense_re_ranking(*distances, k1=k1, k2=k2, lambda_value=0.3, v_dtype=np.float16)
    np.testing.assert_allclose(rounded, fast, atol=2e-3, rtol=0)


# -- train step and data pipeline ------------------------------------------------------------------
def test_training_items_cover_every_file_and_identity():
    items = data_pipeline.training_items(["a.jpg", "b.jpg", "c.jpg"], num_ids=2, k=4)
    assert len(items) == 8 and {p for p, _, _, _ in items} == {"a.jpg", "b.jpg", "c.jpg"}
    assert {pid for _, pid, _, _ in items} == {0, 1}


# -- tiny end-to-end runs -------------------------------------------------------------------------
def _load(path):
    with open(path) as f:
        return json.load(f)


def test_ranking_main_tiny(tmp_path, capsys):
    out = tmp_path / "ranking.json"
    ranking.main(["--queries", "40", "--gallery", "200", "--ids", "10", "--repeats", "2", "--memory", "inline",
                  "--json", str(out)])
    text = capsys.readouterr().out
    for field in ("40 queries x 200 gallery", "median s", "x argsort", "NumPy peak MB", "RSS peak growth MB",
                  "check vs loop (stable argsort)", "identical", "target: bau <= 0.7x the argsort floor",
                  "load average"):
        assert field in text
    data = _load(out)
    assert data["checks"]["identical"] is True
    assert set(data["results"]) == {"bau", "loop", "argsort"}
    assert data["results"]["argsort"]["x_argsort_floor"] == pytest.approx(1.0)
    assert data["results"]["bau"]["memory"]["traced_peak_mb"] >= 0


def test_ranking_msmt_main_tiny(tmp_path, capsys):
    out = tmp_path / "msmt.json"
    ranking.main(["--msmt", "--queries", "60", "--gallery", "300", "--ids", "20", "--dim", "32", "--repeats", "1",
                  "--json", str(out)])
    text = capsys.readouterr().out
    for field in ("60 queries x 300 gallery (20 ids, 15 cameras, 0 distractors), 32-d", "it is never built",
                  "one block of 60 queries", "argsort floor", "x distances + argsort", "RSS peak growth MB",
                  "vs evaluate_ranking of its full rows", "-> identical", "target: under 60 s and under 2048 MB"):
        assert field in text
    data = _load(out)
    assert data["checks"]["first_block_identical"] is True and data["size"]["block_rows"] == 60
    assert data["checks"]["num_valid_queries"] == 60 and 0 < data["checks"]["mAP"] <= 1
    assert data["results"]["evaluate_features"]["memory"]["rss_growth_mb"] >= 0


def test_msmt_features_in_chunks_keep_the_structure():
    f = ranking.market_like_features(num_queries=90, num_gallery=500, num_ids=30, num_cams=15, num_distractors=20,
                                     dim=16, noise=3.0, seed=2, chunk_rows=64)
    assert f.q_feats.dtype == f.g_feats.dtype == np.float32 and f.g_feats.shape == (500, 16)
    assert np.sum(f.g_pids <= 0) == 20 and np.all(np.isfinite(f.g_feats))
    same = ranking.market_like_features(num_queries=90, num_gallery=500, num_ids=30, num_cams=15, num_distractors=20,
                                        dim=16, noise=3.0, seed=2, chunk_rows=500)
    np.testing.assert_array_equal(f.g_pids, same.g_pids)  # labels do not depend on the chunking


def test_reranking_main_tiny_in_fresh_processes(tmp_path, capsys):
    out = tmp_path / "reranking.json"
    reranking.main(["--queries", "20", "--gallery", "100", "--repeats", "1", "--threads", "1", "--v-dtype", "float64",
                    "--json", str(out)])
    text = capsys.readouterr().out
    for field in ("20 queries x 100 gallery", "median s", "RSS peak growth MB", "|mAP diff|", "-> same",
                  "target: bau >= 3x faster"):
        assert field in text
    data = _load(out)
    assert data["checks"]["mAP_same"] is True and data["checks"]["max_distance_abs_diff"] < 1e-6
    assert data["results"]["dense"]["memory"]["exact_rss"] in (True, False)  # measured in a fresh process


def test_train_step_main_tiny(tmp_path, capsys):
    out = tmp_path / "train.json"
    train_step.main(["--tiny", "--steps", "2", "--warmup", "1", "--data", str(tmp_path / "synth"),
                     "--json", str(out)])
    text = capsys.readouterr().out
    for field in ("2 x 8 = 16 images per step", "plain", "fast", "bare torchvision (NCHW)", "x bare",
                  "faster than the plain path", "target: fast step <= 0.8x"):
        assert field in text
    data = _load(out)
    for name in ("plain", "fast"):
        r = data["results"][name]
        assert set(r["phases_s"]) == set(train_step.PHASES) and all(v >= 0 for v in r["phases_s"].values())
        assert len(r["times_s"]) == 2 and r["ratio_to_bare"] == pytest.approx(r["step_s"] / data["results"]["bare_s"])
    assert data["checks"]["met"] == (data["checks"]["fast_ratio_to_bare"] <= 0.8)


def test_data_pipeline_main_tiny(tmp_path, capsys):
    out = tmp_path / "pipeline.json"
    data_pipeline.main(["--samples", "8", "--repeats", "1", "--num-ids", "2", "--batches", "1", "--workers", "1",
                        "--height", "64", "--width", "32", "--json", str(out)])
    text = capsys.readouterr().out
    for field in ("samples/s", "images/s", "DataLoader, 1 worker", "reference: original view only",
                  "ASSUMED GPU step time", "workers"):
        assert field in text
    data = _load(out)
    per_worker = data["results"]["images_per_s_per_worker"]["single process"]
    expected = math.ceil(512 / (per_worker * 0.35))
    assert data["checks"]["workers_needed"]["single process"] == expected
