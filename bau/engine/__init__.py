"""Training: the trainer, one optimisation step, distributed training, the start-up check and sweeps.

What it offers (re-exported here; each module's docstring says more):

- ``step``: one optimisation step, shared by the trainer, the benchmarks and the GPU check: ``NonFiniteLoss``,
  ``TrainStep``.
- ``distributed``: DDP with global-batch losses: process groups, gathers with gradients, cross-rank BatchNorm:
  ``CrossRankBatchNorm``, ``DistContext``, ``convert_batchnorm``, ``gather_no_grad``, ``gather_with_grad``,
  ``init_distributed``.
- ``preflight``: the start-up check of every dataset and image: ``check_run_inputs``.
- ``optim``: Adam and the warm-up + step learning-rate schedule: ``build_optimizer``, ``lr_factor``.
- ``trainer``: the training loop from small overridable builders; checkpoints and exact resume: ``Trainer``,
  ``TrainingDiverged``.
- ``sweep``: grids of runs (skips finished ones, resumes interrupted ones) and their summary: ``expand_grid``,
  ``load_sweep``, ``run_sweep``.
"""
from bau.engine.distributed import (
    CrossRankBatchNorm,
    DistContext,
    convert_batchnorm,
    gather_no_grad,
    gather_with_grad,
    init_distributed,
)
from bau.engine.optim import build_optimizer, lr_factor
from bau.engine.preflight import check_run_inputs
from bau.engine.step import NonFiniteLoss, TrainStep
from bau.engine.sweep import expand_grid, load_sweep, run_sweep
from bau.engine.trainer import Trainer, TrainingDiverged

__all__ = [
    "NonFiniteLoss", "TrainStep", "CrossRankBatchNorm", "DistContext", "convert_batchnorm", "gather_no_grad",
    "gather_with_grad", "init_distributed", "check_run_inputs", "Trainer", "TrainingDiverged", "lr_factor",
    "build_optimizer",
    "expand_grid", "load_sweep", "run_sweep",
]
