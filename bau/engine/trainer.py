"""The training loop. It only wires the pieces: data -> model -> objective (Eq. 9) -> optimiser,
memory-bank update (Eq. 7), evaluation, logging and checkpoints.

A run folder holds::

    config.yaml   the resolved config (the single source of the run's hyper-parameters; rewritten
                  when a run is resumed with overrides)
    log.jsonl     first the ImageNet weights the backbone started from ({"event": "weights", ...}), then
                  one JSON record per logged step ({"event": "step", ...every loss term...}), per
                  epoch ({"event": "epoch", "domain_share": {source: fraction of the batch slots},
                  mean loss terms}) and per evaluation ({"event": "eval", "epoch", "target", "mAP",
                  ...}); analysis and the app read it
    events.out.tfevents.*  with ``train.tensorboard: true``, the same records as TensorBoard scalars
                  (``bau.engine.tensorboard_log``)
    last.pt       checkpoint after every epoch, written before that epoch's evaluation; best.pt at
                  the best evaluation (mean mAP over targets)
    results.json  the final evaluation (``eval.select``: the last one, or the best of chosen epochs on
                  the target set, as released) and {"finished": true} once the run is complete
    .lock         while a trainer writes the folder: a lease with a heartbeat (``bau.runs.lock``)

A folder holding any of ``RUN_ARTEFACTS`` is never trained into from scratch unless asked
(``force=True``, ``bau train --force``), which removes them first: a finished run whose ``last.pt``
is gone is not silently written over.

Before the first step every source and target dataset is built and every image header checked
(``bau.engine.preflight``). Resuming (``bau train --resume RUN``) restarts from ``last.pt`` and reproduces
an uninterrupted run exactly on CPU: every epoch re-seeds the RNGs and the sampler from
``(seed, epoch)``; log records past the checkpoint are dropped, so no step is logged twice. The
checkpoints store a fingerprint of the training list (``training_fingerprint``: paths, pids,
sizes, mtimes), and a resume on other data is refused.
"""
from __future__ import annotations

import json
import os
import random
import time
from typing import Callable, Dict, List, Optional, Tuple, Type

import numpy as np
import torch
from tqdm import tqdm

from bau.core.atomic import atomic_write_json
from bau.core.config import Config, config_from_dict, save_config
from bau.core.device import resolve_device
from bau.core.errors import BauError, describe_os_error
from bau.data.loader import build_train_loader
from bau.data.multisource import MultiSourceTrainSet, training_fingerprint, training_set
from bau.engine.distributed import (
    DistContext,
    barrier,
    broadcast_,
    convert_batchnorm,
    init_distributed,
    leave_process_group,
    rank_device,
)
from bau.engine.optim import build_optimizer
from bau.engine.preflight import check_run_inputs
from bau.engine.step import NonFiniteLoss, TrainStep
from bau.engine.tensorboard_log import TensorBoardLog, require_tensorboard
from bau.evaluation.geometry import uniformity
from bau.evaluation.inference import evaluate_target, extract_features
from bau.evaluation.metrics import METRIC_KEYS
from bau.method.memory import PrototypeMemory
from bau.method.objective import BAUObjective
from bau.models.reid import ReIDModel, build_model
from bau.runs.checkpoint import load_checkpoint, save_checkpoint
from bau.runs.folder import (
    SWEEP_RUN_FILE,
    clear_run_folder,
    nothing_trained,
    open_run_folder,
    remove_orphan_temp_files,
    resume_config,
    truncate_log,
)
from bau.runs.lock import RunLock

# The files of a run: a folder holding any of them is only trained into with --resume or --force.


