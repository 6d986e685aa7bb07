"""The single source of every hyper-parameter.

``Config`` is a tree of dataclasses whose defaults are the paper's settings (Section 4.2 and
appendix A: ResNet-50, 256x128, P=64 x K=4, Adam lr 3.5e-4, wd 5e-4, warm-up 10 epochs, x0.1 at
30 and 50, 60 epochs, lambda 1.5, k 10, mu 0.1, p 0.5). A YAML file overrides any subset, then
``section.key=value`` strings from the command line override that. A run folder stores the
resolved config (``config.yaml``) so a run can always be reproduced.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, List, Optional, get_args, get_origin, get_type_hints

import yaml

from bau.core.atomic import atomic_write_text
from bau.core.errors import BauError

# The choices of the config's named options. The config declares them without importing the modules that
# implement them (those import these and check themselves against them: tests/test_config.py), so the
# config layer depends on no stage.
SAMPLERS = ("identity", "image")  # data.sampler: bau.data.samplers
RANDAUGMENT_OP_SETS = ("paper", "released")  # data.randaugment_ops: bau.data.transforms
BACKBONES = ("mobilenetv2", "resnet50", "vit_b16")  # model.backbone: bau.models.backbones (sorted)
BN_VIEWS = ("joint", "split")  # model.bn_views: bau.engine.step with bau.models.batchnorm
LAST_STRIDES = (1, 2)  # model.last_stride (or None, the backbone's usual): bau.models.backbones


@dataclass
class DataConfig:
    root: str = "data"
    # Protocol-2, MS+CS+C3 -> M: the paper's headline leave-one-out setting.
    sources: List[str] = field(default_factory=lambda: ["msmt17", "cuhksysu", "cuhk03"])
    targets: List[str] = field(default_factory=lambda: ["market1501"])
    height: int = 256
    width: int = 128
    num_instances: int = 4  # K
    num_ids: int = 64  # P; batch = P x K original images (+ as many augmented ones)
    aug_prob: float = 0.5  # p: probability of each of RandAugment, ColorJitter, RandomErasing
    randaugment: bool = True
    color_jitter: bool = True
    random_erasing: bool = True
    # RandAugment op set: "paper" (appendix A, without Invert/Posterize/Solarize/SolarizeAdd) or
    # "released" (the authors' code: all 16 ops, 2 at magnitude 10 of 30).
    randaugment_ops: str = "paper"
    # Batch composition: "image" (the released sampler, the default because the paper is silent: an
    # identity gives floor(n / K) groups of K per pass, so a source's share follows its image count)
    # or "identity" (every identity visited once per epoch: a source's share follows its identity count).
    sampler: str = "image"
    workers: int = 4
    # Decoded training images kept in memory (MB, 0 = off): decoded once before the first epoch and
    # shared by the loader workers, instead of decoding every image again at every visit.
    image_cache_mb: int = 2048
    split_seed: int = 0  # seed of the 10 query/gallery splits of the small datasets
    num_splits: int = 10


@dataclass
class ModelConfig:
    backbone: str = "resnet50"
    pretrained: bool = True
    pretrained_path: Optional[str] = None
    gem_p: float = 3.0
    # BatchNorm statistics over the two views (bau.models.batchnorm): "joint" (one set for both) or
    # "split" (one per view, running statistics from the originals: the released 2-GPU DataParallel run).
    bn_views: str = "split"
    # Stride of the backbone's last downsampling block (1 doubles the final map in each direction,
    # the usual re-ID change since BoT). None = the backbone's usual: 1 for resnet50 (as released),
    # 2 for mobilenetv2 (torchvision's); vit_b16 has no such block and takes none.
    last_stride: Optional[int] = None


@dataclass
class LossConfig:
    ce: bool = True
    triplet: bool = True
    # The augmented view. False: one view, which gets the augmentations with probability p (the
    # "standard training pipeline" of Sec. 3.1 / the baseline of Table 5 and Figures 1, 4a, 5a).
    two_view: bool = True
    ce_aug: bool = False  # cross-entropy on the augmented view (Table 5, row 2)
    align: bool = True
    uniform: bool = True
    domain: bool = True
    weighting: bool = True  # Eq. 5 (True) or Eq. 3 (False)
    domain_specific: bool = True  # Eq. 8 nearest prototypes within the domain, or global (Table 6)
    lam: float = 1.5  # lambda of Eq. 9
    k: int = 10  # k of the k-reciprocal neighbours, Eq. 4
    momentum: float = 0.1  # mu of Eq. 7
    n_neighbors: Optional[int] = None  # N of Eq. 8; None = the mini-batch size
    label_smoothing: float = 0.1
    margin: float = 0.3


@dataclass
class OptimConfig:
    lr: float = 3.5e-4
    weight_decay: float = 5e-4
    warmup_epochs: int = 10
    warmup_factor: float = 0.01
    milestones: List[int] = field(default_factory=lambda: [30, 50])
    gamma: float = 0.1


@dataclass
class TrainConfig:
    epochs: int = 60
    iters_per_epoch: int = 0  # 0 = enough P x K batches to visit every identity once
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # mixed precision, used on CUDA only
    eval_every: int = 10  # epochs; 0 = only after the last epoch
    log_every: int = 1  # steps between JSON-lines log records
    max_steps: int = 0  # stop after this many steps in total (0 = no limit); benchmarks and tests
    threads: int = 0  # torch intra-op CPU threads (0 = torch's default); leave cores to the loader workers
    # channels_last (NHWC) model and batches: the same results, 1.5-2x faster convolutions on CPUs and
    # tensor cores (benchmarks/train_step.py prints both).
    channels_last: bool = True
    # Also write log.jsonl's records as TensorBoard scalars into the run folder (bau.engine.tensorboard_log);
    # needs the optional extra: pip install 'bau[tensorboard]'.
    tensorboard: bool = False


@dataclass
class EvalConfig:
    batch_size: int = 128
    rerank: bool = False
    max_rank: int = 50
    # At every evaluation also log the geometry of the features (Eq. 1 and 2 of the target's, Eq. 2
    # of a fixed sample of the source training images: Fig. 1b/1c over training) in log.jsonl.
    geometry: bool = True
    # Source images in that fixed sample; 0 = 4 % of the first target's evaluated images (at least
    # 16); with the target geometry this cost a median 6.7 % of an evaluation in the Figure-1 sweep.
    geometry_source_images: int = 0
    # What results.json reports: "last" (the last epoch's evaluation, the default) or "best_of" (the
    # best mean target mAP among the evaluations after ``select_epochs``: the released code's rule,
    # a choice made on the test set, so never the default).
    select: str = "last"
    select_epochs: List[int] = field(default_factory=lambda: [50, 55, 60])


SELECTION_RULES = ("last", "best_of")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> "Config":
        """Check every option's range; the first violation is one ``BauError`` naming the option."""
        d, m, lo, o, t, e = self.data, self.model, self.loss, self.optim, self.train, self.eval
        checks = [
            # data
            (0.0 <= d.aug_prob <= 1.0, "data.aug_prob", "a probability in [0, 1]"),
            (d.height >= 16 and d.width >= 16, "data.height/data.width", "image sizes of at least 16 pixels"),
            (d.num_instances >= 2, "data.num_instances", "at least 2 instances per identity (triplets need positives)"),
            (d.num_ids >= 2, "data.num_ids", "at least 2 identities per batch"),
            (len(d.sources) >= 1, "data.sources", "at least one source dataset"),
            (d.workers >= 0, "data.workers", "0 or more loader processes"),
            (d.image_cache_mb >= 0, "data.image_cache_mb", "0 (off) or a memory budget in MB"),
            (d.split_seed >= 0, "data.split_seed", "a seed >= 0"),
            (d.num_splits >= 1, "data.num_splits", "at least 1 split"),
            (d.sampler in SAMPLERS, "data.sampler", f"'identity' or 'image', got {d.sampler!r}"),
            (d.randaugment_ops in RANDAUGMENT_OP_SETS, "data.randaugment_ops",
             f"'paper' or 'released', got {d.randaugment_ops!r}"),
            # model
            (m.backbone.lower() in BACKBONES, "model.backbone", f"one of {', '.join(BACKBONES)}"),
            (m.gem_p >= 1.0, "model.gem_p", "a GeM power >= 1 (1 = average pooling)"),
            (m.bn_views in BN_VIEWS, "model.bn_views", "joint or split"),
            (m.last_stride is None or m.last_stride in LAST_STRIDES, "model.last_stride",
             f"1, 2 or none (the backbone's usual), got {m.last_stride!r}"),
            # loss
            (lo.lam >= 0.0, "loss.lam", "a weight lambda >= 0"),
            (lo.k >= 1, "loss.k", "k >= 1"),
            (0.0 <= lo.momentum <= 1.0, "loss.momentum", "a momentum in [0, 1]"),
            (lo.n_neighbors is None or lo.n_neighbors >= 1, "loss.n_neighbors", "none (the batch size) or >= 1"),
            (0.0 <= lo.label_smoothing < 1.0, "loss.label_smoothing", "a smoothing epsilon in [0, 1)"),
            (lo.margin >= 0.0, "loss.margin", "a triplet margin >= 0"),
            # optim
            (o.lr > 0, "optim.lr", "a positive learning rate"),
            (o.weight_decay >= 0, "optim.weight_decay", "a weight decay >= 0"),
            (o.warmup_epochs >= 0, "optim.warmup_epochs", "0 or more warm-up epochs"),
            (0.0 < o.warmup_factor <= 1.0, "optim.warmup_factor", "a starting factor in (0, 1]"),
            (all(x >= 1 for x in o.milestones) and list(o.milestones) == sorted(set(o.milestones)),
             "optim.milestones", "increasing epochs >= 1, e.g. [30, 50]"),
            (0.0 < o.gamma <= 1.0, "optim.gamma", "a decay factor in (0, 1]"),
            # train
            (t.epochs >= 1, "train.epochs", "at least 1 epoch"),
            (t.iters_per_epoch >= 0, "train.iters_per_epoch", "0 (one pass over the data) or a number of batches"),
            (t.seed >= 0, "train.seed", "a seed >= 0"),
            (t.eval_every >= 0, "train.eval_every", "0 (only after the last epoch) or a number of epochs"),
            (t.log_every >= 1, "train.log_every", "at least 1 step between log records"),
            (t.max_steps >= 0, "train.max_steps", "0 (no limit) or a number of steps"),
            (t.threads >= 0, "train.threads", "0 (torch's default) or a number of threads"),
            # eval
            (e.batch_size >= 1, "eval.batch_size", "a positive batch size"),
            (e.max_rank >= 1, "eval.max_rank", "a CMC length >= 1"),
            (e.geometry_source_images >= 0, "eval.geometry_source_images", "0 (automatic) or a number of images"),
            (e.select in SELECTION_RULES, "eval.select", f"'last' or 'best_of', got {e.select!r}"),
            (e.select != "best_of" or (len(e.select_epochs) >= 1 and all(1 <= x <= t.epochs for x in e.select_epochs)),
             "eval.select_epochs", f"epochs between 1 and train.epochs={t.epochs} for eval.select=best_of, "
             f"got {e.select_epochs}"),
        ]
        checks = [(ok, n, x) for ok, n, x in _non_finite(self)] + checks
        for ok, name, expected in checks:
            if not ok:
                raise BauError(f"config option {name}: expected {expected}")
        if not lo.two_view and (lo.align or lo.uniform or lo.ce_aug):
            raise BauError("config option loss.two_view=false: align, uniform and ce_aug need the augmented view; "
                           "switch them off too")
        return self


