"""One command for the first CUDA machine: does bau train, evaluate and explain there, and how fast.

    python benchmarks/gpu_check.py --json gpu_check.json     # a CUDA machine: under 5 minutes on an H100/H200
    python benchmarks/gpu_check.py --device cpu --tiny       # the same code paths at tiny sizes (the tests)

Seven sections, each timed; one that fails is reported in the table with its one-line error (the
full traceback goes to the JSON) and the others still run. Exit status: 0 when every section ran
and passed its check, 1 otherwise, 3 (one line) without a CUDA device, 2 for bad options.

1. ``step``: the paper configuration's training step: ``experiments/protocol2/ms_cs_c3-m.yaml``
   (ResNet-50-IN, 256x128, 64 ids x 4 images, two views = 512 images, per-view BatchNorm,
   channels_last), ``model.pretrained=false``, 13,742 classes in 3 domains (MS+CS+C3: 1,041 +
   11,934 + 767 training ids), a memory of random unit vectors, random images. ``bau.engine.step.TrainStep``
   exactly as the trainer runs it (``bau.engine.trainer.build_step``: the trainer's builders),
   with AMP on and off: median step time, images/s, peak GPU memory (``max_memory_allocated``).
2. ``loss``: one fixed batch (16 ids x 4 images, two views, 256x128), the same seeded weights and
   memory, ``train.amp=false``: forward + Eq. 9 on the CPU and on the device, TF32 off. Every
   term must agree within 1e-3 (absolute). The same on the device with its default TF32 setting
   (what fp32 training uses) is reported, not checked.
3. ``torchrun``: ``python -m torch.distributed.run --standalone --nproc_per_node=1
   benchmarks/gpu_check_worker.py``: NCCL (gloo on the CPU), every BatchNorm converted by
   ``bau.engine.distributed.convert_batchnorm`` (SyncBatchNorm on CUDA), DDP, one paper-config
   ``TrainStep(net=ddp, dist=DistContext(...))``. Its loss must equal the plain step's on the same
   weights and batch (1e-3, relative). With one process torch's SyncBatchNorm skips the cross-rank
   reduction (world size 1): this checks NCCL, the conversion, DDP and the step's wiring, not the
   reduction itself (that needs two GPUs: ``torchrun --nproc_per_node=2 -m bau train ...``).
4. ``ranking``: Market-sized (3,368 x 15,913, 750 ids, 2,048-d features) problem from
   ``benchmarks.ranking.market_like_features`` on the device: ``evaluate_features`` (distances and
   ranking block by block), ``distance_matrix`` and ``evaluate_ranking`` of the full matrix, all with
   the torch backend; the same matrix ranked by NumPy on the CPU must give identical numbers (1e-9).
5. ``reranking``: ``bau.evaluation.reranking.re_ranking`` of Market-sized distances
   (``benchmarks.reranking.make_distances``) with its dense pass on the device, against the same
   on the CPU: mAP within 1e-4.
6. ``gradcam``: ``analysis.gradcam.gradcam_map`` of the paper model (BatchNorm statistics from one
   random batch) on the device, at ``cam_layer``'s layer (ResNet-50 at 256x128: layer4, 16x8):
   seconds per map; the cell maps on the device and on the CPU agree within 1e-2 (TF32 off).
7. ``loader``: the loader workers that keep the step fed, measured: images/s of one worker = the
   training loader (the recipe's two-view pipeline at 256x128, decoded-image cache, synthetic JPEGs
   from ``bau.data.synthetic``) run in this process with one thread, which is one worker's work;
   workers = ceil(step images/s with AMP / per-worker images/s). The loader with that many workers
   (at most the cores less one) is then timed: its images/s against the step's.

``--tiny``: ResNet-50 at 32x16, 2 ids x 2 images, 12 classes, a 40 x 200 ranking and a 20 x 100
re-ranking, 1 warm-up + 1 timed step (one DDP step): the same code, seconds on a CPU. ``--sections`` runs some of
them (``loader`` needs ``step`` in the same run).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import gc
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bau.core.config import Config, load_config  # noqa: E402
from bau.core.errors import BauError  # noqa: E402
from bau.data.multisource import MultiSourceTrainSet  # noqa: E402
from bau.models.reid import input_memory_format  # noqa: E402
from benchmarks.common import (  # noqa: E402
    Report,
    current_rss_mb,
    describe_machine_line,
    peak_rss_mb,
    print_table,
    reset_peak_rss,
    time_repeated,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER_CONFIG = os.path.join(REPO, "experiments", "protocol2", "ms_cs_c3-m.yaml")
WORKER = os.path.join(REPO, "benchmarks", "gpu_check_worker.py")
SECTIONS = ("step", "loss", "torchrun", "ranking", "reranking", "gradcam", "loader")
LOSS_TOLERANCE = 1e-3  # |CPU - device| per loss term, fp32
DDP_TOLERANCE = 1e-3  # |DDP - plain| / max(1, |plain|) per loss term
RANKING_TOLERANCE = 1e-9  # torch backend vs NumPy on the same distances
RERANK_MAP_TOLERANCE = 1e-4  # re-ranking on the device vs the CPU
GRADCAM_TOLERANCE = 1e-2  # cell maps (in [0, 1]) on the device vs the CPU
BUDGET_S = 300.0
NO_CUDA = 3
GIB = 2.0**30


@dataclass(frozen=True)
class Sizes:
    """How big each section's work is."""

    height: int
    width: int
    num_ids: int  # P
    num_instances: int  # K
    class_counts: Tuple[int, ...]  # training ids per source domain
    loss_ids: int  # P of the CPU-vs-device batch
    steps: int  # timed steps per AMP setting
    warmup: int
    queries: int
    gallery: int
    ranking_ids: int
    dim: int  # ranking feature dimension
    rerank_queries: int
    rerank_gallery: int
    repeats: int  # timed repeats of the ranking calls
    gradcam_maps: int
    loader_batches: int  # batches timed in the one-worker loader
    overrides: Tuple[str, ...] = ()  # on top of the paper config


