"""``bau demo`` / ``make demo``: the embedded default end to end on a CPU.

1. generate the synthetic multi-domain pedestrians (unless already there),
2. measure the untrained (ImageNet-only) MobileNetV2 on the held-out domain,
3. train BAU on the source domains (``experiments/demo.yaml``),
4. evaluate on the held-out domain and print where the run, metrics and checkpoints are.

A finished run is reused rather than retrained; an interrupted one is resumed.
"""
from __future__ import annotations

import json
import os
import time
from typing import List, Optional

from bau.core.atomic import atomic_write_json
from bau.core.config import load_config
from bau.core.errors import BauError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_demo_config() -> str:
    path = os.path.join(REPO, "experiments", "demo.yaml")
    if not os.path.isfile(path):
        raise BauError(f"demo config {path}: not found (run from a bau checkout or pass --config)")
    return path


def run_demo(out: str, data_dir: str = "data/synthetic", config: Optional[str] = None,
             overrides: Optional[List[str]] = None, progress: bool = True) -> dict:
    import torch

    from bau.core.device import resolve_device
    from bau.data.synthetic import format_stats, generate
    from bau.engine.trainer import Trainer
    from bau.evaluation.inference import evaluate_target
    from bau.evaluation.metrics import METRIC_KEYS
    from bau.models.reid import build_model
    from bau.runs.folder import nothing_trained, resume_config

    t0 = time.time()
    if not os.path.isfile(os.path.join(data_dir, "synthetic.json")):
        print(f"[1/4] generating synthetic domains in {data_dir} ...")
        stats = generate(data_dir)
    else:
        print(f"[1/4] synthetic domains already in {data_dir}")
        with open(os.path.join(data_dir, "synthetic.json")) as f:
            stats = json.load(f)
    print(format_stats(stats))

    cfg = load_config(config or default_demo_config(), [f"data.root={data_dir}"] + list(overrides or []))
    device = resolve_device(cfg.train.device)
    torch.manual_seed(cfg.train.seed)
    print(f"[2/4] untrained {cfg.model.backbone} (ImageNet weights only) on {', '.join(cfg.data.targets)} ...")
    untrained = {}
    untrained_model = build_model(cfg, num_classes=0).to(device).eval()
    for target in cfg.data.targets:
        r = evaluate_target(untrained_model, target, cfg, device, progress=progress)
        untrained[target] = {k: r[k] for k in METRIC_KEYS}
        print(f"      {target}: mAP {100 * r['mAP']:.1f}  rank-1 {100 * r['rank1']:.1f}")
    del untrained_model

    results_path = os.path.join(out, "results.json")
    finished = False
    if os.path.isfile(results_path):
        with open(results_path) as f:
            finished = json.load(f).get("finished", False)
    if finished:
        print(f"[3/4] {out} already holds a finished run; reusing it (delete the folder to retrain)")
        with open(results_path) as f:
            result = json.load(f)
    elif os.path.isfile(os.path.join(out, "last.pt")):
        print(f"[3/4] resuming the interrupted run in {out} ...")
        result = Trainer(resume_config(out), out, resume=True, progress=progress).fit()
    else:
        print(f"[3/4] training BAU ({cfg.model.backbone}, {cfg.data.height}x{cfg.data.width}, "
              f"{cfg.data.num_ids}x{cfg.data.num_instances} ids x images, {cfg.train.epochs} epochs) on "
              f"{' + '.join(cfg.data.sources)} ...")
        result = Trainer(cfg, out, progress=progress, force=nothing_trained(out)).fit()

    print("[4/4] held-out domain results")
    summary = {"untrained": untrained, "bau": result["metrics"], "run": out,
               "checkpoints": result["checkpoints"], "minutes": round((time.time() - t0) / 60, 1)}
    for target in cfg.data.targets:
        u, b = untrained[target], result["metrics"].get(target, {})
        if b:
            print(f"      {target}: untrained mAP {100 * u['mAP']:.1f} -> BAU mAP {100 * b['mAP']:.1f} "
                  f"(rank-1 {100 * u['rank1']:.1f} -> {100 * b['rank1']:.1f})")
    atomic_write_json(os.path.join(out, "demo_summary.json"), summary)
    print(f"run folder:  {out}  (config.yaml, log.jsonl, results.json, demo_summary.json)")
    print(f"checkpoints: {result['checkpoints']['last']}"
          + (f", {result['checkpoints']['best']}" if result["checkpoints"].get("best") else ""))
    print(f"evaluate again: bau eval --checkpoint {out}/last.pt --target {' '.join(cfg.data.targets)} "
          f"--data-root {data_dir}")
    print(f"total time: {summary['minutes']} min")
    return summary