def _non_finite(cfg: "Config") -> List[tuple]:
    """``(False, option, expected)`` for every number of ``cfg`` that is NaN or infinite (an ``inf``
    learning rate passes ``lr > 0``; a NaN passes no range check but deserves its own words)."""
    found = []
    for section in dataclasses.fields(cfg):
        for f in dataclasses.fields(getattr(cfg, section.name)):
            value = getattr(getattr(cfg, section.name), f.name)
            values = value if isinstance(value, list) else [value]
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                found.append((False, f"{section.name}.{f.name}", f"a finite number, got {value!r}"))
    return found


def _convert(value: Any, typ: Any, name: str) -> Any:
    """Coerce a YAML value or command-line string to the dataclass field's type."""
    origin = get_origin(typ)
    if origin is not None and type(None) in get_args(typ):  # Optional[X]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        inner = [a for a in get_args(typ) if a is not type(None)][0]
        return _convert(value, inner, name)
    if origin in (list, List):
        (inner,) = get_args(typ)
        if isinstance(value, str):
            value = [v for v in value.strip("[]").split(",") if v.strip()] if value.strip("[] ") else []
        if not isinstance(value, (list, tuple)):
            raise BauError(f"config option {name}: expected a list, got {value!r}")
        return [_convert(v.strip() if isinstance(v, str) else v, inner, name) for v in value]
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
                return False
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise ValueError
        if typ is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if typ is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if typ is str:
            if not isinstance(value, (str, int, float)):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        pass
    else:
        raise BauError(f"config option {name}: unsupported type {typ}")
    raise BauError(f"config option {name}: expected {getattr(typ, '__name__', typ)}, got {value!r}")


