"""One rank of ``benchmarks/gpu_check.py``'s torchrun section (run by torchrun, one process).

    python -m torch.distributed.run --standalone --nproc_per_node=1 benchmarks/gpu_check_worker.py \\
        --device cuda --out worker.json [--tiny]

Joins the process group (NCCL on CUDA, gloo on the CPU; at world size 1 ``bau.engine.distributed.
init_distributed`` would skip it, so the worker joins it itself), then on one random paper-config
batch (``gpu_check.random_batch``):

1. the plain ``TrainStep``'s loss (the single-process reference);
2. the same seeded model as the trainer wraps it (``Trainer.build_net``: every BatchNorm converted
   by ``bau.engine.distributed.convert_batchnorm``, SyncBatchNorm on CUDA, CrossRankBatchNorm on the CPU,
   and DDP), and one
   ``TrainStep(net=ddp, dist=DistContext(...))`` on the same batch: its loss and time, then (not
   with ``--tiny``) a second step's time.

Writes ``{"backend", "world_size", "batchnorm_class", "sync_batchnorm", "unsynchronised_batchnorm",
"plain_loss", "ddp_loss", "first_step_s", "second_step_s", "second_loss"}`` to ``--out`` (rank 0)
and prints one line.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402


def main() -> None:
    from bau.engine.distributed import CrossRankBatchNorm, DistContext
    from bau.engine.trainer import Trainer, build_step
    from benchmarks.gpu_check import FULL, TINY, class_layout, paper_config, random_batch, release, synchronize

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    backend = "nccl" if cuda else "gloo"
    dist.init_process_group(backend=backend, **({"device_id": device} if cuda else {}))
    try:
        ctx = DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(),
                          local_rank=int(os.environ.get("LOCAL_RANK", "0")))
        sizes = TINY if args.tiny else FULL
        cfg, layout = paper_config(sizes), class_layout(sizes)
        batch = random_batch(cfg, layout, args.seed, pin=cuda)

        plain = build_step(cfg, layout, device, args.seed)
        plain_loss, _ = plain(batch)
        del plain
        release(device)

        step = build_step(cfg, layout, device, args.seed, wrap=lambda model: Trainer.build_net(cfg, model, device),
                          dist=ctx)
        times, losses = [], []
        for _ in range(1 if args.tiny else 2):  # the second step's time is the warm one
            start = time.perf_counter()
            values, _ = step(batch)
            synchronize(device)
            times.append(time.perf_counter() - start)
            losses.append(values)
        synced = (torch.nn.SyncBatchNorm, CrossRankBatchNorm)
        norms = [m for m in step.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        n_sync = sum(isinstance(m, synced) for m in norms)
        result = {"backend": dist.get_backend(), "world_size": ctx.world_size,
                  "batchnorm_class": type(next(m for m in norms if isinstance(m, synced))).__name__ if n_sync else None,
                  "sync_batchnorm": n_sync, "unsynchronised_batchnorm": len(norms) - n_sync,
                  "plain_loss": plain_loss, "ddp_loss": losses[0], "first_step_s": times[0],
                  "second_step_s": times[1] if len(times) > 1 else None,
                  "second_loss": losses[1] if len(losses) > 1 else None}
        if ctx.is_main:
            with open(args.out, "w") as f:
                json.dump(result, f, indent=2)
            print(f"torchrun step on {device}: backend {result['backend']}, {n_sync} x {result['batchnorm_class']}, "
                  f"loss {losses[0]['total']:.6f} (plain step {plain_loss['total']:.6f}), "
                  "step " + ", ".join(f"{t:.3f} s" for t in times))
        dist.barrier()
    finally:
        # The DDP step and its graphs hold the group: free them before tearing it down, not at exit.
        step = None
        gc.collect()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
