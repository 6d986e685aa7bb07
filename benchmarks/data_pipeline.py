"""The two-view training pipeline's throughput, and how many loader workers keep a GPU step fed.

Every training sample is one JPEG decoded once and turned into two views (Fig. 3a): the original
view (bicubic resize, flip, pad + crop, normalise) and the augmented one (the same plus
RandAugment without the colour-destroying ops, ColorJitter and Random Erasing, each with
probability p). This measures the paper's setting, 256x128 and p = 0.5 with all three
augmentations, on real JPEG files: synthetic pedestrians from ``bau.data.synthetic.generate``
(128x64 files, so the pipeline upsamples them as it does Market's 128x64 crops), or any folder of
Market-named JPEGs (``--images DIR``).

Three measurements:

* one process with one torch thread, calling the dataset directly: the work of one loader
  worker, without the inter-process transfer (samples/s "per worker");
* ``bau.data.loader.build_train_loader`` with 1 and 2 DataLoader workers (P x K batches, the
  main process only collates), from starting the workers to the last batch;
* the reference, in the same run: the standard single-view pipeline (original view only), so
  the cost of BAU's second view reads as a ratio.

Then the number of workers a GPU needs so the loader never stalls a ResNet-50 step at 2 x 256
images: ``workers = ceil(images per step / (images/s per worker * GPU step time))``, where an
image is one view (a sample gives two). The GPU step time is a parameter, ``--gpu-step-s``,
default 0.35 s, an assumed typical H100/A100 ResNet-50 step at 2 x 256 images with mixed
precision; it is not measured here.

    python benchmarks/data_pipeline.py
    python benchmarks/data_pipeline.py --samples 400 --batches 8 --gpu-step-s 0.5 --json pipeline.json
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import tempfile
import time
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from bau.core.config import load_config  # noqa: E402
from bau.data.loader import TrainImageSet, build_train_loader  # noqa: E402
from bau.data.transforms import build_original_transform, build_train_transform  # noqa: E402
from benchmarks.common import Report, describe_machine_line, measure_memory, print_table, time_repeated, write_json  # noqa: E402

DEFAULT_GPU_STEP_S = 0.35


def find_jpegs(folder: str) -> List[str]:
    paths = sorted(os.path.join(root, name) for root, _, names in os.walk(folder)
                   for name in names if name.lower().endswith((".jpg", ".jpeg")))
    if not paths:
        raise SystemExit(f"error: --images {folder}: no .jpg files found under it")
    return paths


def training_items(paths: List[str], num_ids: int, k: int) -> List[tuple]:
    """``(path, pid, camid, domain)`` items: the files reused cyclically under ``num_ids`` identities.

    The pipeline's cost does not depend on which identity a file is labelled with, so a few
    hundred files stand in for a training set of any size.
    """
    count = max(len(paths), num_ids * k)
    return [(paths[i % len(paths)], i % num_ids, 0, 0) for i in range(count)]


def samples_per_s_in_process(dataset: TrainImageSet, samples: int) -> float:
    """Samples per second calling ``dataset[i]`` in this process (decode + transform)."""
    start = time.perf_counter()
    for i in range(samples):
        dataset[i % len(dataset)]
    return samples / (time.perf_counter() - start)


def samples_per_s_loader(items: List[tuple], data_cfg, batches: int) -> float:
    """Samples per second out of the training DataLoader, from creating its iterator to the last batch.

    Starting the workers (a fork each) is counted, but not timing from the first batch: the workers
    run ahead (two batches each), so a clock started at the first batch would catch batches made
    before it and overstate the rate with several workers.
    """
    loader = build_train_loader(items, data_cfg, two_view=True, seed=0, num_iters=batches)
    start = time.perf_counter()
    count = 0
    for batch in loader:
        count += len(batch["pid"])
    return count / (time.perf_counter() - start)


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", metavar="DIR", help="a folder of JPEGs (default: generate synthetic ones)")
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--samples", type=int, default=300, help="samples timed in the single process, per repeat")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the single-process measurements (median)")
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="DataLoader worker counts to measure")
    ap.add_argument("--num-ids", type=int, default=16, help="P of the loader's P x K batches (K = 4)")
    ap.add_argument("--batches", type=int, default=8, help="batches timed per loader (worker start-up included)")
    ap.add_argument("--gpu-step-s", type=float, default=DEFAULT_GPU_STEP_S,
                    help="ASSUMED GPU step time for ResNet-50 at 2 x 256 images (not measured here)")
    ap.add_argument("--step-images", type=int, default=512, help="images (views) per training step: 2 x 256")
    ap.add_argument("--json", metavar="PATH", help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)
    if args.gpu_step_s <= 0 or args.samples < 1 or args.batches < 1:
        raise SystemExit("error: --gpu-step-s, --samples and --batches must be positive")
    return args


def run(args: argparse.Namespace, paths: List[str]) -> Dict[str, object]:
    torch.set_num_threads(1)  # what a DataLoader worker runs with
    cfg = load_config(None, [f"data.height={args.height}", f"data.width={args.width}", "data.aug_prob=0.5",
                             "data.randaugment=true", "data.color_jitter=true", "data.random_erasing=true"])
    d = cfg.data
    items = training_items(paths, args.num_ids, d.num_instances)
    two_view = TrainImageSet(items, build_train_transform(d))
    one_view = TrainImageSet(items, build_original_transform(d.height, d.width))
    report = Report("data_pipeline")
    report.size = {"height": d.height, "width": d.width, "aug_prob": d.aug_prob, "files": len(paths),
                   "samples_per_repeat": args.samples, "repeats": args.repeats, "loader_batch": args.num_ids * 4,
                   "loader_batches": args.batches}
    print(f"two-view data pipeline: {d.height}x{d.width}, p={d.aug_prob}, RandAugment + ColorJitter + RandomErasing, "
          f"{len(paths)} JPEG files ({'given' if args.images else 'synthetic 128x64'}); "
          "a sample = one decode, two views")
    print(describe_machine_line(report.machine))

    rates = {}
    timing = time_repeated(lambda: samples_per_s_in_process(two_view, args.samples), repeats=args.repeats, warmup=0)
    rates["two_view"] = args.samples / timing.median
    _, memory = measure_memory(lambda: samples_per_s_in_process(two_view, min(args.samples, 100)))
    timing_ref = time_repeated(lambda: samples_per_s_in_process(one_view, args.samples), repeats=args.repeats,
                               warmup=0)
    rates["one_view"] = args.samples / timing_ref.median
    loader_rates = {}
    for workers in args.workers:
        data_cfg = dataclasses.replace(d, num_ids=args.num_ids, workers=workers)
        loader_rates[workers] = samples_per_s_loader(items, data_cfg, args.batches)

    rows = [["two-view, 1 process, 1 thread (= 1 worker)", rates["two_view"], 2 * rates["two_view"], "-"],
            ["reference: original view only, 1 process", rates["one_view"], rates["one_view"], "-"]]
    rows += [[f"DataLoader, {w} worker{'s' if w > 1 else ''}", r, 2 * r, r / w] for w, r in loader_rates.items()]
    print()
    print_table(["pipeline", "samples/s", "images/s", "samples/s per worker"], rows)
    cost_ratio = rates["one_view"] / rates["two_view"]
    print(f"two-view sample costs {cost_ratio:.2f}x a single original-view sample "
          f"(peak memory of the single process: NumPy/Python {memory.traced_peak_mb:.1f} MB, "
          f"RSS growth {memory.rss_growth_mb:.1f} MB)")

    per_worker = {"single process": 2 * rates["two_view"]}
    per_worker.update({f"{w}-worker loader": 2 * r / w for w, r in loader_rates.items()})
    print(f"\nworkers to feed one GPU step of {args.step_images} images (views) in {args.gpu_step_s:g} s "
          f"(ASSUMED GPU step time, not measured: this machine has no GPU; pass --gpu-step-s):")
    needed = {}
    for name, images_per_s in per_worker.items():
        needed[name] = math.ceil(args.step_images / (images_per_s * args.gpu_step_s))
        print(f"  from the {name} rate ({images_per_s:.0f} images/s per worker): "
              f"ceil({args.step_images} / ({images_per_s:.0f} x {args.gpu_step_s:g})) = {needed[name]} workers")
    report.results = {"samples_per_s": rates, "single_process_times_s": timing.times,
                      "reference_times_s": timing_ref.times, "loader_samples_per_s": loader_rates,
                      "images_per_s_per_worker": per_worker, "memory": memory.to_dict(),
                      "two_view_cost_x_one_view": cost_ratio}
    report.checks = {"gpu_step_s_assumed": args.gpu_step_s, "step_images": args.step_images,
                     "workers_needed": needed}
    return report.finish(None)


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    args = parse_args(argv)
    threads = torch.get_num_threads()
    try:
        if args.images:
            payload = run(args, find_jpegs(args.images))
        else:
            from bau.data.synthetic import generate

            with tempfile.TemporaryDirectory(prefix="bau_pipeline_") as folder:
                generate(folder, num_domains=1, ids_per_domain=16, seed=0, workers=1)
                payload = run(args, find_jpegs(folder))
    finally:
        torch.set_num_threads(threads)
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
