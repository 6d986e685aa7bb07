"""The benchmark scripts: their reference implementations against hand-computed values, their helpers,
and one tiny run of each ``main(argv)`` that must print (and write) the expected figures."""
from __future__ import annotations

import json
import math
import os
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.integration

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bau.engine.trainer import build_step  # noqa: E402
from bau.evaluation.metrics import evaluate_ranking  # noqa: E402
from bau.evaluation.reranking import re_ranking  # noqa: E402
from benchmarks import common, data_pipeline, gpu_check, ranking, reranking, train_step  # noqa: E402


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


def test_train_step_main_tiny(tmp_path, capsys, tiny_synth):
    out = tmp_path / "train.json"
    train_step.main(["--tiny", "--steps", "2", "--warmup", "1", "--data", tiny_synth,
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


# -- gpu_check ------------------------------------------------------------------------------------
def test_gpu_check_class_layout_and_batch():
    layout = gpu_check.class_layout(gpu_check.FULL)
    assert layout.num_classes == 1041 + 11934 + 767 == 13742 and layout.domain_names == ["msmt17", "cuhksysu", "cuhk03"]
    assert np.bincount(layout.class_domains).tolist() == [1041, 11934, 767]
    cfg = gpu_check.paper_config(gpu_check.FULL)
    assert ((cfg.model.backbone, cfg.model.last_stride, cfg.data.num_ids, cfg.data.num_instances)
            == ("resnet50", 1, 64, 4))
    assert (cfg.data.height, cfg.data.width, cfg.model.bn_views, cfg.model.pretrained) == (256, 128, "split", False)
    tiny = gpu_check.paper_config(gpu_check.TINY)
    batch = gpu_check.random_batch(tiny, gpu_check.class_layout(gpu_check.TINY), seed=3, num_ids=3)
    pids = batch["pid"].tolist()
    assert batch["images"].shape == (2 * 3 * 2, 3, 32, 16) and len(pids) == 6
    assert pids[0::2] == pids[1::2] and len(set(pids)) == 3  # P distinct classes, K = 2 each, grouped
    assert batch["domain"].tolist() == [p // 4 for p in pids]  # 4 classes per domain in the tiny layout


def test_gpu_check_loss_terms_are_the_steps_logged_values():
    """loss_terms (what the CPU-vs-device check compares) = the values TrainStep logs for the batch."""
    import torch

    cfg = gpu_check.paper_config(gpu_check.TINY, ["train.amp=false"])
    layout = gpu_check.class_layout(gpu_check.TINY)
    batch = gpu_check.random_batch(cfg, layout, seed=1)
    step = build_step(cfg, layout, torch.device("cpu"), seed=0)
    terms = gpu_check.loss_terms(step, batch)
    values, _ = step(batch)
    assert set(terms) == set(values) == {"ce", "tri", "align", "uniform", "domain", "total"}
    for k in values:
        assert terms[k] == pytest.approx(values[k], abs=1e-6)
    assert terms["total"] == pytest.approx(terms["ce"] + terms["tri"] + 1.5 * terms["align"] + terms["uniform"]
                                           + terms["domain"], abs=1e-5)


def test_gpu_check_worker_error_line():
    output = ("[rank0]: Traceback (most recent call last):\n[rank0]:   File \"w.py\", line 3\n"
              "[rank0]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
              "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n" + "=" * 60 + "\n")
    assert gpu_check.worker_error(output) == "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert gpu_check.worker_error("just this\n----\n") == "just this"
    assert gpu_check.worker_error("") == "no output"


def test_gpu_check_tiny_on_cpu(tmp_path, capsys):
    """Every section's code path at tiny sizes on the CPU, and its numbers against references."""
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--device", "cpu", "--tiny", "--threads", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    for field in ("[step] passed", "[loss] passed", "[torchrun] passed", "[ranking] passed", "[reranking] passed",
                  "[gradcam] passed", "[loader] passed", "AMP on (AMP is CUDA-only: off)", "backend gloo",
                  "CrossRankBatchNorm", "at backbone.in1, 8x4 cells", "all 7 section(s) passed"):
        assert field in text, field
    data = _load(out)
    r, checks = data["results"], data["checks"]
    assert checks["all_passed"] and not checks["failed"] and set(checks["sections"]) == set(gpu_check.SECTIONS)
    # step: P x K x 2 views, finite losses, a rate that is the images over the median time
    amp = r["step"]["amp"]
    assert amp["images_per_step"] == 8 and amp["amp_used"] is False and len(amp["times_s"]) == 1
    assert amp["images_per_s"] == pytest.approx(8 / amp["step_s"])
    # loss: both sides on the CPU, same weights and batch -> the same numbers
    assert r["loss"]["max_abs_diff"] == 0.0 and set(r["loss"]["cpu"]) >= {"ce", "align", "domain", "total"}
    # torchrun: every BatchNorm of ResNet-50 (53) and the BNNeck converted; DDP = the plain step
    tr = r["torchrun"]
    assert (tr["backend"], tr["world_size"], tr["sync_batchnorm"], tr["unsynchronised_batchnorm"]) == ("gloo", 1, 54, 0)
    assert tr["ddp_loss"] == pytest.approx(tr["plain_loss"], rel=1e-6)
    # ranking: the torch backend's mAP = the per-query loop's on the same problem
    s = gpu_check.TINY
    f = ranking.market_like_features(s.queries, s.gallery, num_ids=s.ranking_ids,
                                     num_distractors=round(s.gallery * 2798 / 15913), dim=s.dim, noise=3.0, seed=0,
                                     chunk_rows=4096)
    from bau.evaluation.metrics import pairwise_distance

    loop = ranking.per_query_loop(pairwise_distance(f.q_feats, f.g_feats), f.q_pids, f.g_pids, f.q_camids, f.g_camids)
    assert r["ranking"]["identical"] and r["ranking"]["mAP"] == pytest.approx(loop["mAP"], abs=1e-9)
    # re-ranking: the mAP of bau's re-ranking of the same distances
    distances, labels = reranking.make_distances(s.rerank_queries, s.rerank_gallery, 0)
    expected = evaluate_ranking(re_ranking(*distances), labels["q_pids"], labels["g_pids"], labels["q_camids"],
                                labels["g_camids"])["mAP"]
    assert r["reranking"]["mAP_device"] == pytest.approx(expected, abs=1e-12) and r["reranking"]["mAP_abs_diff"] == 0
    # Grad-CAM: ResNet-50 at 32x16 -> the IN after layer1, 8x4 cells, some lit
    g = r["gradcam"]
    assert (g["layer"], g["map_hw"]) == ("backbone.in1", [8, 4]) and g["cells_max"] > 0 and g["maps_valid"]
    # loader: workers = ceil(step rate / one worker's rate), measured in the same run
    ld = r["loader"]
    assert ld["step_images_per_s_amp"] == amp["images_per_s"]
    assert ld["workers_needed"] == max(1, math.ceil(ld["step_images_per_s_amp"] / ld["per_worker_images_per_s"]))
    assert ld["loader_images_per_s"] > 0 and ld["randaugment_ops"] == "released"


def test_gpu_check_reports_a_failing_section_and_exits_nonzero(tmp_path, capsys):
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--device", "cpu", "--tiny", "--sections", "loader", "--json", str(out)]) == 1
    text = capsys.readouterr().out
    assert "[loader] error" in text and "FAILED: loader" in text
    assert "ERROR  RuntimeError: needs the step section's images/s" in text  # one line in the table
    data = _load(out)
    section = data["checks"]["sections"]["loader"]
    assert not section["passed"] and section["error"].startswith("RuntimeError: needs the step section")
    assert "Traceback" in section["traceback"]  # the whole story in the JSON only


def test_gpu_check_without_cuda_exits_3_with_one_line(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the check would run")
    assert gpu_check.main([]) == gpu_check.NO_CUDA == 3
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).strip().splitlines()
    assert len(lines) == 1 and "needs a CUDA device" in lines[0]
    assert gpu_check.main(["--device", "cuda:1", "--tiny"]) == 3


@pytest.mark.parametrize("argv, message", [(["--device", "cpu"], "--device cpu needs --tiny"),
                                           (["--device", "tpu", "--tiny"], "expected cuda, cuda:N or cpu")])
def test_gpu_check_bad_options_one_line(argv, message, capsys):
    assert gpu_check.main(argv) == 2
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