FULL = Sizes(height=256, width=128, num_ids=64, num_instances=4, class_counts=(1041, 11934, 767), loss_ids=16,
             steps=10, warmup=3, queries=3368, gallery=15913, ranking_ids=750, dim=2048, rerank_queries=3368,
             rerank_gallery=15913, repeats=3, gradcam_maps=8, loader_batches=2)
TINY = Sizes(height=32, width=16, num_ids=2, num_instances=2, class_counts=(4, 4, 4), loss_ids=2, steps=1,
             warmup=1, queries=40, gallery=200, ranking_ids=10, dim=32, rerank_queries=20, rerank_gallery=100,
             repeats=1, gradcam_maps=2, loader_batches=1,
             overrides=("data.height=32", "data.width=16", "data.num_ids=2",
                        "data.num_instances=2"))
SOURCE_NAMES = ("msmt17", "cuhksysu", "cuhk03")


# -- shared pieces (the worker imports them too) ------------------------------------------------
def paper_config(sizes: Sizes, overrides: Sequence[str] = ()) -> Config:
    """The Protocol-2 MS+CS+C3 -> M config (the released recipe), without ImageNet weights, at ``sizes``."""
    return load_config(PAPER_CONFIG, ["model.pretrained=false", *sizes.overrides, *overrides])


def class_layout(sizes: Sizes) -> MultiSourceTrainSet:
    """The classes of the paper's three sources (no images: the steps run on random tensors)."""
    domains = [d for d, n in enumerate(sizes.class_counts) for _ in range(n)]
    return MultiSourceTrainSet(train=[], class_domains=domains, num_classes=len(domains), num_cameras=0,
                               domain_names=list(SOURCE_NAMES[:len(sizes.class_counts)]))


