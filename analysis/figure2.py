"""Figure 2: Grad-CAM across augmentation probabilities (Sec. 3.1).

    python -m analysis.figure2 --sweep runs/demo --out figures/

For each of a few target images (``--num-images`` query images of the target picked evenly over
its query list, or the files given with ``--images``): the image, then one Grad-CAM overlay per
checkpoint of the baseline at p = 0 ... 1 (left to right), and below it the same for BAU. The
explained score is the image's own retrieval embedding (``analysis.gradcam.gradcam_map``), so
the map shows which regions make up the feature: with larger p the baseline concentrates on
fewer, dominant regions. The maps are computed at ``analysis.gradcam.cam_layer``'s layer: the
deepest one with at least 8x4 cells at the runs' image size (MobileNetV2 at 64x32: the end of its
stride-8 stage, ``backbone.features.6``, 8x4; its last layer would be 2x1). The caption under the
figure names the layer and its map size.

Runs are picked by their labels in the sweep's summary.json:

    method=baseline  at each p                  (required; its p values are the columns)
    method=bau       at each p                  (optional second row; a missing p is left blank)
    aug_prob         p
    seed             the training seed: the runs of one seed are shown (--run-seed, default the smallest)

Writes ``<out>/figure2.{png,pdf,json}``: the JSON lists per image, method and p the run, the
checkpoint, the Grad-CAM layer and its map size (``cam_layer``, ``cam_cells``), and the map's mean
and the fraction of pixels above 0.5 (how spread the attention is); ``caption`` is the figure's
caption; ``<out>/figure2_maps.npz`` holds the maps themselves (``maps [images, methods, ps, H, W]``,
NaN where a run is missing).
"""
from __future__ import annotations

import argparse
import os
import sys
import textwrap
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from analysis.sweep_data import (
    METHOD_NAMES,
    add_run_seed_option,
    choose_target,
    echo_for,
    p_of,
    run_cli,
    runs_of_seed,
    select_runs,
    sweep_arguments,
)
from bau.runs.folder import Run, same_value, sweep_runs

ROW_METHODS = ("baseline", "bau")


def pick_images(run: Run, target: str, num: int, root: Optional[str]) -> List[str]:
    """``num`` query images of ``target`` spread evenly over its query list (deterministic)."""
    from bau.core.errors import BauError
    from bau.data.datasets import build_dataset

    cfg = run.config()
    ds = build_dataset(target, root or cfg.data.root, split=0, split_seed=cfg.data.split_seed,
                       num_splits=cfg.data.num_splits)
    query = sorted(it[0] for it in ds.query)
    if not query:
        raise BauError(f"target {target}: no query images to explain")
    idx = np.unique(np.linspace(0, len(query) - 1, min(num, len(query))).round().astype(int))
    return [query[i] for i in idx]


def compute(args: argparse.Namespace) -> Dict[str, Any]:
    """Grad-CAM maps ``[images, methods, ps, H, W]`` and their overlays, with per-map statistics."""
    import torch

    from analysis.gradcam import cam_layer, gradcam_map, load_test_image, overlay
    from bau.core.device import resolve_device
    from bau.core.errors import BauError
    from bau.runs.checkpoint import model_from_checkpoint

    echo = echo_for(args)
    runs, run_seed = runs_of_seed(sweep_runs(args.sweep), args.run_seed, args.sweep)  # one model per panel
    rows = {"baseline": select_runs(runs, args.sweep, skip_unfinished=args.skip_unfinished, method="baseline"),
            "bau": select_runs(runs, args.sweep, required=False, skip_unfinished=args.skip_unfinished, method="bau")}
    methods = [m for m in ROW_METHODS if rows[m]]
    if "bau" not in methods:
        echo("note: no method=bau runs in the sweep; Figure 2 shows the baseline only")
    ps = [p_of(r) for r in rows["baseline"]]
    target = args.target or choose_target(rows["baseline"], None)
    if args.images:
        for path in args.images:
            if not os.path.isfile(path):
                raise BauError(f"--images {path}: file not found")
        images = list(args.images)
    else:
        images = pick_images(rows["baseline"][0], target, args.num_images, args.data_root)
    device = resolve_device(args.device)

    first_cfg = rows["baseline"][0].config()
    h, w = first_cfg.data.height, first_cfg.data.width
    maps = np.full((len(images), len(methods), len(ps), h, w), np.nan, dtype=np.float32)
    overlays: Dict[tuple, np.ndarray] = {}
    inputs = [load_test_image(path, h, w)[1] for path in images]
    records: List[Dict[str, Any]] = []
    layers: List[str] = []  # "name, hxw cells" of each run's Grad-CAM layer, in first-use order
    for mi, method in enumerate(methods):
        for pi, p in enumerate(ps):
            run = next((r for r in rows[method] if same_value(p_of(r), p)), None)
            if run is None:
                continue
            echo(f"Grad-CAM of {run.name}")
            model, _, cfg = model_from_checkpoint(run.checkpoint("last"), device)
            if (cfg.data.height, cfg.data.width) != (h, w):
                raise BauError(f"run {run.path}: image size {cfg.data.height}x{cfg.data.width} differs from "
                               f"{h}x{w} of the other runs; Figure 2 needs one size")
            layer = cam_layer(model, h, w)
            if layer.describe() not in layers:
                layers.append(layer.describe())
            for ii, path in enumerate(images):
                tensor, rgb = load_test_image(path, h, w)
                cam = gradcam_map(model, tensor, target_layer=layer.module)
                maps[ii, mi, pi] = cam
                overlays[(ii, mi, pi)] = overlay(rgb, cam)
                records.append({"image": path, "method": method, "p": p, "run": run.name,
                                "checkpoint": run.checkpoint("last"), "cam_layer": layer.name,
                                "cam_cells": list(layer.map_hw), "cam_mean": float(cam.mean()),
                                "cam_area_above_0.5": float((cam > 0.5).mean())})
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return {"sweep": args.sweep, "run_seed": run_seed, "target": target, "images": images, "methods": methods, "ps": ps,
            "cam_layers": layers, "caption": caption(layers, h, w, run_seed), "records": records, "_maps": maps,
            "_overlays": overlays, "_inputs": inputs}


