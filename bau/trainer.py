"""The training loop. It only wires the pieces: data -> model -> objective (Eq. 9) -> optimiser,
memory-bank update (Eq. 7), evaluation, logging and checkpoints.

A run folder holds::

    config.yaml   the resolved config (the single source of the run's hyper-parameters)
    log.jsonl     one JSON record per logged step ({"event": "step", ...every loss term...}) and per
                  evaluation ({"event": "eval", "epoch", "target", "mAP", ...}); analysis and the app read it
    last.pt       checkpoint after every epoch; best.pt at the best evaluation (mean mAP over targets)
    results.json  the final evaluation and {"finished": true} once the run is complete

Resuming (``bau train --resume RUN``) restarts from ``last.pt`` and reproduces an uninterrupted
run exactly on CPU: every epoch re-seeds the RNGs and the sampler from ``(seed, epoch)``.
"""
from __future__ import annotations

import json
import math
import os
import random
import time
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
from tqdm import tqdm

from bau.atomic import atomic_write_json, atomic_write_text
from bau.checkpoint import load_checkpoint, save_checkpoint
from bau.config import Config, config_from_dict, save_config
from bau.data.datasets import build_dataset
from bau.data.loader import build_train_loader
from bau.data.multisource import MultiSourceTrainSet, combine
from bau.device import resolve_device
from bau.distributed import (DistContext, barrier, broadcast_, convert_batchnorm, gather_no_grad, gather_with_grad,
                             init_distributed, rank_device)
from bau.errors import BauError
from bau.evaluation import METRIC_KEYS
from bau.inference import evaluate_target, extract_features
from bau.memory import PrototypeMemory
from bau.models.reid import ReIDModel, build_model
from bau.objective import BAUObjective


class TrainingDiverged(BauError):
    """A loss term became NaN or inf; the run stops and keeps its last good checkpoint."""


def lr_factor(epoch: int, cfg: Config) -> float:
    """Linear warm-up from ``warmup_factor`` over ``warmup_epochs``, then x``gamma`` at each milestone.

    ``epoch`` is 0-based (the factor used during epoch ``epoch + 1``)."""
    o = cfg.optim
    factor = o.gamma ** sum(epoch >= m for m in o.milestones)
    if epoch < o.warmup_epochs:
        alpha = epoch / o.warmup_epochs
        factor *= o.warmup_factor * (1 - alpha) + alpha
    return factor


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


