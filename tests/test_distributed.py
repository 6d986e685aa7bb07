"""DDP on CPU/gloo: a 2-process torchrun run and a 1-process run with the same global batch and seed
give the same loss values per step, and the same weights."""
import json
import os
import subprocess
import sys

import pytest
import torch

from bau.runs.checkpoint import load_checkpoint
from tests.helpers import tiny_overrides

pytestmark = pytest.mark.distributed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _losses(run_dir):
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        return [json.loads(line) for line in f if '"event": "step"' in line]


def _torchrun(nproc, run_dir, overrides):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "bau", "train", "--quiet", "--out", run_dir, *overrides]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


# The k-reciprocal weights of Eq. 4 are discrete: a last-bit difference between the two runs can
# swap two nearly tied neighbours and move L_align by a step, so the multi-step comparison runs
# BAU with the unweighted alignment (Eq. 3) and the weighted one is compared on its first step,
# where both runs see the same weights up to summation order. Adam's first steps turn last-bit
# noise in gradients that are zero in exact arithmetic into lr-sized moves; with per-view
# BatchNorm there are more of those, so the multi-step run uses the joint BatchNorm and the
# per-view one is checked on exact gradients below. The image sampler repeats a rare identity's
# images within a batch; two identical features make the triplet loss's sqrt(d^2) differentiate
# last-bit noise, so the multi-step runs use the identity sampler; and channels_last convolutions
# pick other summation orders per batch size, so they run in the default memory format (the
# channels_last step is compared with the plain one in tests/test_step.py).
@pytest.mark.parametrize("extra", [{"loss.weighting": "false", "model.bn_views": "joint"}, {"train.iters_per_epoch": 1},
                                   {"loss.two_view": "false", "loss.align": "false", "loss.uniform": "false"}],
                         ids=["bau", "bau-weighted", "single-view"])
def test_two_ranks_match_one_process(tiny_synth, tmp_path, extra):
    overrides = tiny_overrides(tiny_synth, **{"train.epochs": 1, "train.iters_per_epoch": 3, "data.targets": "",
                                              "train.threads": 1, "data.sampler": "identity",
                                              "train.channels_last": "false", **extra})
    steps = int(dict(o.split("=", 1) for o in overrides)["train.iters_per_epoch"])
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    _torchrun(1, one, overrides)
    _torchrun(2, two, overrides)
    a, b = _losses(one), _losses(two)
    assert len(a) == len(b) == steps
    terms = [k for k in a[0] if k not in ("event", "epoch", "iter", "step", "lr", "time_s")]
    assert "total" in terms
    for ra, rb in zip(a, b):
        # Step 1 differs only by float summation order; after that Adam, which normalises each
        # gradient entry, turns those last-bit differences in near-zero gradients into small
        # weight differences, so later steps get a looser (still float-level) tolerance.
        tol = 1e-4 if ra["step"] == 1 else 2e-3
        # The total sums terms of opposite signs (L_uniform < 0) into a small number: its float error is
        # that of the terms, so its tolerance scales with their magnitudes, not with the small sum.
        scale = sum(abs(ra[k]) for k in terms if k != "total")
        for k in terms:
            atol = tol * max(1.0, scale) if k == "total" else tol
            assert rb[k] == pytest.approx(ra[k], rel=tol, abs=atol), (ra["step"], k, ra[k], rb[k])
    wa, wb = load_checkpoint(os.path.join(one, "last.pt")), load_checkpoint(os.path.join(two, "last.pt"))
    assert json.load(open(os.path.join(two, "results.json")))["world_size"] == 2
    for key, value in wa["model"].items():
        if value.is_floating_point():
            assert torch.allclose(value, wb["model"][key], rtol=1e-2, atol=1e-3), key
    if "memory" in wa:
        assert torch.allclose(wa["memory"]["prototypes"], wb["memory"]["prototypes"], atol=2e-3)


@pytest.mark.parametrize("views", [1, 2], ids=["joint", "split"])
def test_distributed_batchnorm_gradients_equal_one_process(views, tmp_path):
    """Two gloo ranks with cross-rank BatchNorm (per view or joint) give one process's gradients."""
    from bau.models.batchnorm import views_per_batchnorm
    from tests.distributed_batchnorm_worker import bn_net, two_views, view_loss

    path = str(tmp_path / "grads.pt")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           os.path.join(REPO, "tests", "distributed_batchnorm_worker.py"), str(views), path]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = bn_net()
    orig, aug = two_views()
    with views_per_batchnorm(model, views):
        out = model(torch.cat([orig, aug]))
    view_loss(out[:8], out[8:]).backward()
    distributed = torch.load(path, weights_only=True)
    # (a BatchNorm shift followed by another BatchNorm has a zero gradient: only noise to compare there)
    scale = max(float(p.grad.abs().max()) for p in model.parameters())
    for name, p in model.named_parameters():
        assert torch.allclose(distributed[name], p.grad, rtol=1e-4, atol=1e-6 * scale), name
