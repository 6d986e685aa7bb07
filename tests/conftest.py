"""Shared fixtures: one tiny synthetic multi-domain dataset per test session."""
import os

import pytest

import torch

# Tiny tensors: one intra-op thread is fastest, and OpenMP spin-waiting on an oversubscribed
# 2-core machine (other processes, loader workers) can make each op 30x slower.
torch.set_num_threads(1)
# No test downloads ImageNet weights (bau.models.pretrained); the download tests unset this.
os.environ.setdefault("BAU_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """Three synthetic domains x 8 ids in the Market layout (generated once, ~1 s)."""
    from bau.data.synthetic import generate

    root = tmp_path_factory.mktemp("synth")
    generate(str(root), num_domains=3, ids_per_domain=8, seed=0, workers=1)
    return str(root)


def tiny_overrides(root: str, **extra) -> list:
    """A CPU-second-sized BAU config on ``tiny_synth``: MobileNetV2 from scratch at 32x16."""
    base = {
        "data.root": root, "data.sources": "folder:synth_a,folder:synth_b", "data.targets": "folder:synth_c",
        "data.height": 32, "data.width": 16, "data.num_ids": 4, "data.num_instances": 2, "data.workers": 0,
        "model.backbone": "mobilenetv2", "model.pretrained": "false", "train.epochs": 2,
        "train.iters_per_epoch": 2, "train.eval_every": 1, "eval.batch_size": 64, "optim.warmup_epochs": 1,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]