def random_batch(cfg: Config, layout: MultiSourceTrainSet, seed: int, num_ids: Optional[int] = None,
                 pin: bool = False) -> Dict[str, torch.Tensor]:
    """A training batch as the loader yields it: ``images`` ``[2B, 3, H, W]`` (standard-normal values,
    like normalised images; the loader's memory format), ``pid`` and ``domain`` ``[B]``, B = P x K
    with P distinct random classes (``num_ids``, default ``data.num_ids``)."""
    g = torch.Generator().manual_seed(seed)
    p, k = num_ids or cfg.data.num_ids, cfg.data.num_instances
    pids = torch.randperm(layout.num_classes, generator=g)[:p].repeat_interleave(k)
    views = 2 if cfg.loss.two_view else 1
    fmt = input_memory_format(cfg)
    images = torch.randn(views * len(pids), 3, cfg.data.height, cfg.data.width, generator=g)
    images = images.contiguous(memory_format=fmt)
    return {"images": images.pin_memory() if pin else images, "pid": pids,
            "domain": torch.as_tensor(layout.class_domains, dtype=torch.long)[pids]}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def release(device: torch.device) -> None:
    """Free what the last section left (cached CUDA blocks included)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


@contextlib.contextmanager
def full_fp32(device: torch.device) -> Iterator[None]:
    """TF32 off for cuBLAS and cuDNN inside the block (plain float32 everywhere); nothing on a CPU."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def loss_terms(step, batch: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """The loss terms ``step`` would log for ``batch`` (its forward + Eq. 9, no backward, no update)."""
    with torch.no_grad():
        terms = step.losses(batch)[0]
    return {k: float(v) for k, v in terms.items()}


def worker_error(output: str) -> str:
    """The line of a torchrun run's output that says what went wrong: the worker's last exception
    line (``SomeError: ...``), not the launcher's ``ChildFailedError`` summary; else the last line."""
    lines = [re.sub(r"^\[(default)?rank\d+\]:\s*", "", ln.strip()) for ln in output.splitlines()]
    lines = [ln for ln in lines if ln and not set(ln) <= set("=-")]
    errors = [ln for ln in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b", ln)
              and "ChildFailedError" not in ln]
    return errors[-1] if errors else (lines[-1] if lines else "no output")


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


# -- the sections --------------------------------------------------------------------------------
@dataclass
class Context:
    device: torch.device
    sizes: Sizes
    seed: int
    layout: MultiSourceTrainSet
    results: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def cpu(self) -> torch.device:
        return torch.device("cpu")


Rows = List[List[str]]
Outcome = Tuple[Dict[str, Any], Rows, bool]  # (results, table rows [measurement, value, check], passed)


def _memory_text(gib: Optional[float], rss_mb: Optional[float]) -> str:
    return f"peak GPU {gib:.1f} GiB" if gib is not None else f"peak RSS +{rss_mb:.0f} MB (CPU)"


def section_step(ctx: Context) -> Outcome:
    from bau.engine.trainer import build_step

    results: Dict[str, Any] = {}
    rows: Rows = []
    finite = True
    for amp in (True, False):
        cfg = paper_config(ctx.sizes, [f"train.amp={str(amp).lower()}"])
        step = build_step(cfg, ctx.layout, ctx.device, ctx.seed)
        batch = random_batch(cfg, ctx.layout, ctx.seed, pin=ctx.cuda)
        images = batch["images"].shape[0]
        if ctx.cuda:
            torch.cuda.reset_peak_memory_stats(ctx.device)
        reset_peak_rss()  # Linux: the peak below is this setting's alone
        rss_before = current_rss_mb()
        times, values = [], {}
        for i in range(ctx.sizes.warmup + ctx.sizes.steps):
            start = time.perf_counter()
            values, _ = step(batch)
            synchronize(ctx.device)
            if i >= ctx.sizes.warmup:
                times.append(time.perf_counter() - start)
        median = statistics.median(times)
        gib = torch.cuda.max_memory_allocated(ctx.device) / GIB if ctx.cuda else None
        rss = None if ctx.cuda else max(0.0, peak_rss_mb() - rss_before)
        key = "amp" if amp else "fp32"
        results[key] = {"amp_requested": amp, "amp_used": step.use_amp, "step_s": median, "times_s": times,
                        "images_per_step": images, "images_per_s": images / median, "peak_gpu_memory_gib": gib,
                        "peak_gpu_memory_reserved_gib":
                            torch.cuda.max_memory_reserved(ctx.device) / GIB if ctx.cuda else None,
                        "peak_rss_growth_mb": rss, "loss": values}
        finite = finite and all(math.isfinite(v) for v in values.values())
        label = f"AMP {'on' if amp else 'off'}" + ("" if step.use_amp == amp else " (AMP is CUDA-only: off)")
        rows.append([f"{label}: {images} images {cfg.data.height}x{cfg.data.width}",
                     f"{median:.3f} s, {images / median:,.0f} images/s, {_memory_text(gib, rss)}",
                     "finite loss" if finite else "NON-FINITE LOSS"])
        del step, batch
        release(ctx.device)
    cfg = paper_config(ctx.sizes)
    results["config"] = {"backbone": cfg.model.backbone, "height": cfg.data.height, "width": cfg.data.width,
                         "num_ids": cfg.data.num_ids, "num_instances": cfg.data.num_instances,
                         "num_classes": ctx.layout.num_classes, "bn_views": cfg.model.bn_views,
                         "channels_last": cfg.train.channels_last, "steps": ctx.sizes.steps,
                         "warmup": ctx.sizes.warmup}
    return results, rows, finite