class TrainingDiverged(BauError):
    """A loss term became NaN or inf; the run stops and keeps its last good checkpoint."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


class Trainer:
    """Train one run into ``run_dir``: ``Trainer(cfg, run_dir).fit()``.

    The pieces are built by small overridable class methods (fast-reid's ``DefaultTrainer``
    style), which the benchmarks reuse: ``build_data`` (sources -> one training set ->
    ``build_loader``'s P x K loader), ``build_model``, ``build_memory`` and ``build_optimizer``. The constructor takes
    the run folder's lock first (one writer per folder, ``bau.runs.lock``) and gives it back if
    anything fails before ``fit``; ``fit`` gives it back when it returns or raises.

    A new run (not ``resume``) refuses a folder that holds any of ``RUN_ARTEFACTS``, unless
    ``force``: then they are removed before anything is written.
    """

    def __init__(self, cfg: Config, run_dir: str, resume: bool = False, progress: bool = True,
                 echo: Callable[[str], None] = print, force: bool = False):
        self.cfg, self.run_dir, self.force = cfg, run_dir, force
        device = resolve_device(cfg.train.device)
        self.dist: DistContext = init_distributed(device)
        self.device = rank_device(device, self.dist)
        # Only rank 0 talks, logs and writes; the other ranks compute the same global loss.
        self.progress = progress and self.dist.is_main
        self.echo = echo if self.dist.is_main else (lambda s: None)
        self.last_path = os.path.join(run_dir, "last.pt")
        self.best_path = os.path.join(run_dir, "best.pt")
        self.log_path = os.path.join(run_dir, "log.jsonl")
        self.lock = RunLock(run_dir, echo=self.echo)
        self.tensorboard: Optional[TensorBoardLog] = None  # mirrors log.jsonl when train.tensorboard
        if cfg.train.tensorboard and self.dist.is_main:
            require_tensorboard()  # before the lock: a missing extra is one line, nothing written
        if self.dist.is_main:
            open_run_folder(run_dir)
            self.lock.acquire()
        try:
            self._set_up(resume)
        except BaseException:
            self.lock.release()
            raise

    def _set_up(self, resume: bool) -> None:
        cfg = self.cfg
        if self.dist.is_main:
            if not resume:
                clear_run_folder(self.run_dir, self.force)
            remove_orphan_temp_files(self.run_dir)
        barrier(self.dist)
        if cfg.train.threads > 0:
            torch.set_num_threads(cfg.train.threads)
        seed_everything(cfg.train.seed)

        # The start-up check runs before the loader, whose image cache decodes every training image.
        self.train_set = training_set(cfg.data)
        self.data_fingerprint = training_fingerprint(self.train_set.train)
        if self.dist.is_main:
            n = check_run_inputs(cfg, [it[0] for it in self.train_set.train], progress=self.progress)
            self.echo(f"checked {n} images of {len(cfg.data.sources)} source and {len(cfg.data.targets)} "
                      f"target dataset(s)")
        barrier(self.dist)
        self.loader = self.build_loader(cfg, self.train_set, self.dist)
        self.sampler = self.loader.sampler

        self.model: ReIDModel = self.build_model(cfg, self.train_set.num_classes, self.device)
        self.net: torch.nn.Module = self.model  # what the training step calls (DDP-wrapped when distributed)
        if self.dist.enabled:
            self.model, self.net = self.build_net(cfg, self.model, self.device)
        self.memory: Optional[PrototypeMemory] = self.build_memory(cfg, self.train_set, self.model.feat_dim,
                                                                   self.device)
        self.objective = BAUObjective(cfg.loss, self.memory)
        self.optimizer, self.scheduler = self.build_optimizer(cfg, self.model)
        self.step_fn = TrainStep(cfg, self.model, self.objective, self.optimizer, self.memory, self.device,
                                 net=self.net, dist=self.dist)

        self.start_epoch, self.step, self.best_map, self.last_metrics = 1, 0, -1.0, {}
        self.selection_evals: Dict[int, Dict] = {}  # eval.select=best_of: metrics after each select epoch
        self.pending_eval: Optional[int] = None  # an epoch whose evaluation did not finish
        self._source_sample: Optional[List[tuple]] = None  # the fixed source images of the logged geometry
        if resume:
            self._resume()
        else:
            if self.dist.is_main:
                save_config(cfg, os.path.join(self.run_dir, "config.yaml"))
                if os.path.exists(self.log_path):
                    os.remove(self.log_path)
                self._report_weights()
            if self.memory is not None:
                self._initialise_memory()
        if cfg.train.tensorboard and self.dist.is_main:
            self.tensorboard = TensorBoardLog(self.run_dir, first_step=self.step + 1 if resume else 0)

    def _report_weights(self) -> None:
        """Say which ImageNet weights the backbone started from: one line, and a ``weights`` record
        at the top of ``log.jsonl`` (``{"event": "weights", "epoch": 0, "backbone", "weights", "path"}``)."""
        loaded = getattr(self.model.backbone, "weights_loaded", None)
        if loaded is None:
            record = {"weights": "none (model.pretrained=false: random initialisation)", "path": None}
        else:
            record = dict(loaded)
        self.echo(f"{self.cfg.model.backbone}: ImageNet weights {record['weights']}"
                  + (f" ({record['path']})" if record["path"] else ""))
        self._log({"event": "weights", "epoch": 0, "backbone": self.cfg.model.backbone, **record})

    # -- builders (override in a subclass to change one piece) -----------------------------------
    @classmethod
    def build_data(cls, cfg: Config, dist: Optional[DistContext] = None
                   ) -> Tuple[MultiSourceTrainSet, torch.utils.data.DataLoader]:
        """The source datasets merged into one training set (one domain each) and its loader."""
        train_set = training_set(cfg.data)
        return train_set, cls.build_loader(cfg, train_set, dist)

    @classmethod
    def build_loader(cls, cfg: Config, train_set: MultiSourceTrainSet,
                     dist: Optional[DistContext] = None) -> torch.utils.data.DataLoader:
        """The P x K training loader of ``train_set`` (this rank's slice of every global batch)."""
        dist = dist or DistContext()
        return build_train_loader(train_set.train, cfg.data, two_view=cfg.loss.two_view, seed=cfg.train.seed,
                                  num_iters=cfg.train.iters_per_epoch, rank=dist.rank, world_size=dist.world_size,
                                  channels_last=cfg.train.channels_last)

    @classmethod
    def build_model(cls, cfg: Config, num_classes: int, device: torch.device) -> ReIDModel:
        """The re-ID network on ``device`` (channels_last when ``train.channels_last``: ``build_model``)."""
        return build_model(cfg, num_classes).to(device)

    @classmethod
    def build_net(cls, cfg: Config, model: ReIDModel, device: torch.device
                  ) -> Tuple[ReIDModel, torch.nn.parallel.DistributedDataParallel]:
        """``(model, net)`` for a distributed run: BatchNorm synchronised across ranks
        (``convert_batchnorm``), and ``net`` the model wrapped in DDP (what the step calls)."""
        model = convert_batchnorm(model, device)
        ids = [device.index] if device.type == "cuda" else None
        # The classifier is unused when no cross-entropy term is on (e.g. an ablation).
        unused = not (cfg.loss.ce or cfg.loss.ce_aug)
        return model, torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=unused)

    @classmethod
    def build_memory(cls, cfg: Config, train_set: MultiSourceTrainSet, feat_dim: int,
                     device: torch.device) -> Optional[PrototypeMemory]:
        """The class-prototype memory of Eq. 7 (None when ``loss.domain`` is off); not yet initialised."""
        if not cfg.loss.domain:
            return None
        return PrototypeMemory(train_set.num_classes, feat_dim, torch.as_tensor(train_set.class_domains),
                               cfg.loss.momentum).to(device)

    @classmethod
    def build_optimizer(cls, cfg: Config, model: torch.nn.Module
                        ) -> Tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        """Adam on the trainable parameters, warm-up + step schedule per epoch (``bau.engine.optim``)."""
        return build_optimizer(cfg, model)

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
        if (ckpt["num_classes"] != self.train_set.num_classes
                or list(ckpt.get("class_domains", self.train_set.class_domains)) != list(self.train_set.class_domains)):
            raise BauError(f"--resume {self.run_dir}: the training data changed since last.pt was written "
                           f"({ckpt['num_classes']} classes then, {self.train_set.num_classes} now); resume with "
                           f"the run's own data.sources and data.root")
        if "data_fingerprint" not in ckpt:
            self.echo(f"notice: {self.last_path} has no training-data fingerprint (written by an older bau); "
                      f"the training data could only be checked by its class count")
        elif ckpt["data_fingerprint"] != self.data_fingerprint:
            raise BauError(f"--resume {self.run_dir}: the training data changed since last.pt was written (the "
                           f"fingerprint of its {len(self.train_set)} images' paths, ids, sizes and times differs); "
                           f"resume with the run's own data.sources, data.root and image files")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.memory is not None:
            self.memory.load_state_dict(ckpt["memory"])
        if "scaler" in ckpt and self.step_fn.use_amp:
            self.step_fn.scaler.load_state_dict(ckpt["scaler"])
        self.start_epoch = ckpt["epoch"] + 1
        self.step = ckpt["step"]
        self.best_map = ckpt.get("best_map", -1.0)
        self.last_metrics = ckpt.get("metrics", {})
        self.selection_evals = {int(k): v for k, v in ckpt.get("selection_evals", {}).items()}
        if not ckpt.get("evaluated", True):
            self.pending_eval = ckpt["epoch"]
        if self.dist.is_main:
            # The run may be resumed with overrides (say, more epochs): the folder's config follows.
            save_config(self.cfg, os.path.join(self.run_dir, "config.yaml"))
            dropped = truncate_log(self.log_path, ckpt["step"], ckpt["epoch"], evaluated=self.pending_eval is None)
            if dropped:
                self.echo(f"notice: {self.log_path}: {dropped} unreadable line(s) dropped")
        barrier(self.dist)
        self.echo(f"resuming {self.run_dir} after epoch {ckpt['epoch']} (step {self.step})")

    # -- the loop -------------------------------------------------------------------------------
    def _log(self, record: Dict) -> None:
        if not self.dist.is_main:
            return
        try:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:
            raise BauError(f"{self.log_path}: could not be written: {describe_os_error(e)}") from None
        if self.tensorboard is not None:
            self.tensorboard.write(record)

    def _checkpoint_payload(self, epoch: int, evaluated: bool) -> Dict:
        payload = {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "epoch": epoch, "step": self.step,
            "config": self.cfg.to_dict(), "num_classes": self.train_set.num_classes,
            # read back by --resume to refuse a run whose training data changed
            "class_domains": list(map(int, self.train_set.class_domains)),
            "domain_names": list(self.train_set.domain_names), "data_fingerprint": self.data_fingerprint,
            "metrics": self.last_metrics,
            "best_map": self.best_map, "evaluated": evaluated,
            "selection_evals": {str(k): v for k, v in self.selection_evals.items()},
        }
        if self.memory is not None:
            payload["memory"] = self.memory.state_dict()
        if self.step_fn.use_amp:
            payload["scaler"] = self.step_fn.scaler.state_dict()
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

    def train_step(self, batch: Dict[str, torch.Tensor], epoch: int) -> Tuple[Dict[str, float], torch.Tensor]:
        """One step (``bau.engine.step.TrainStep``); returns the loss values and the batch's domain ids."""
        try:
            values, dids = self.step_fn(batch)
        except NonFiniteLoss as e:
            last = self.last_path if os.path.exists(self.last_path) else "none (first epoch)"
            raise TrainingDiverged(f"loss term {e.term!r} became {e.value} at epoch {epoch}, step {self.step + 1}; "
                                   f"stopped, the last good checkpoint is {last}") from None
        self.step += 1
        return values, dids

    def evaluate(self, epoch: int) -> Dict:
        """Rank 0 evaluates every target, logs it and keeps ``best.pt``; the other ranks wait.

        With ``eval.geometry`` each ``eval`` record also holds the geometry of that moment
        (``L_align`` and ``L_uniform`` of the target's features, ``L_uniform_source`` of a fixed
        sample of the source images: ``source_geometry_sample``), ``eval_s`` (the whole evaluation)
        and ``geometry_s`` (the part the geometry took)."""
        cfg = self.cfg
        results, records = {}, []
        for name in cfg.data.targets:
            start = time.perf_counter()
            r = evaluate_target(self.model, name, cfg, self.device, progress=self.progress,
                                geometry=cfg.eval.geometry)
            results[name] = r
            rec = {"event": "eval", "epoch": epoch, "step": self.step, "target": name,
                   **{k: r[k] for k in METRIC_KEYS}}
            if cfg.eval.geometry:
                rec.update({k: round(float(v), 6) for k, v in r["geometry"].items()})
                rec["geometry_s"] = r["geometry_s"]
            rec["eval_s"] = time.perf_counter() - start
            records.append(rec)
            self.echo(f"epoch {epoch} | {name}: mAP {100 * r['mAP']:.1f}  rank-1 {100 * r['rank1']:.1f}  "
                      f"rank-5 {100 * r['rank5']:.1f}  mINP {100 * r['mINP']:.1f}")
        if cfg.eval.geometry and records:
            start = time.perf_counter()
            source = round(self._source_uniformity(results[cfg.data.targets[0]]["num_images"]), 6)
            took = time.perf_counter() - start
            for rec in records:
                rec.update(L_uniform_source=source, geometry_s=rec["geometry_s"] + took, eval_s=rec["eval_s"] + took)
        for rec in records:
            rec["eval_s"], rec["geometry_s"] = round(rec["eval_s"], 4), round(rec.get("geometry_s", 0.0), 4)
            self._log(rec)
        self.last_metrics = {n: {k: r[k] for k in METRIC_KEYS} for n, r in results.items()}
        if self.cfg.eval.select == "best_of" and epoch in self.cfg.eval.select_epochs:
            self.selection_evals[epoch] = self.last_metrics
        mean_map = float(np.mean([r["mAP"] for r in results.values()]))
        if mean_map > self.best_map:
            self.best_map = mean_map
            save_checkpoint(self.best_path, self._checkpoint_payload(epoch, evaluated=True))
        return results

    def _source_uniformity(self, num_target_images: int) -> float:
        """Eq. 2 of the features of ``source_geometry_sample``'s fixed source images (test transform);
        the sample is drawn at the first evaluation and kept."""
        if self._source_sample is None:
            self._source_sample = source_geometry_sample(self.train_set.train, self.cfg.eval.geometry_source_images,
                                                         num_target_images)
        feats = extract_features(self.model, self._source_sample, self.cfg, self.device, desc="source sample",
                                 workers=0)
        return uniformity(feats)

    def _train_epoch(self, epoch: int) -> bool:
        """One epoch of steps; logs its ``epoch`` record. Returns True when ``max_steps`` is reached."""
        cfg = self.cfg
        self._seed_epoch(epoch)
        self.net.train()
        lr = self.optimizer.param_groups[0]["lr"]
        names = self.train_set.domain_names
        slots = np.zeros(len(names), dtype=np.int64)
        sums: Dict[str, float] = {}
        bar = tqdm(self.loader, total=len(self.loader), desc=f"epoch {epoch}/{cfg.train.epochs}",
                   disable=not self.progress, dynamic_ncols=True, leave=False)
        t_start = t_last = time.perf_counter()
        it = 0
        for it, batch in enumerate(bar, 1):
            self.lock.check()  # stop if another process took this folder over while we stalled
            values, dids = self.train_step(batch, epoch)
            slots += np.bincount(dids.numpy(), minlength=len(names))[:len(names)]
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            now = time.perf_counter()
            if self.step % max(cfg.train.log_every, 1) == 0:
                self._log({"event": "step", "epoch": epoch, "iter": it, "step": self.step, "lr": lr,
                           "time_s": round(now - t_last, 4), **{k: round(v, 6) for k, v in values.items()}})
            t_last = now
            if self.progress:
                mix = " ".join(f"{100 * v:.0f}%" for v in domain_share(slots, names).values())
                bar.set_postfix({**{k: f"{v:.3f}" for k, v in values.items()},
                                 **({"mix": mix} if len(names) > 1 else {})})
            if cfg.train.max_steps and self.step >= cfg.train.max_steps:
                break
        bar.close()
        self._log({"event": "epoch", "epoch": epoch, "step": self.step, "iters": it, "lr": lr,
                   "time_s": round(time.perf_counter() - t_start, 3),
                   "domain_share": domain_share(slots, names),
                   **{f"mean_{k}": round(v / max(it, 1), 6) for k, v in sums.items()}})
        return bool(cfg.train.max_steps and self.step >= cfg.train.max_steps)

    def fit(self) -> Dict:
        """Train from ``start_epoch`` to ``train.epochs``; write ``results.json``; release the lock."""
        try:
            result = self._fit()
        finally:
            if self.tensorboard is not None:
                self.tensorboard.close()
            self.lock.release()
        if self.dist.enabled:
            # Every rank finished: drop the DDP wrapper, then leave the group while Python is whole.
            self.net = self.step_fn.net = self.model
            leave_process_group(self.dist)
        return result

    def _fit(self) -> Dict:
        cfg = self.cfg
        epochs, eval_every = cfg.train.epochs, cfg.train.eval_every
        if self.pending_eval is not None and cfg.data.targets:
            # The last run stopped between saving an epoch and finishing its evaluation.
            if self.dist.is_main:
                self.evaluate(self.pending_eval)
                save_checkpoint(self.last_path, self._checkpoint_payload(self.pending_eval, evaluated=True))
            barrier(self.dist)
        for epoch in range(self.start_epoch, epochs + 1):
            stop = self._train_epoch(epoch)
            self.scheduler.step()
            last = epoch == epochs or stop
            selected = cfg.eval.select == "best_of" and epoch in cfg.eval.select_epochs
            evaluate = bool(cfg.data.targets) and ((eval_every and epoch % eval_every == 0) or last or selected)
            if self.dist.is_main:
                # Saved before evaluating: an evaluation that fails (or is interrupted) loses no training.
                save_checkpoint(self.last_path, self._checkpoint_payload(epoch, evaluated=not evaluate))
                if evaluate:
                    self.evaluate(epoch)
                    save_checkpoint(self.last_path, self._checkpoint_payload(epoch, evaluated=True))
            barrier(self.dist)
            if stop:
                break
        final = {"finished": True, "epochs": epochs, "steps": self.step,
                 **select_metrics(cfg, self.last_metrics, self.selection_evals),
                 "best_mean_mAP": self.best_map if self.best_map >= 0 else None,
                 "world_size": self.dist.world_size,
                 "checkpoints": {"last": self.last_path,
                                 "best": self.best_path if os.path.exists(self.best_path) else None}}
        if self.dist.is_main:
            atomic_write_json(os.path.join(self.run_dir, "results.json"), final)
        return final


def train_run_folder(run_dir: str, cfg_dict: Optional[Dict], record: Dict, progress: bool = False,
                     echo: Callable[[str], None] = print) -> Dict:
    """Train (``cfg_dict``, a resolved config as a dict) or resume (None) the run in ``run_dir``, with the
    sweep's ``record`` in its ``SWEEP_RUN_FILE``: the body of a ``bau sweep`` run, in any launcher."""
    if cfg_dict is None:
        trainer = Trainer(resume_config(run_dir), run_dir, resume=True, progress=progress, echo=echo)
    else:
        # A run killed before its first checkpoint is started again; anything more is never written over.
        trainer = Trainer(config_from_dict(cfg_dict).validate(), run_dir, progress=progress, echo=echo,
                          force=nothing_trained(run_dir))
    atomic_write_json(os.path.join(run_dir, SWEEP_RUN_FILE), record)
    return trainer.fit()


def source_geometry_sample(train: List[tuple], size: int, num_target_images: int) -> List[tuple]:
    """The fixed sample of source training images whose uniformity every evaluation logs.

    ``size`` images (0: 4 % of ``num_target_images``, at least 16: a small part of an evaluation's
    cost), at most all of them, drawn without replacement with a fixed seed (0) whatever the run's
    seed, so every run of a sweep measures the same images; in the training list's order."""
    n = size or max(16, round(0.04 * num_target_images))
    n = min(n, len(train))
    chosen = np.sort(np.random.default_rng(0).choice(len(train), size=n, replace=False))
    return [train[i] for i in chosen]


def build_step(cfg: Config, train_set: MultiSourceTrainSet, device: torch.device, seed: int,
               step_class: Type[TrainStep] = TrainStep,
               wrap: Optional[Callable[[torch.nn.Module], Tuple[torch.nn.Module, torch.nn.Module]]] = None,
               **step_kwargs) -> TrainStep:
    """A ``TrainStep`` outside a training run (benchmarks, the GPU check, tests): the trainer's pieces for
    ``cfg`` on ``device``, built by its own builders and seeded with ``seed``.

    The model (train mode) comes from ``Trainer.build_model`` (initialised on the CPU, so a seed
    gives the same weights on every device); ``wrap(model) -> (model, net)``, if given, converts it
    before the optimiser is built (e.g. synchronised BatchNorm and DDP: ``net`` is what the step
    calls). The memory bank is initialised with random unit vectors (the trainer starts from class
    means; any unit vectors do for timing). ``train_set`` needs only ``num_classes`` and
    ``class_domains``. Returns ``step_class(cfg, model, objective, optimizer, memory, device, ...)``.
    """
    torch.manual_seed(seed)
    model = Trainer.build_model(cfg, train_set.num_classes, device).train()
    net = model
    if wrap is not None:
        model, net = wrap(model)
        step_kwargs["net"] = net
    memory = Trainer.build_memory(cfg, train_set, model.feat_dim, device)
    if memory is not None:
        g = torch.Generator().manual_seed(seed)
        memory.initialise(torch.randn(train_set.num_classes, model.feat_dim, generator=g),
                          torch.arange(train_set.num_classes))
    optimizer, _ = Trainer.build_optimizer(cfg, model)
    return step_class(cfg, model, BAUObjective(cfg.loss, memory), optimizer, memory, device, **step_kwargs)


def select_metrics(cfg: Config, last: Dict, selection_evals: Dict[int, Dict]) -> Dict:
    """``results.json``'s ``metrics`` and how they were chosen (``eval.select``).

    ``last``: the last evaluation, ``selection: {"rule": "last"}``. ``best_of``: the evaluation with
    the best mean target mAP among those after ``eval.select_epochs`` (the earliest on a tie), with
    ``selection: {"rule", "epochs", "epoch": the one chosen, "on": "target (test) set"}``; the last
    evaluation when none of those epochs was evaluated (a run stopped early), ``epoch`` None.
    """
    if cfg.eval.select != "best_of":
        return {"metrics": last, "selection": {"rule": "last"}}
    rule = {"rule": "best_of", "epochs": list(cfg.eval.select_epochs), "on": "target (test) set"}
    scored = [(float(np.mean([m["mAP"] for m in ms.values()])), -e, e) for e, ms in selection_evals.items() if ms]
    if not scored:
        return {"metrics": last, "selection": {**rule, "epoch": None}}
    epoch = max(scored)[2]
    return {"metrics": selection_evals[epoch], "selection": {**rule, "epoch": epoch}}


def domain_share(slots: np.ndarray, names: List[str]) -> Dict[str, float]:
    """``{source name: fraction of the batch slots it filled}`` from per-domain slot counts."""
    total = int(slots.sum())
    return {n: round(float(c) / total, 4) if total else 0.0 for n, c in zip(names, slots)}