class Trainer:
    def __init__(self, cfg: Config, run_dir: str, resume: bool = False, progress: bool = True,
                 echo: Callable[[str], None] = print):
        self.cfg, self.run_dir = cfg, run_dir
        device = resolve_device(cfg.train.device)
        self.dist: DistContext = init_distributed(device)
        self.device = rank_device(device, self.dist)
        # Only rank 0 talks, logs and writes; the other ranks compute the same global loss.
        self.progress = progress and self.dist.is_main
        self.echo = echo if self.dist.is_main else (lambda s: None)
        self.last_path = os.path.join(run_dir, "last.pt")
        self.best_path = os.path.join(run_dir, "best.pt")
        self.log_path = os.path.join(run_dir, "log.jsonl")
        if not resume and os.path.exists(self.last_path) and self.dist.is_main:
            raise BauError(f"run folder {run_dir} already holds a run (last.pt); resume it with "
                           f"`bau train --resume {run_dir}` or choose another --out")
        barrier(self.dist)
        os.makedirs(run_dir, exist_ok=True)
        if cfg.train.threads > 0:
            torch.set_num_threads(cfg.train.threads)
        seed_everything(cfg.train.seed)

        # data
        self.sources = [build_dataset(n, cfg.data.root, split=0, split_seed=cfg.data.split_seed,
                                      num_splits=cfg.data.num_splits) for n in cfg.data.sources]
        self.train_set: MultiSourceTrainSet = combine(self.sources, list(cfg.data.sources))
        self.loader = build_train_loader(self.train_set.train, cfg.data, two_view=cfg.loss.two_view,
                                         seed=cfg.train.seed, num_iters=cfg.train.iters_per_epoch,
                                         rank=self.dist.rank, world_size=self.dist.world_size)
        self.sampler = self.loader.sampler

        # model, memory bank, objective, optimiser
        self.model: ReIDModel = build_model(cfg, self.train_set.num_classes).to(self.device)
        self.net: torch.nn.Module = self.model  # what the training step calls (DDP-wrapped when distributed)
        if self.dist.enabled:
            self.model = convert_batchnorm(self.model, self.device)
            ids = [self.device.index] if self.device.type == "cuda" else None
            # The classifier is unused when no cross-entropy term is on (e.g. an ablation).
            unused = not (cfg.loss.ce or cfg.loss.ce_aug)
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids,
                                                                 find_unused_parameters=unused)
        self.memory: Optional[PrototypeMemory] = None
        if cfg.loss.domain:
            self.memory = PrototypeMemory(self.train_set.num_classes, self.model.feat_dim,
                                          torch.as_tensor(self.train_set.class_domains), cfg.loss.momentum
                                          ).to(self.device)
        self.objective = BAUObjective(cfg.loss, self.memory)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda e: lr_factor(e, cfg))
        self.use_amp = cfg.train.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)

        self.start_epoch, self.step, self.best_map, self.last_metrics = 1, 0, -1.0, {}
        if resume:
            self._resume()
        else:
            if self.dist.is_main:
                save_config(cfg, os.path.join(run_dir, "config.yaml"))
                if os.path.exists(self.log_path):
                    os.remove(self.log_path)
            if self.memory is not None:
                self._initialise_memory()

    # -- set-up helpers -------------------------------------------------------------------------
    def _initialise_memory(self) -> None:
        """Prototypes = L2-normalised mean feature of each class before training (Sec. 3.2).

        Computed on rank 0 and broadcast, so every rank starts from the same bank."""
        if self.dist.is_main:
            items = self.train_set.train
            feats = extract_features(self.model, items, self.cfg, self.device, progress=self.progress,
                                     desc="memory init")
            pids = torch.as_tensor([it[1] for it in items], device=self.device)
            self.memory.initialise(torch.from_numpy(feats).to(self.device), pids)
        broadcast_(self.memory.prototypes, self.dist)

    def _resume(self) -> None:
        ckpt = load_checkpoint(self.last_path, map_location=self.device)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.memory is not None:
            self.memory.load_state_dict(ckpt["memory"])
        if "scaler" in ckpt and self.use_amp:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.start_epoch = ckpt["epoch"] + 1
        self.step = ckpt["step"]
        self.best_map = ckpt.get("best_map", -1.0)
        self.last_metrics = ckpt.get("metrics", {})
        if self.dist.is_main:
            self._truncate_log(ckpt["epoch"])
        barrier(self.dist)
        self.echo(f"resuming {self.run_dir} after epoch {ckpt['epoch']} (step {self.step})")

    def _truncate_log(self, epoch: int) -> None:
        """Drop log records of the epoch that was interrupted, so the resumed log reads as one run."""
        if not os.path.exists(self.log_path):
            return
        kept = []
        with open(self.log_path) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by the interruption
                if rec.get("epoch", 0) <= epoch:
                    kept.append(json.dumps(rec))
        atomic_write_text(self.log_path, "".join(k + "\n" for k in kept))

    # -- the loop -------------------------------------------------------------------------------
    def _log(self, record: Dict) -> None:
        if not self.dist.is_main:
            return
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def _checkpoint_payload(self, epoch: int) -> Dict:
        payload = {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "epoch": epoch, "step": self.step,
            "config": self.cfg.to_dict(), "num_classes": self.train_set.num_classes,
            "class_domains": list(map(int, self.train_set.class_domains)),
            "domain_names": list(self.train_set.domain_names), "metrics": self.last_metrics,
            "best_map": self.best_map, "rng": {"torch": torch.get_rng_state()},
            "sampler": {"epoch": epoch},
        }
        if self.memory is not None:
            payload["memory"] = self.memory.state_dict()
        if self.use_amp:
            payload["scaler"] = self.scaler.state_dict()
        return payload

    def _seed_epoch(self, epoch: int) -> None:
        # Every epoch starts from RNG states that depend only on (seed, epoch): resuming after any
        # epoch reproduces the uninterrupted run's batches and augmentations.
        seed = self.cfg.train.seed * 1_000_003 + epoch
        seed_everything(seed)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        if getattr(self.loader, "generator", None) is not None:
            self.loader.generator.manual_seed(seed)

    def train_step(self, batch: Dict[str, torch.Tensor], epoch: int) -> Dict[str, float]:
        cfg, dev = self.cfg, self.device
        pids = batch["pid"].to(dev, non_blocking=True)
        dids = batch["domain"].to(dev, non_blocking=True)
        images = batch["orig"].to(dev, non_blocking=True)
        two_view = cfg.loss.two_view
        if two_view:
            # One forward over [original; augmented]: the BN statistics see both views, like the
            # authors' implementation, and one pass is faster than two.
            images = torch.cat([images, batch["aug"].to(dev, non_blocking=True)])
        with torch.autocast(device_type=dev.type, enabled=self.use_amp):
            out = self.net(images)
        b = pids.shape[0]
        # Distributed: every rank rebuilds the global batch (rank order = the single-process order,
        # since the sampler hands each rank a contiguous slice), with gradients, and computes the
        # single-process loss on it.
        out_o = {k: gather_with_grad(v[:b], self.dist) for k, v in out.items()}
        out_a = {k: gather_with_grad(v[b:], self.dist) for k, v in out.items()} if two_view else None
        pids, dids = gather_no_grad(pids, self.dist), gather_no_grad(dids, self.dist)
        terms = self.objective(out_o, out_a, pids, dids)
        f_orig = terms.pop("_f_orig")
        for name, value in terms.items():
            if not torch.isfinite(value):
                raise TrainingDiverged(
                    f"loss term {name!r} became {value.item()} at epoch {epoch}, step {self.step + 1}; "
                    f"stopped, the last good checkpoint is {self.last_path if os.path.exists(self.last_path) else 'none (first epoch)'}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(terms["total"]).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.memory is not None:
            self.memory.update(f_orig, pids)  # Eq. 7, original-view features only
        self.step += 1
        return {k: float(v.detach()) for k, v in terms.items()}

    def evaluate(self, epoch: int) -> Dict:
        """Rank 0 evaluates; the other ranks wait at the barrier in ``fit``."""
        results = {}
        for name in self.cfg.data.targets:
            r = evaluate_target(self.model, name, self.cfg, self.device, progress=self.progress)
            results[name] = r
            self._log({"event": "eval", "epoch": epoch, "step": self.step, "target": name,
                       **{k: r[k] for k in METRIC_KEYS}})
            self.echo(f"epoch {epoch} | {name}: mAP {100 * r['mAP']:.1f}  rank-1 {100 * r['rank1']:.1f}  "
                      f"rank-5 {100 * r['rank5']:.1f}  mINP {100 * r['mINP']:.1f}")
        return results

    def fit(self) -> Dict:
        cfg = self.cfg
        epochs, eval_every = cfg.train.epochs, cfg.train.eval_every
        steps_per_epoch = len(self.loader)
        for epoch in range(self.start_epoch, epochs + 1):
            self._seed_epoch(epoch)
            self.net.train()
            lr = self.optimizer.param_groups[0]["lr"]
            bar = tqdm(self.loader, total=steps_per_epoch, desc=f"epoch {epoch}/{epochs}", disable=not self.progress,
                       dynamic_ncols=True, leave=False)
            t_last = time.perf_counter()
            for it, batch in enumerate(bar):
                values = self.train_step(batch, epoch)
                now = time.perf_counter()
                if self.step % max(cfg.train.log_every, 1) == 0:
                    self._log({"event": "step", "epoch": epoch, "iter": it + 1, "step": self.step, "lr": lr,
                               "time_s": round(now - t_last, 4), **{k: round(v, 6) for k, v in values.items()}})
                t_last = now
                bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()})
                if cfg.train.max_steps and self.step >= cfg.train.max_steps:
                    break
            bar.close()
            self.scheduler.step()
            stop = bool(cfg.train.max_steps and self.step >= cfg.train.max_steps)
            last = epoch == epochs or stop
            if self.dist.is_main:
                if ((eval_every and epoch % eval_every == 0) or last) and cfg.data.targets:
                    results = self.evaluate(epoch)
                    self.last_metrics = {n: {k: r[k] for k in METRIC_KEYS}
                                         for n, r in results.items()}
                    mean_map = float(np.mean([r["mAP"] for r in results.values()]))
                    if mean_map > self.best_map:
                        self.best_map = mean_map
                        save_checkpoint(self.best_path, self._checkpoint_payload(epoch))
                save_checkpoint(self.last_path, self._checkpoint_payload(epoch))
            barrier(self.dist)
            if stop:
                break
        final = {"finished": True, "epochs": epochs, "steps": self.step, "metrics": self.last_metrics,
                 "best_mean_mAP": self.best_map if self.best_map >= 0 else None,
                 "world_size": self.dist.world_size,
                 "checkpoints": {"last": self.last_path,
                                 "best": self.best_path if os.path.exists(self.best_path) else None}}
        if self.dist.is_main:
            atomic_write_json(os.path.join(self.run_dir, "results.json"), final)
        return final


def resume_config(run_dir: str, overrides: Optional[List[str]] = None) -> Config:
    """The config of an existing run (from its last checkpoint), for ``bau train --resume``."""
    path = os.path.join(run_dir, "last.pt")
    if not os.path.isfile(path):
        raise BauError(f"--resume {run_dir}: no last.pt in that folder (nothing to resume; start it with --out)")
    cfg = config_from_dict(load_checkpoint(path)["config"])
    if overrides:
        from bau.config import _apply, parse_overrides

        _apply(cfg, parse_overrides(overrides), "", "command line")
    return cfg.validate()