def _apply(obj: Any, updates: dict, prefix: str, source: str) -> None:
    hints = get_type_hints(type(obj))
    for key, value in updates.items():
        name = f"{prefix}{key}"
        if key not in hints:
            known = ", ".join(f"{prefix}{k}" for k in hints)
            raise BauError(f"{source}: unknown config option {name!r}; expected one of: {known}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise BauError(f"{source}: config section {name!r} must be a mapping, got {value!r}")
            _apply(current, value, f"{name}.", source)
        else:
            setattr(obj, key, _convert(value, hints[key], name))


def parse_overrides(overrides: List[str]) -> dict:
    """``["loss.k=5", "data.sources=a,b"]`` -> nested dict (values still strings)."""
    nested: dict = {}
    for item in overrides:
        if "=" not in item:
            raise BauError(f"override {item!r}: expected section.key=value, e.g. loss.lam=1.5")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise BauError(f"override {item!r}: {part!r} is both a value and a section")
        node[parts[-1]] = value
    return nested


def load_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise BauError(f"config file {path}: not found (expected a YAML file)")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except UnicodeDecodeError as e:
        raise BauError(f"config file {path}: not UTF-8 text (byte {e.start}: {e.object[e.start:e.start + 1]!r}); "
                       f"save it as UTF-8") from None
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        raise BauError(f"config file {path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise BauError(f"config file {path}: expected a mapping of sections (data:, model:, loss:, ...)")
    return data


def load_config(path: Optional[str] = None, overrides: Optional[List[str]] = None,
                base: Optional[dict] = None) -> Config:
    """Defaults <- ``base`` dict <- YAML ``path`` <- ``overrides`` (``section.key=value``).

    A YAML file may name another one with ``_base_: other.yaml`` (relative to itself), so the
    protocol and ablation configs stay small.
    """
    cfg = Config()
    if base:
        _apply(cfg, base, "", "config")
    if path:
        for layer_path, layer in _yaml_chain(path):
            _apply(cfg, layer, "", f"config file {layer_path}")
    if overrides:
        apply_overrides(cfg, overrides)
    return cfg.validate()


def apply_overrides(cfg: Config, overrides: List[str]) -> Config:
    """Apply ``section.key=value`` strings to ``cfg`` in place (not validated; call ``validate``)."""
    _apply(cfg, parse_overrides(overrides), "", "command line")
    return cfg


def _yaml_chain(path: str, depth: int = 0) -> List[tuple]:
    if depth > 8:
        raise BauError(f"config file {path}: _base_ chain is deeper than 8 files (a cycle?)")
    data = load_yaml(path)
    base = data.pop("_base_", None)
    chain = []
    if base:
        chain = _yaml_chain(os.path.join(os.path.dirname(path), base), depth + 1)
    return chain + [(path, data)]


def config_from_dict(d: dict) -> Config:
    cfg = Config()
    _apply(cfg, d, "", "stored config")
    return cfg


def save_config(cfg: Config, path: str) -> None:
    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
