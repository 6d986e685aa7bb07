"""One BAU training step on the CPU, split into its parts: where does the time go?

A step is what ``bau.trainer.Trainer.train_step`` does: one forward pass over the original and
augmented views together, the objective of Eq. 9 (cross-entropy, triplet, alignment with the
k-reciprocal weights, uniformity, domain-specific uniformity against the prototype memory), the
backward pass, the Adam step, and the momentum update of the prototypes (Eq. 7). The parts are
timed separately on random input tensors of the right shapes (no weights needed:
``model.pretrained=false``), with labels drawn like a P x K batch over the training classes.

Configurations (``--config``):

* ``demo``: MobileNetV2, 128x64, P=16 x K=4 -> 2 x 64 images, 360 classes in 3 domains (the
  synthetic demo of ``experiments/demo.yaml``);
* ``paper``: ResNet-50 with IN, 256x128, P=64 x K=4 -> 2 x 256 images, 13,742 classes in 3 domains
  (Protocol-2 MS+CS+C3 -> M: 1,041 + 11,934 + 767 training ids). In float32 on a CPU that batch
  needs ~40 GB of activations; ``--num-ids`` measures a smaller P, and the loss terms are then also
  timed at the full batch on their own, so the loss share can still be judged at the real size.

Separately, "data" is the time the real pipeline (``bau.data.loader.build_train_loader``, two
views, the paper's augmentations, in this process) takes to produce one batch from synthetic
JPEGs (``bau.data.synthetic.generate``). A training run overlaps it with the step in loader workers,
so it is not part of the step; ``benchmarks/data_pipeline.py`` sizes the workers.

Target: the loss terms and the memory update together under 5% of the step: the objective's forward,
its part of the backward pass (up to the gradient of the network outputs, found with tensor
hooks), and the memory update.

    python benchmarks/train_step.py                                  # demo, 3 steps after 1 warm-up
    python benchmarks/train_step.py --config paper --num-ids 4 --threads 2
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from benchmarks.common import (Report, available_memory_mb, describe_machine_line, maxrss_mb,  # noqa: E402
                               peak_rss_mb, current_rss_mb, print_table, reset_peak_rss)
from bau.config import Config, load_config  # noqa: E402
from bau.data.loader import build_train_loader  # noqa: E402
from bau.memory import PrototypeMemory  # noqa: E402
from bau.models.reid import build_model  # noqa: E402
from bau.objective import BAUObjective  # noqa: E402

TARGET_SHARE = 0.05
PHASES = ("forward", "losses", "losses_backward", "network_backward", "optimizer", "memory_update")
LOSS_PHASES = ("losses", "losses_backward", "memory_update")


@dataclass(frozen=True)
class Setting:
    overrides: List[str]
    classes_per_domain: List[int]
    steps: int
    # Training activations per image (float32, CPU), measured with torch 2.14 as the growth of the
    # peak RSS between a 2- and a 6-image (ResNet-50) or 8- and 32-image (MobileNetV2) step; only
    # used to refuse a batch that cannot fit before allocating it.
    activation_mb_per_image: float


SETTINGS: Dict[str, Setting] = {
    "demo": Setting(["model.backbone=mobilenetv2", "data.height=128", "data.width=64", "data.num_ids=16",
                     "data.num_instances=4"], [120, 120, 120], steps=3, activation_mb_per_image=14.0),
    "paper": Setting(["model.backbone=resnet50", "data.height=256", "data.width=128", "data.num_ids=64",
                      "data.num_instances=4"], [1041, 11934, 767], steps=2, activation_mb_per_image=80.0),
}


class Pieces:
    """Model, memory bank, objective and optimiser, built the way the trainer builds them."""

    def __init__(self, cfg: Config, classes_per_domain: List[int], seed: int):
        torch.manual_seed(seed)
        self.cfg = cfg
        self.num_classes = sum(classes_per_domain)
        self.class_domains = torch.repeat_interleave(torch.arange(len(classes_per_domain)),
                                                     torch.tensor(classes_per_domain))
        self.model = build_model(cfg, self.num_classes).train()
        self.memory = PrototypeMemory(self.num_classes, self.model.feat_dim, self.class_domains, cfg.loss.momentum)
        # The trainer initialises the prototypes from features of every training image; any unit
        # vectors do for timing.
        self.memory.initialise(torch.randn(self.num_classes, self.model.feat_dim), torch.arange(self.num_classes))
        self.objective = BAUObjective(cfg.loss, self.memory)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        self.rng = np.random.default_rng(seed)

    def labels(self, num_ids: int, k: int):
        """P x K labels: P distinct classes, K consecutive samples each, and their domains."""
        classes = torch.from_numpy(self.rng.choice(self.num_classes, size=num_ids, replace=False))
        pids = classes.repeat_interleave(k)
        return pids, self.class_domains[pids]

    def step(self, num_ids: int) -> Dict[str, float]:
        """One training step on random images; seconds per phase."""
        d = self.cfg.data
        pids, dids = self.labels(num_ids, d.num_instances)
        b = len(pids)
        images = torch.randn(2 * b, 3, d.height, d.width)  # [original; augmented], as the trainer concatenates
        times: Dict[str, float] = {}
        start = time.perf_counter()
        out = self.model(images)
        times["forward"] = time.perf_counter() - start

        start = time.perf_counter()
        terms = self.objective({k: v[:b] for k, v in out.items()}, {k: v[b:] for k, v in out.items()}, pids, dids)
        f_orig = terms.pop("_f_orig")
        times["losses"] = time.perf_counter() - start

        # The backward pass runs the loss terms' part of the graph first, then the network's. A hook
        # on each network output fires once that output's gradient is complete, which marks the
        # boundary (the BNNeck and classifier, whose backward completes "feat"'s gradient, land on
        # the losses' side: a small over-count of the losses).
        marks: List[float] = []
        for v in out.values():
            v.register_hook(lambda grad: marks.append(time.perf_counter()))
        self.optimizer.zero_grad(set_to_none=True)
        start = time.perf_counter()
        terms["total"].backward()
        end = time.perf_counter()
        boundary = max(marks) if marks else start
        times["losses_backward"] = boundary - start
        times["network_backward"] = end - boundary

        start = time.perf_counter()
        self.optimizer.step()
        times["optimizer"] = time.perf_counter() - start

        start = time.perf_counter()
        self.memory.update(f_orig, pids)
        times["memory_update"] = time.perf_counter() - start
        if not torch.isfinite(terms["total"]):
            raise SystemExit(f"error: the loss became {float(terms['total'])}; the benchmark's inputs are broken")
        return times

    def losses_alone(self, num_ids: int, repeats: int = 3) -> Dict[str, float]:
        """The objective's forward + backward, and the memory update, on leaf features of a ``num_ids`` batch.

        The network is left out, so this is the loss terms' whole cost (their backward included)
        at any batch size, even one whose images would not fit in memory.
        """
        d = self.cfg.data
        dim = self.model.feat_dim
        loss_times, memory_times = [], []
        for _ in range(repeats):
            pids, dids = self.labels(num_ids, d.num_instances)
            b = len(pids)
            leaves = {"feat": torch.randn(2 * b, dim, requires_grad=True),
                      "bn": torch.randn(2 * b, dim, requires_grad=True),
                      "logits": torch.randn(2 * b, self.num_classes, requires_grad=True)}
            start = time.perf_counter()
            terms = self.objective({k: v[:b] for k, v in leaves.items()}, {k: v[b:] for k, v in leaves.items()},
                                   pids, dids)
            f_orig = terms.pop("_f_orig")
            terms["total"].backward()
            loss_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            self.memory.update(f_orig, pids)
            memory_times.append(time.perf_counter() - start)
        return {"losses_fwd_bwd_s": statistics.median(loss_times), "memory_update_s": statistics.median(memory_times),
                "images": 2 * num_ids * d.num_instances}


def synthetic_items(folder: str, num_ids: int, k: int) -> List[tuple]:
    """``num_ids x k`` training items over a few generated JPEGs (reused cyclically under new pids).

    Decoding and augmenting does not depend on which identity a file belongs to, so a handful of
    real files stand in for a full training set.
    """
    from bau.data.synthetic import generate

    generate(folder, num_domains=1, ids_per_domain=8, seed=0, workers=1)
    paths = sorted(os.path.join(root, name) for root, _, names in os.walk(folder)
                   for name in names if name.endswith(".jpg"))
    return [(paths[(pid * k + j) % len(paths)], pid, 0, 0) for pid in range(num_ids) for j in range(k)]


def time_data_loading(cfg: Config, num_ids: int, batches: int) -> Dict[str, float]:
    """Seconds the real two-view pipeline takes, in this process, to produce one P x K batch."""
    d = cfg.data
    data_cfg = dataclasses.replace(d, num_ids=num_ids, workers=0)
    with tempfile.TemporaryDirectory(prefix="bau_bench_") as folder:
        items = synthetic_items(folder, num_ids, d.num_instances)
        loader = build_train_loader(items, data_cfg, two_view=True, seed=0, num_iters=batches + 1)
        times = []
        it = iter(loader)
        next(it)  # the first batch also builds the iterator
        for _ in range(batches):
            start = time.perf_counter()
            batch = next(it)
            times.append(time.perf_counter() - start)
    assert batch["aug"].shape == (num_ids * d.num_instances, 3, d.height, d.width)
    return {"median_s": statistics.median(times), "times_s": times, "samples": num_ids * d.num_instances}


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", choices=sorted(SETTINGS), default="demo")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default: demo 3, paper 2)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first (allocator, thread pools)")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--num-ids", type=int, default=None,
                    help="P of the measured batch (default: the configuration's: demo 16, paper 64)")
    ap.add_argument("--height", type=int, default=None, help="override the image height (tests)")
    ap.add_argument("--width", type=int, default=None, help="override the image width (tests)")
    ap.add_argument("--data-batches", type=int, default=2, help="batches timed for the data loading")
    ap.add_argument("--force", action="store_true",
                    help="run even if the batch looks too big for this machine's memory")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="PATH", help="also write the numbers to this JSON file")
    return ap.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    args = parse_args(argv)
    setting = SETTINGS[args.config]
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    overrides = setting.overrides + ["model.pretrained=false", "data.workers=0"]
    overrides += [f"data.height={args.height}"] if args.height else []
    overrides += [f"data.width={args.width}"] if args.width else []
    cfg = load_config(None, overrides)
    full_ids = cfg.data.num_ids
    num_ids = args.num_ids or full_ids
    if num_ids < 2:
        raise SystemExit("error: --num-ids: expected at least 2 identities (the triplet loss needs negatives)")
    steps = args.steps or setting.steps
    k = cfg.data.num_instances
    images = 2 * num_ids * k
    pixels = cfg.data.height * cfg.data.width / (256 * 128 if args.config == "paper" else 128 * 64)
    needed = images * setting.activation_mb_per_image * pixels
    available = available_memory_mb()
    if available is not None and needed > 0.8 * available and not args.force:
        fit = max(2, int(0.8 * available / (2 * k * setting.activation_mb_per_image * pixels)))
        raise SystemExit(f"error: --config {args.config} with P={num_ids} ({images} images) needs "
                         f"~{needed / 1024:.0f} GB of activations, this machine has {available / 1024:.0f} GB free; "
                         f"pass --num-ids {min(fit, num_ids - 1)} "
                         f"or less (the loss share is then also measured at the full batch), or --force")

    pieces = Pieces(cfg, setting.classes_per_domain, args.seed)
    report = Report("train_step")
    threads = torch.get_num_threads()
    report.size = {"config": args.config, "backbone": cfg.model.backbone, "height": cfg.data.height,
                   "width": cfg.data.width, "P": num_ids, "K": k, "images_per_step": images,
                   "config_P": full_ids, "classes": pieces.num_classes, "domains": len(setting.classes_per_domain),
                   "feat_dim": pieces.model.feat_dim, "threads": threads, "steps": steps, "warmup": args.warmup}
    print(f"BAU training step, {args.config} configuration: {cfg.model.backbone} at "
          f"{cfg.data.height}x{cfg.data.width}, "
          f"P={num_ids} x K={k} -> 2 x {num_ids * k} = {images} images"
          f"{'' if num_ids == full_ids else f' (the configuration has P={full_ids})'}, "
          f"{pieces.num_classes:,} classes in {len(setting.classes_per_domain)} domains, float32, CPU, "
          f"{threads} torch threads")
    print(describe_machine_line(report.machine))

    data = time_data_loading(cfg, num_ids, args.data_batches)
    for _ in range(args.warmup):
        pieces.step(num_ids)
    exact = reset_peak_rss()
    rss_before = current_rss_mb()
    per_step = [pieces.step(num_ids) for _ in range(steps)]
    rss_growth = peak_rss_mb() - rss_before
    totals = [sum(s.values()) for s in per_step]
    phase = {p: statistics.median(s[p] for s in per_step) for p in PHASES}
    # The step is the sum of the phases' medians, so that the shares add up to 100%.
    step_s = sum(phase.values())

    rows = [["data (one batch, this process; overlapped by workers in training)", data["median_s"],
             100.0 * data["median_s"] / step_s]]
    rows += [[name, phase[name], 100.0 * phase[name] / step_s] for name in PHASES]
    rows += [["step (sum of the phase medians)", step_s, 100.0]]
    print()
    print_table(["part", "median s", "% of step"], rows)
    share = sum(phase[p] for p in LOSS_PHASES) / step_s
    alone = pieces.losses_alone(num_ids)
    print(f"\nloss terms (forward + backward, incl. the BNNeck/classifier backward) + memory update: "
          f"{100 * share:.2f}% of the step")
    print(f"the same timed alone on leaf features ({images} images): losses forward + backward "
          f"{alone['losses_fwd_bwd_s']:.4f} s, memory update {alone['memory_update_s']:.4f} s "
          f"(in the step: {phase['losses'] + phase['losses_backward']:.4f} s and {phase['memory_update']:.4f} s)")
    result = {"step_s": step_s, "step_times_s": totals, "phases_s": phase, "data_batch_s": data["median_s"],
              "data_batch_times_s": data["times_s"], "share": share, "losses_alone": alone,
              "peak_rss_growth_mb": rss_growth, "rss_exact": exact,
              "process_maxrss_mb": maxrss_mb(), "images_per_s": images / step_s}
    checks = {"target_share": TARGET_SHARE, "share": share, "target_met": share < TARGET_SHARE}
    if num_ids != full_ids:
        # The network's cost grows with the number of images; the loss terms' with the images and
        # (uniformity, alignment) their square. Time the terms at the real batch, extrapolate the step.
        full = pieces.losses_alone(full_ids)
        full_images = 2 * full_ids * k
        step_full = step_s * full_images / images
        # Timed alone, the terms run faster than inside a step (warm caches, no network in between):
        # scale the full-batch figures by the in-step / alone ratio measured at this batch.
        loss_factor = max(1.0, (phase["losses"] + phase["losses_backward"]) / alone["losses_fwd_bwd_s"])
        memory_factor = max(1.0, phase["memory_update"] / alone["memory_update_s"])
        share_full = (full["losses_fwd_bwd_s"] * loss_factor + full["memory_update_s"] * memory_factor) / step_full
        print(f"at the configuration's batch (2 x {full_ids * k} = {full_images} images): loss terms forward + "
              f"backward alone (on leaf features) {full['losses_fwd_bwd_s']:.4f} s, memory update "
              f"{full['memory_update_s']:.4f} s; scaled by the in-step / alone ratios above (x{loss_factor:.2f}, "
              f"x{memory_factor:.2f}) and divided by the "
              f"step extrapolated linearly in the images from this one ({step_full:.1f} s): {100 * share_full:.2f}%")
        result.update({"losses_alone_full_batch": full, "step_s_extrapolated_full_batch": step_full,
                       "in_step_over_alone": {"losses": loss_factor, "memory_update": memory_factor},
                       "share_full_batch_extrapolated": share_full})
        checks.update({"share_full_batch_extrapolated": share_full, "target_met": share_full < TARGET_SHARE})
    print(f"target: loss terms + memory update < {100 * TARGET_SHARE:.0f}% of the step -> "
          f"{'met' if checks['target_met'] else 'MISSED'}")
    print(f"throughput: {images / step_s:.1f} images/s; peak RSS growth during the timed steps {rss_growth:.0f} MB "
          f"({'exact' if exact else 'ru_maxrss, approximate'}), process peak RSS {maxrss_mb():.0f} MB")
    report.results = result
    report.checks = checks
    return report.finish(args.json)


if __name__ == "__main__":
    main()