def caption(layers: Sequence[str], height: int, width: int, run_seed: Optional[int] = None) -> str:
    """The figure's caption: where the maps were computed, how many cells they have, which seed's runs."""
    from analysis.gradcam import MIN_CELLS

    seed = f"; the runs of training seed {run_seed}" if run_seed is not None else ""
    return (f"Grad-CAM of each image's own retrieval embedding at {'; '.join(layers)} (the deepest layer with "
            f"at least {MIN_CELLS[0]}x{MIN_CELLS[1]} cells at {height}x{width}), upsampled to the image{seed}")


def plot(data: Dict[str, Any]):
    """Rows: (image, method), each starting with the input image; then p = ps[0] ... ps[-1]."""
    from analysis.plotting import image_grid

    images, methods, ps = data["images"], data["methods"], data["ps"]
    h, w = data["_inputs"][0].shape[:2]
    blank = np.ones((h, w, 3), dtype=np.float32)  # a run missing from the sweep
    panels, titles = [], []
    for ii in range(len(images)):
        for mi in range(len(methods)):
            first_row = ii == 0 and mi == 0
            panels.append(data["_inputs"][ii])
            titles.append("image" if first_row else None)
            for pi, p in enumerate(ps):
                panels.append(data["_overlays"].get((ii, mi, pi), blank))
                titles.append(f"p = {p:g}" if first_row else None)
    nrows = len(images) * len(methods)
    fig, axes = image_grid(panels, titles=titles, nrows=nrows, panel_width=0.8)
    ncols = 1 + len(ps)
    for r in range(nrows):
        axes[r * ncols].set_ylabel(METHOD_NAMES[methods[r % len(methods)]], fontsize=7)
    # image_grid leaves title room above every row; only the first row has titles here, so size
    # the canvas to the panels exactly: a panel is 0.8 in wide, gaps are 4 % of a panel.
    panel_w, gap, left, top = 0.8, 0.04, 0.3, 0.25
    panel_h = panel_w * h / w
    width = left + 0.02 + panel_w * (ncols + (ncols - 1) * gap)
    lines = textwrap.wrap(data["caption"], width=max(30, int(width * 17)))  # ~17 characters per inch at 6 pt
    bottom = 0.06 + 0.1 * len(lines)  # the caption's lines under the panels
    height = top + bottom + panel_h * (nrows + (nrows - 1) * gap)
    fig.set_size_inches(width, height)
    fig.subplots_adjust(left=left / width, right=1 - 0.02 / width, bottom=bottom / height, top=1 - top / height,
                        wspace=gap, hspace=gap)
    fig.text(left / width, 0.02 / height, "\n".join(lines), fontsize=6, ha="left", va="bottom")
    return fig


def _body(args: argparse.Namespace) -> None:
    from analysis.plotting import save_figure
    from bau.core.atomic import atomic_path

    data = compute(args)
    public = {k: v for k, v in data.items() if not k.startswith("_")}
    written = save_figure(plot(data), os.path.join(args.out, args.name), public)
    maps_path = os.path.join(args.out, f"{args.name}_maps.npz")
    with atomic_path(maps_path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, maps=data["_maps"], images=np.array(data["images"]), methods=np.array(data["methods"]),
                     ps=np.array(data["ps"], dtype=np.float64))
    echo_for(args)("wrote " + ", ".join(written + [maps_path]))


def build_parser() -> argparse.ArgumentParser:
    parser = sweep_arguments(__doc__, "figure2")
    parser.add_argument("--images", nargs="+", default=None, help="image files to explain (default: target queries)")
    parser.add_argument("--num-images", type=int, default=2, help="target query images to explain (default 2)")
    add_run_seed_option(parser, "every panel")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_cli(_body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
