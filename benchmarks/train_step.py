"""The training step on the CPU: the plain path against the fast one, and both against the bare model.

A step is ``bau.engine.step.TrainStep`` on a batch from the real training loader, exactly as
``bau train`` runs it (built with the trainer's own builders): the wait for the batch, one forward
pass over the original and augmented views, the objective of Eq. 9, the backward pass, the Adam
step and the prototype update (Eq. 7). Two paths are timed alternately in one run:

* ``plain``: the network and the batches in the default (NCHW) memory format, no decoded-image
  cache (``train.channels_last=false data.image_cache_mb=0``);
* ``fast``: the configuration's own settings (channels_last and the image cache by default).

The reference is the bare torchvision network (``mobilenet_v2`` / ``resnet50``, whole network,
default memory format) forward + backward on the same ``2B`` images, timed in the same loop.
Target: the fast step's median at most 0.8x the bare model's.

Configurations (``--config``):

* ``demo``: ``experiments/demo.yaml`` (MobileNetV2, 64x32, P=16 x K=4 -> 2 x 64 images, one
  compute thread, one loader worker) on the synthetic domains (``--data``, generated into a
  temporary folder when missing);
* ``paper``: the paper's settings (ResNet-50 with IN, 256x128, K=4) with ``--num-ids`` identities
  (default 4: the full 2 x 256 batch needs ~40 GB of CPU activations).

    python benchmarks/train_step.py --config demo            # 8 timed steps per path after 2 warm-up
    python benchmarks/train_step.py --config paper --num-ids 4 --steps 2
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torchvision  # noqa: E402

from bau.core.config import Config, load_config  # noqa: E402
from bau.engine.step import TrainStep  # noqa: E402
from bau.engine.trainer import Trainer, build_step  # noqa: E402
from benchmarks.common import Report, describe_machine_line, print_table  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_RATIO = 0.8
PHASES = ("data", "forward", "objective", "backward_update")
PLAIN = ["train.channels_last=false", "data.image_cache_mb=0"]


class TimedStep(TrainStep):
    """``TrainStep`` that records how long its forward pass and its objective took."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.times: Dict[str, float] = {}
        objective = self.objective

        def timed_objective(*a, **k):
            start = time.perf_counter()
            out = objective(*a, **k)
            self.times["objective"] = time.perf_counter() - start
            return out

        self.objective = timed_objective

    def forward(self, images, views):
        start = time.perf_counter()
        out = super().forward(images, views)
        self.times["forward"] = time.perf_counter() - start
        return out


class Path:
    """One configuration's loader and step, with its timings."""

    def __init__(self, name: str, cfg: Config, seed: int):
        self.name, self.cfg = name, cfg
        start = time.perf_counter()
        self.train_set, self.loader = Trainer.build_data(cfg)
        self.setup_s = time.perf_counter() - start  # includes filling the decoded-image cache
        self.step = build_step(cfg, self.train_set, torch.device("cpu"), seed, step_class=TimedStep)
        self.loader.sampler.set_epoch(1)
        self.batches = iter(self.loader)
        self.rows: List[Dict[str, float]] = []
        self.last_images: Optional[torch.Tensor] = None

    def run(self, keep: bool) -> None:
        start = time.perf_counter()
        try:
            batch = next(self.batches)
        except StopIteration:
            self.batches = iter(self.loader)
            batch = next(self.batches)
        data = time.perf_counter() - start
        self.step(batch)
        total = time.perf_counter() - start
        self.last_images = batch["images"]
        if keep:
            t = self.step.times
            self.rows.append({"data": data, "forward": t["forward"], "objective": t["objective"],
                              "backward_update": total - data - t["forward"] - t["objective"], "step": total})

    def median(self, key: str) -> float:
        return statistics.median(r[key] for r in self.rows)


def bare_network(cfg: Config) -> torch.nn.Module:
    """The torchvision network the backbone comes from, whole, default memory format, train mode."""
    factory = {"mobilenetv2": torchvision.models.mobilenet_v2, "resnet50": torchvision.models.resnet50}
    if cfg.model.backbone not in factory:
        raise SystemExit(f"--config: no bare torchvision reference for backbone {cfg.model.backbone}")
    return factory[cfg.model.backbone]().train()


def demo_data(folder: Optional[str], tiny: bool) -> str:
    """A folder with the synthetic domains: ``folder`` if it holds them, else generated in a temp folder."""
    from bau.data.synthetic import generate

    if folder and os.path.isfile(os.path.join(folder, "synthetic.json")):
        return folder
    target = folder or tempfile.mkdtemp(prefix="bau-bench-synth-")
    print(f"generating the synthetic domains in {target} ...")
    generate(target, **({"num_domains": 4, "ids_per_domain": 8, "seed": 0} if tiny else {}))
    return target