def section_loss(ctx: Context) -> Outcome:
    from bau.engine.trainer import build_step

    cfg = paper_config(ctx.sizes, ["train.amp=false"])
    batch = random_batch(cfg, ctx.layout, ctx.seed + 1, num_ids=ctx.sizes.loss_ids)
    reference = build_step(cfg, ctx.layout, ctx.cpu, ctx.seed)
    on_device = build_step(cfg, ctx.layout, ctx.device, ctx.seed)
    # Built from the same seed on the CPU, the weights are already equal; copy them to be certain.
    on_device.model.load_state_dict(reference.model.state_dict())
    if reference.memory is not None:
        on_device.memory.load_state_dict(reference.memory.state_dict())
    cpu_terms = loss_terms(reference, batch)
    with full_fp32(ctx.device):
        dev_terms = loss_terms(on_device, batch)
    default_terms = loss_terms(on_device, batch)  # the device's default TF32 setting
    diff = {k: abs(dev_terms[k] - cpu_terms[k]) for k in cpu_terms}
    diff_default = {k: abs(default_terms[k] - cpu_terms[k]) for k in cpu_terms}
    worst = max(diff.values())
    passed = worst <= LOSS_TOLERANCE and all(math.isfinite(v) for v in cpu_terms.values())
    rows = [[f"{k}: CPU {cpu_terms[k]:.6f}, {ctx.device.type} {dev_terms[k]:.6f}", f"|diff| {diff[k]:.1e}",
             "ok" if diff[k] <= LOSS_TOLERANCE else f"OVER {LOSS_TOLERANCE:g}"] for k in cpu_terms]
    if ctx.cuda:
        rows.append([f"with the default TF32 setting (cuDNN {torch.backends.cudnn.allow_tf32}, "
                     f"matmul {torch.backends.cuda.matmul.allow_tf32})",
                     f"max |diff| {max(diff_default.values()):.1e}", "reported only"])
    else:
        rows.append(["(both sides on the CPU: --device cpu checks the code path only)", "", ""])
    results = {"batch_images": int(batch["images"].shape[0]), "cpu": cpu_terms, "device": dev_terms,
               "abs_diff": diff, "max_abs_diff": worst, "tolerance": LOSS_TOLERANCE, "tf32": False,
               "device_default_tf32": default_terms, "abs_diff_default_tf32": diff_default}
    del reference, on_device
    return results, rows, passed


def section_torchrun(ctx: Context) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="bau-gpu-check-") as folder:
        out = os.path.join(folder, "worker.json")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", WORKER,
               "--device", str(ctx.device), "--seed", str(ctx.seed), "--out", out]
        if ctx.sizes is TINY:
            cmd.append("--tiny")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        env["OMP_NUM_THREADS"] = str(torch.get_num_threads())  # this process's setting (--threads)
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=BUDGET_S)
        wall = time.perf_counter() - start
        if proc.returncode != 0 or not os.path.isfile(out):
            tail = "\n".join((proc.stderr + proc.stdout).strip().splitlines()[-40:])
            # the table gets the worker's error line; the JSON's traceback keeps the output's tail
            raise RuntimeError(f"torchrun exited with {proc.returncode}: {worker_error(proc.stderr + proc.stdout)}"
                               f"\n{tail}")
        with open(out) as f:
            res = json.load(f)
    res["wall_s"] = wall
    res["stdout"] = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
    rel = {k: abs(res["ddp_loss"][k] - v) / max(1.0, abs(v)) for k, v in res["plain_loss"].items()}
    res["rel_diff"], res["tolerance"] = rel, DDP_TOLERANCE
    expected = "nccl" if ctx.cuda else "gloo"
    converted = res["sync_batchnorm"] > 0 and res["unsynchronised_batchnorm"] == 0
    passed = res["backend"] == expected and converted and max(rel.values()) <= DDP_TOLERANCE
    rows = [[f"backend {res['backend']}, world size {res['world_size']}",
             f"{res['sync_batchnorm']} x {res['batchnorm_class']}, {res['unsynchronised_batchnorm']} plain BatchNorm",
             "ok" if res["backend"] == expected and converted else f"expected {expected}, all BatchNorm synchronised"],
            ["DDP step loss (total) vs the plain step's", f"{res['ddp_loss']['total']:.6f} vs "
             f"{res['plain_loss']['total']:.6f}, max rel diff {max(rel.values()):.1e}",
             "ok" if max(rel.values()) <= DDP_TOLERANCE else f"OVER {DDP_TOLERANCE:g}"],
            ["DDP step time (first" + (", second)" if res["second_step_s"] is not None else ")"),
             f"{res['first_step_s']:.3f} s" + (f", {res['second_step_s']:.3f} s" if res["second_step_s"] is not None
                                               else "") + f" (torchrun in all {wall:.0f} s)", ""]]
    return res, rows, passed


