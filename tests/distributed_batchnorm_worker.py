"""One rank of ``test_distributed_batchnorm_gradients_equal_one_process`` (run by torchrun).

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/distributed_batchnorm_worker.py VIEWS OUT

Each rank forwards its slice of the originals and of the augmented views through a small
BatchNorm network (cross-rank BatchNorm, DDP), the loss of the gathered global batch is
back-propagated, and rank 0 saves the parameter gradients to OUT.
"""
import os
import sys

import torch


def bn_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.Conv2d(4, 4, 3, bias=False), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                               torch.nn.Linear(8, 5, bias=False), torch.nn.BatchNorm1d(5))


def two_views():
    """8 originals and 8 augmented views with other statistics."""
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 3, 6, 5, generator=g), 3 * torch.randn(8, 3, 6, 5, generator=g) + 1


def view_loss(out_o: torch.Tensor, out_a: torch.Tensor) -> torch.Tensor:
    """A loss that couples the two views and the samples of a batch, like BAU's terms."""
    return (out_o * out_a.flip(0)).sum() + out_a.pow(3).sum() + out_o[:, 0].exp().sum()


def main(views: int, out: str) -> None:
    import torch.distributed as dist

    from bau.engine.distributed import DistContext, convert_batchnorm, gather_with_grad, leave_process_group
    from bau.models.batchnorm import views_per_batchnorm

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    ctx = DistContext(rank=rank, world_size=dist.get_world_size())
    model = convert_batchnorm(bn_net(), torch.device("cpu"))
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    orig, aug = two_views()
    mine = slice(4 * rank, 4 * rank + 4)  # each rank: its slice of the originals, then of the augmented
    with views_per_batchnorm(model, views):
        y = ddp(torch.cat([orig[mine], aug[mine]]))
    view_loss(gather_with_grad(y[:4], ctx), gather_with_grad(y[4:], ctx)).backward()
    if rank == 0:
        torch.save({n: p.grad for n, p in model.named_parameters()}, out)
    del ddp, y  # the reducer and the graph hold the group; the trainer drops them the same way
    leave_process_group(ctx)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main(int(sys.argv[1]), sys.argv[2])
