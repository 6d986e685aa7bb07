"""Multi-GPU / multi-node training on torch.distributed (DDP), launched by ``torchrun``.

BAU's terms are batch-level (k-reciprocal weights, uniformity over all pairs, nearest prototypes),
so a per-rank loss would silently change the method. Each rank therefore gathers the features of the
whole global batch *with gradients* (``gather_with_grad``) and computes the single-process loss of
the global P x K batch. Why the gradients come out right: the gather's backward sums every rank's
gradient (so each rank holds world_size x its share of dL/dtheta) and DDP averages over ranks, which
leaves exactly dL/dtheta of the single process. BatchNorm statistics are synchronised too
(``SyncBatchNorm`` on GPUs; ``CrossRankBatchNorm`` below on CPU/gloo, where SyncBatchNorm is not
available), so the forward pass sees global-batch statistics as well.
"""
from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import List

import torch
import torch.distributed as dist
import torch.nn as nn

from bau.core.errors import BauError


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: torch.device) -> DistContext:
    """Join the process group torchrun set up (env:// rendezvous); a no-op for a single process."""
    if not launched_by_torchrun():
        return DistContext()
    world_size = int(os.environ["WORLD_SIZE"])
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=60))
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank)


def rank_device(device: torch.device, ctx: DistContext) -> torch.device:
    """One GPU per process: rank-local ``cuda:LOCAL_RANK``; CPU stays CPU."""
    if ctx.enabled and device.type == "cuda":
        if ctx.local_rank >= torch.cuda.device_count():
            raise BauError(f"LOCAL_RANK {ctx.local_rank}: only {torch.cuda.device_count()} GPUs on this node "
                           f"(use --nproc_per_node <= the GPU count)")
        return torch.device("cuda", ctx.local_rank)
    return device


def _all_gather_rows(t: torch.Tensor) -> torch.Tensor:
    """[b, ...] on each rank -> [world_size * b, ...] in rank order (no gradient)."""
    parts: List[torch.Tensor] = [torch.empty_like(t, memory_format=torch.contiguous_format)
                                 for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, dim=0)


class _GatherRows(torch.autograd.Function):
    """[b, ...] on each rank -> [world_size * b, ...] in rank order on every rank.

    Backward: every rank's loss depends on every rank's rows, so the gradient of a rank's rows is
    the sum over ranks of the gradient of its block (an all-reduce, then this rank's block).
    """

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.rows = dist.get_rank(), t.shape[0]
        return _all_gather_rows(t)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


class _SumOverRanks(torch.autograd.Function):
    """The element-wise sum of ``t`` over ranks, on every rank; its backward is the same sum."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        t = t.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _SumOverRanks.apply(grad)


def gather_with_grad(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Concatenate ``t`` [b, ...] from every rank in rank order -> [world_size * b, ...], differentiable."""
    if not ctx.enabled:
        return t
    return _GatherRows.apply(t)


def sum_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """Differentiable all-reduce (sum) of ``t`` over the ranks of the default group."""
    return _SumOverRanks.apply(t)


def gather_no_grad(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    if not ctx.enabled:
        return t
    return _all_gather_rows(t)


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def broadcast_(t: torch.Tensor, ctx: DistContext, src: int = 0) -> None:
    if ctx.enabled:
        dist.broadcast(t, src)


def leave_process_group(ctx: DistContext) -> None:
    """Leave the process group at the end of a run that finished on every rank.

    The caller first drops its DDP wrapper; the garbage collection here then frees the reducer
    and the autograd graphs that still hold the group's collectives, so that the group is torn
    down now. Left to interpreter exit, gloo's worker threads can outlive Python and abort the
    process (``terminate called without an active exception``, SIGABRT) after a run that
    succeeded. Call it only after success: a rank that failed mid-collective would leave the
    others waiting here (they time out instead).
    """
    if ctx.enabled and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


class CrossRankBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are the global batch's, for CPU/gloo runs.

    Keeps BatchNorm's parameter and buffer names, so checkpoints load into a plain model. The sums
    are all-reduced with the differentiable ``sum_over_ranks``.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {input.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        c = x.shape[1]
        shape = [1, c] + [1] * (x.dim() - 2)
        count = torch.tensor([float(x.numel() // c)], device=x.device, dtype=x.dtype)
        stats = sum_over_ranks(torch.cat([x.sum(dims), count]))
        n = stats[-1]
        mean = stats[:c] / n
        # Two passes (mean, then squared deviations) rather than E[x^2] - E[x]^2, whose cancellation
        # would make the distributed statistics drift from the single-process ones.
        var = sum_over_ranks(((x - mean.view(shape)) ** 2).sum(dims)) / n  # biased, as BatchNorm normalises with
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var.detach() * n / (n - 1).clamp_min(1)
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * unbiased)
        y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Synchronise every BatchNorm across ranks: SyncBatchNorm on GPUs, CrossRankBatchNorm on CPU."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in list(module.named_children()):
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
            new = CrossRankBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                     child.track_running_stats).to(device)
            new.load_state_dict(child.state_dict())
            if child.affine:  # keep the BNNeck's frozen bias frozen
                new.weight.requires_grad_(child.weight.requires_grad)
                new.bias.requires_grad_(child.bias.requires_grad)
            setattr(module, name, new)
        else:
            convert_batchnorm(child, device)
    return module