def section_ranking(ctx: Context) -> Outcome:
    from bau.evaluation.metrics import distance_matrix, evaluate_features, evaluate_ranking
    from benchmarks.ranking import compare_metrics, market_like_features

    s = ctx.sizes
    start = time.perf_counter()
    f = market_like_features(s.queries, s.gallery, num_ids=s.ranking_ids,
                             num_distractors=round(s.gallery * 2798 / 15913), dim=s.dim, noise=3.0, seed=ctx.seed,
                             chunk_rows=4096)
    build_s = time.perf_counter() - start
    labels = (f.q_pids, f.g_pids, f.q_camids, f.g_camids)
    q, g = torch.from_numpy(f.q_feats).to(ctx.device), torch.from_numpy(f.g_feats).to(ctx.device)
    by_blocks = time_repeated(lambda: evaluate_features(q, g, *labels, backend="torch"), s.repeats, warmup=1)

    def full_matrix() -> torch.Tensor:
        d = distance_matrix(q, g, device=ctx.device)
        synchronize(ctx.device)
        return d

    distances = time_repeated(full_matrix, s.repeats, warmup=1)
    dist = distances.last_result
    ranked = time_repeated(lambda: evaluate_ranking(dist, *labels, backend="torch"), s.repeats, warmup=1)
    host = dist.cpu().numpy()
    reference = time_repeated(lambda: evaluate_ranking(host, *labels, backend="numpy"), 1, warmup=0)
    diff = compare_metrics(ranked.last_result, reference.last_result)
    same = (diff["mAP_abs_diff"] <= RANKING_TOLERANCE and diff["mINP_abs_diff"] <= RANKING_TOLERANCE
            and diff["cmc_max_abs_diff"] <= RANKING_TOLERANCE and diff["same_valid_queries"])
    blocks_vs_full = compare_metrics(by_blocks.last_result, ranked.last_result)
    out = ranked.last_result
    results = {"queries": s.queries, "gallery": s.gallery, "dim": s.dim, "problem_build_s": build_s,
               "evaluate_features": by_blocks.to_dict(), "distance_matrix": distances.to_dict(),
               "evaluate_ranking": ranked.to_dict(), "numpy_on_cpu": reference.to_dict(),
               "torch_vs_numpy": diff, "identical": same, "blocks_vs_full_matrix": blocks_vs_full,
               "mAP": out["mAP"], "rank1": float(out["cmc"][0]), "mINP": out["mINP"]}
    dev = ctx.device.type
    rows = [[f"evaluate_features on {dev} ({s.queries:,} x {s.gallery:,}, {s.dim}-d)", f"{by_blocks.median:.3f} s",
             ""],
            [f"distance_matrix on {dev} + evaluate_ranking (torch)",
             f"{distances.median:.3f} s + {ranked.median:.3f} s", ""],
            ["the same matrix ranked by NumPy on the CPU", f"{reference.median:.3f} s; mAP {out['mAP']:.4f}, "
             f"|mAP diff| {diff['mAP_abs_diff']:.1e}, max |CMC diff| {diff['cmc_max_abs_diff']:.1e}",
             "identical" if same else "DIFFERENT"]]
    q = g = dist = None  # free the GPU memory (the closures above are done with them)
    return results, rows, same