def configs(args: argparse.Namespace) -> Dict[str, Config]:
    if args.config == "demo":
        base, overrides = os.path.join(REPO, "experiments", "demo.yaml"), []
    else:
        base = None
        overrides = ["data.sources=folder:synth_a,folder:synth_b,folder:synth_c", "data.targets=",
                     "data.workers=1", f"data.num_ids={args.num_ids or 4}"]
    overrides += [f"data.root={demo_data(args.data, args.tiny)}", "model.pretrained=false"]
    if args.threads:
        overrides.append(f"train.threads={args.threads}")
    if args.tiny:
        overrides += ["data.height=32", "data.width=16", "data.num_ids=2", "data.workers=0"]
    if args.num_ids and args.config == "demo":
        overrides.append(f"data.num_ids={args.num_ids}")
    return {"plain": load_config(base, overrides + PLAIN), "fast": load_config(base, overrides)}


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", choices=["demo", "paper"], default="demo")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per path")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per path first")
    ap.add_argument("--num-ids", type=int, default=None, help="P, identities per batch (paper default 4)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: the config's train.threads)")
    ap.add_argument("--data", default=os.path.join(REPO, "data", "synthetic"),
                    help="synthetic domains (generated in a temporary folder when missing)")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes (the test suite)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="PATH", help="also write the numbers to this JSON file")
    return ap.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    args = parse_args(argv)
    cfgs = configs(args)
    fast_cfg = cfgs["fast"]
    if fast_cfg.train.threads > 0:
        torch.set_num_threads(fast_cfg.train.threads)
    report = Report("train_step")
    print(describe_machine_line(report.machine))
    paths = {name: Path(name, cfg, args.seed) for name, cfg in cfgs.items()}
    d = fast_cfg.data
    b = paths["fast"].loader.batch_size
    report.size = {"config": args.config, "backbone": fast_cfg.model.backbone, "height": d.height, "width": d.width,
                   "num_ids": d.num_ids, "num_instances": d.num_instances, "images_per_step": 2 * b,
                   "threads": torch.get_num_threads(), "workers": d.workers}
    print(f"{args.config}: {fast_cfg.model.backbone} {d.height}x{d.width}, P={d.num_ids} x K={d.num_instances} "
          f"-> 2 x {b} = {2 * b} images per step, {torch.get_num_threads()} thread(s), {d.workers} loader worker(s)")
    bare = bare_network(fast_cfg)
    bare_times: List[float] = []
    for i in range(args.warmup + args.steps):
        keep = i >= args.warmup
        order = ["plain", "fast"] if i % 2 == 0 else ["fast", "plain"]
        for name in order:
            paths[name].run(keep)
        images = paths["plain"].last_images.contiguous()
        start = time.perf_counter()
        bare(images).sum().backward()
        if keep:
            bare_times.append(time.perf_counter() - start)
        bare.zero_grad(set_to_none=True)
    bare_s = statistics.median(bare_times)

    rows = []
    for name, path in paths.items():
        step = path.median("step")
        rows.append([name, *[f"{path.median(p):.3f}" for p in PHASES], f"{step:.3f}", f"{step / bare_s:.2f}x"])
        report.results[name] = {"phases_s": {p: path.median(p) for p in PHASES}, "step_s": step,
                                "ratio_to_bare": step / bare_s, "loader_setup_s": path.setup_s,
                                "times_s": [r["step"] for r in path.rows]}
    rows.append(["bare torchvision (NCHW)", "", "", "", "", f"{bare_s:.3f}", "1.00x"])
    print_table(["path", *[f"{p} s" for p in PHASES], "step s", "x bare"], rows)
    report.results["bare_s"] = bare_s
    ratio = report.results["fast"]["ratio_to_bare"]
    speedup = report.results["plain"]["step_s"] / report.results["fast"]["step_s"]
    report.checks = {"fast_ratio_to_bare": ratio, "target": TARGET_RATIO, "met": ratio <= TARGET_RATIO,
                     "speedup_fast_over_plain": speedup}
    print(f"fast path: {speedup:.2f}x faster than the plain path (medians of {args.steps} alternated steps)")
    print(f"target: fast step <= {TARGET_RATIO}x the bare model's forward + backward: {ratio:.2f}x -> "
          f"{'met' if ratio <= TARGET_RATIO else 'missed'}")
    return report.finish(args.json)


if __name__ == "__main__":
    main()
