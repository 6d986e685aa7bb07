"""Helpers the tests share (fixtures live in conftest.py; tests import helpers from here, never from conftest)."""


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