def section_reranking(ctx: Context) -> Outcome:
    from bau.evaluation.metrics import evaluate_ranking
    from bau.evaluation.reranking import re_ranking
    from benchmarks.reranking import make_distances

    s = ctx.sizes
    distances, labels = make_distances(s.rerank_queries, s.rerank_gallery, ctx.seed)
    on_device = [torch.from_numpy(d).to(ctx.device) for d in distances]
    timed = time_repeated(lambda: re_ranking(*on_device), repeats=1, warmup=0)
    on_cpu = time_repeated(lambda: re_ranking(*distances), repeats=1, warmup=0)
    label_list = [labels["q_pids"], labels["g_pids"], labels["q_camids"], labels["g_camids"]]
    m_dev = evaluate_ranking(timed.last_result, *label_list)
    m_cpu = evaluate_ranking(on_cpu.last_result, *label_list)
    before = evaluate_ranking(distances[0], *label_list)
    map_diff = abs(m_dev["mAP"] - m_cpu["mAP"])
    max_dist_diff = float(np.max(np.abs(timed.last_result - on_cpu.last_result)))
    passed = map_diff <= RERANK_MAP_TOLERANCE
    results = {"queries": s.rerank_queries, "gallery": s.rerank_gallery, "device": timed.to_dict(),
               "cpu": on_cpu.to_dict(), "mAP_device": m_dev["mAP"], "mAP_cpu": m_cpu["mAP"],
               "mAP_before": before["mAP"], "mAP_abs_diff": map_diff, "max_distance_abs_diff": max_dist_diff,
               "tolerance": RERANK_MAP_TOLERANCE}
    rows = [[f"re_ranking, dense pass on {ctx.device.type} ({s.rerank_queries:,} x {s.rerank_gallery:,})",
             f"{timed.median:.2f} s (all on the CPU: {on_cpu.median:.2f} s)", ""],
            ["mAP before -> after re-ranking; device vs CPU", f"{before['mAP']:.4f} -> {m_dev['mAP']:.4f}; "
             f"|mAP diff| {map_diff:.1e}, max |distance diff| {max_dist_diff:.1e}",
             "ok" if passed else f"OVER {RERANK_MAP_TOLERANCE:g}"]]
    on_device = None  # free the GPU memory
    return results, rows, passed


def calibrate_batchnorm(model: torch.nn.Module, images: torch.Tensor) -> None:
    """BatchNorm running statistics from one batch (as training would set them), then eval mode.

    With the initial statistics an untrained network's activations can shrink below GeM's clamp
    and leave every Grad-CAM gradient at zero."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average: one batch sets the statistics
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(images)
    model.eval()


def section_gradcam(ctx: Context) -> Outcome:
    from analysis.gradcam import MIN_CELLS, cam_layer, gradcam_cells, gradcam_map
    from bau.engine.trainer import Trainer

    cfg = paper_config(ctx.sizes)
    h, w = cfg.data.height, cfg.data.width
    torch.manual_seed(ctx.seed)
    model = Trainer.build_model(cfg, ctx.layout.num_classes, ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    fmt = input_memory_format(cfg)
    calibrate_batchnorm(model, torch.randn(16, 3, h, w, generator=g).to(ctx.device, memory_format=fmt))
    images = [torch.randn(3, h, w, generator=g) for _ in range(ctx.sizes.gradcam_maps)]
    start = time.perf_counter()
    layer = cam_layer(model, h, w)
    layer_s = time.perf_counter() - start
    maps = [gradcam_map(model, images[0], target_layer=layer.module)]  # warm-up
    times = []
    for image in images:
        start = time.perf_counter()
        maps.append(gradcam_map(model, image, target_layer=layer.module))
        times.append(time.perf_counter() - start)
    sane = all(m.shape == (h, w) and np.isfinite(m).all() and m.min() >= 0 and m.max() <= 1 for m in maps)
    enough = layer.map_hw[0] >= MIN_CELLS[0] and layer.map_hw[1] >= MIN_CELLS[1]
    with full_fp32(ctx.device):
        cells = gradcam_cells(model, images[0], target_layer=layer.module)
        cpu_model = copy.deepcopy(model).to(ctx.cpu)
        cpu_cells = gradcam_cells(cpu_model, images[0], target_layer=dict(cpu_model.named_modules())[layer.name])
    diff = float(np.max(np.abs(cells - cpu_cells)))
    passed = sane and enough and diff <= GRADCAM_TOLERANCE and float(cells.max()) > 0
    median = statistics.median(times)
    results = {"layer": layer.name, "map_hw": list(layer.map_hw), "cam_layer_s": layer_s, "per_map_s": median,
               "times_s": times, "cells_max_abs_diff_cpu": diff, "tolerance": GRADCAM_TOLERANCE,
               "cells_max": float(cells.max()), "cells_lit_fraction": float((cells > 0).mean()), "maps_valid": sane}
    rows = [[f"gradcam_map on {ctx.device.type}, {h}x{w}, at {layer.describe()}",
             f"{median * 1000:.0f} ms per map (cam_layer {layer_s * 1000:.0f} ms)",
             "ok" if sane and enough else "INVALID MAP"],
            [f"cells on {ctx.device.type} vs CPU (TF32 off)",
             f"max |diff| {diff:.1e}, {100 * float((cells > 0).mean()):.0f}% of cells lit",
             "ok" if diff <= GRADCAM_TOLERANCE and float(cells.max()) > 0 else f"OVER {GRADCAM_TOLERANCE:g} or empty"]]
    del model, cpu_model
    return results, rows, passed


def section_loader(ctx: Context) -> Outcome:
    from bau.data.synthetic import generate
    from benchmarks.data_pipeline import find_jpegs, samples_per_s_loader, training_items

    step = ctx.results.get("step")
    if not step or "amp" not in step:
        raise RuntimeError("needs the step section's images/s (run it in the same invocation: --sections step loader)")
    step_rate = step["amp"]["images_per_s"]
    cfg = paper_config(ctx.sizes)
    d = cfg.data
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bau-gpu-check-jpegs-") as folder:
        generate(folder, num_domains=1, ids_per_domain=16, seed=ctx.seed, workers=1)
        paths = find_jpegs(folder)
        items = training_items(paths, d.num_ids, d.num_instances)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # what a DataLoader worker runs with
        try:
            one = 2 * samples_per_s_loader(items, dataclasses.replace(d, workers=0), ctx.sizes.loader_batches)
        finally:
            torch.set_num_threads(threads)
        needed = max(1, math.ceil(step_rate / one))
        run_with = max(1, min(needed, cores - 1))
        confirmed = 2 * samples_per_s_loader(items, dataclasses.replace(d, workers=run_with), 2 * run_with)
    keeps_up = confirmed >= step_rate
    fp32_needed = max(1, math.ceil(step["fp32"]["images_per_s"] / one)) if "fp32" in step else None
    results = {"step_images_per_s_amp": step_rate, "per_worker_images_per_s": one, "workers_needed": needed,
               "workers_needed_fp32": fp32_needed, "cores": cores, "loader_workers_timed": run_with,
               "loader_images_per_s": confirmed, "loader_keeps_up": keeps_up, "height": d.height, "width": d.width,
               "aug_prob": d.aug_prob, "randaugment_ops": d.randaugment_ops, "image_cache_mb": d.image_cache_mb,
               "files": len(paths)}
    rows = [[f"one worker: two-view pipeline {d.height}x{d.width}, p={d.aug_prob:g}, {d.randaugment_ops} RandAugment",
             f"{one:,.0f} images/s", ""],
            ["workers to feed the AMP step", f"ceil({step_rate:,.0f} / {one:,.0f}) = {needed}"
             + (f" (fp32 step: {fp32_needed})" if fp32_needed is not None else ""), ""],
            [f"the loader with {run_with} worker(s) ({cores} cores here)", f"{confirmed:,.0f} images/s",
             "keeps up" if keeps_up else f"short of {step_rate:,.0f}: loader-bound"
             + ("" if run_with == needed else f" (needs {needed} workers, {cores} cores here)")]]
    # Whether one machine's CPUs can feed its GPU is a finding, not a failure of the code.
    return results, rows, True


SECTION_FUNCTIONS: Dict[str, Tuple[str, Callable[[Context], Outcome]]] = {
    "step": ("paper-config training step, AMP on and off", section_step),
    "loss": ("fp32 loss of one batch, CPU vs device", section_loss),
    "torchrun": ("one-process torchrun step: NCCL, SyncBatchNorm, DDP", section_torchrun),
    "ranking": ("Market-sized ranking evaluation on the device", section_ranking),
    "reranking": ("Market-sized k-reciprocal re-ranking on the device", section_reranking),
    "gradcam": ("Grad-CAM on the device", section_gradcam),
    "loader": ("loader workers to keep the step fed", section_loader),
}


# -- the command ---------------------------------------------------------------------------------
def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu (with --tiny)")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes: the same code paths in seconds (the tests)")
    ap.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                    help="run only these (loader needs step)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads, also the torchrun worker's (default: torch's own choice)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="PATH", help="also write the numbers to this JSON file")
    return ap.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu_check: needs a CUDA device (--device {args.device}; torch.cuda.is_available() is false); "
              f"`--device cpu --tiny` runs the same code paths on the CPU", file=sys.stderr)
        return NO_CUDA
    if args.device != "cpu" and not args.device.startswith("cuda"):
        print(f"gpu_check: --device {args.device}: expected cuda, cuda:N or cpu", file=sys.stderr)
        return 2
    if args.device == "cpu" and not args.tiny:
        print("gpu_check: --device cpu needs --tiny (the paper-size step needs ~40 GB of CPU activations; "
              "benchmarks/train_step.py --config paper times it on the CPU at a reduced P)", file=sys.stderr)
        return 2
    try:
        from bau.core.device import resolve_device

        device = resolve_device(args.device)
    except BauError as e:
        print(f"gpu_check: {e}", file=sys.stderr)
        return 2
    if device.type == "cuda":
        torch.cuda.set_device(device)
    threads = torch.get_num_threads()
    try:
        if args.threads > 0:
            torch.set_num_threads(args.threads)
        return run(args, device)
    finally:
        torch.set_num_threads(threads)


def run(args: argparse.Namespace, device: torch.device) -> int:
    """The sections in order, the table, the JSON; 0 when every section passed, else 1."""
    sizes = TINY if args.tiny else FULL
    ctx = Context(device=device, sizes=sizes, seed=args.seed, layout=class_layout(sizes))
    report = Report("gpu_check")
    report.size = {"device": str(device), "device_name": torch.cuda.get_device_name(device) if ctx.cuda else "cpu",
                   "cuda": torch.version.cuda if ctx.cuda else None,
                   "cudnn": torch.backends.cudnn.version() if ctx.cuda else None,
                   "tiny": args.tiny, "sections": list(args.sections), "threads": torch.get_num_threads(),
                   **dataclasses.asdict(sizes)}
    print(describe_machine_line(report.machine))
    print(f"gpu_check on {report.size['device_name']} ({device}){', tiny sizes' if args.tiny else ''}: "
          f"{len(args.sections)} section(s), budget {BUDGET_S:.0f} s")
    rows: Rows = []
    outcome: Dict[str, Dict[str, Any]] = {}
    start_all = time.perf_counter()
    for name in [s for s in SECTIONS if s in args.sections]:
        title, fn = SECTION_FUNCTIONS[name]
        print(f"\n[{name}] {title} ...", flush=True)
        start = time.perf_counter()
        error, trace, passed, section_rows = None, None, False, []
        try:
            results, section_rows, passed = fn(ctx)
            ctx.results[name] = results
        except Exception as e:  # a failing section is reported; the others still run
            error, trace = one_line(e), traceback.format_exc()
        finally:
            release(device)
        seconds = time.perf_counter() - start
        status = "passed" if passed else ("error" if error else "FAILED")
        print(f"[{name}] {status} in {seconds:.1f} s (elapsed {time.perf_counter() - start_all:.1f} s)"
              + (f": {error}" if error else ""), flush=True)
        outcome[name] = {"passed": passed, "error": error, "traceback": trace, "seconds": seconds}
        if error:
            rows.append([name, "ERROR", error, f"{seconds:.1f}"])
        for i, (what, value, check) in enumerate(section_rows):
            rows.append([name if i == 0 else "", what, value + (f"  [{check}]" if check else ""),
                         f"{seconds:.1f}" if i == 0 else ""])
    total = time.perf_counter() - start_all
    print()
    print_table(["section", "measurement", "value  [check]", "s"], rows)
    failed = [n for n, o in outcome.items() if not o["passed"]]
    print(f"\ntotal {total:.0f} s (budget {BUDGET_S:.0f} s: {'met' if total <= BUDGET_S else 'MISSED'}); "
          + (f"FAILED: {', '.join(failed)}" if failed else f"all {len(outcome)} section(s) passed"))
    report.results = ctx.results
    report.checks = {"sections": outcome, "failed": failed, "total_s": total, "budget_s": BUDGET_S,
                     "budget_met": total <= BUDGET_S, "all_passed": not failed}
    report.finish(args.json)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
