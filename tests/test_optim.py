"""The optimiser and the schedule (bau.engine.optim) against the released recipe and a brute-force reference."""
import pytest
import torch

from bau.core.config import load_config
from bau.engine.optim import build_optimizer, lr_factor

pytestmark = [pytest.mark.unit, pytest.mark.fidelity]


def _released_warmup_multistep(epoch, base_lr, milestones, gamma, warmup_factor, warmup_iters):
    """The released WarmupMultiStepLR (linear warm-up), written out term by term."""
    warmup = 1.0
    if epoch < warmup_iters:
        alpha = float(epoch) / warmup_iters
        warmup = warmup_factor * (1 - alpha) + alpha
    steps = len([m for m in milestones if m <= epoch])
    return base_lr * warmup * gamma ** steps


def test_lr_schedule_warmup_and_steps():
    cfg = load_config(None, [])
    assert lr_factor(0, cfg) == pytest.approx(0.01)
    assert lr_factor(5, cfg) == pytest.approx(0.01 * 0.5 + 0.5)
    assert lr_factor(9, cfg) == pytest.approx(0.01 * 0.1 + 0.9)
    assert lr_factor(10, cfg) == 1.0 and lr_factor(29, cfg) == 1.0
    assert lr_factor(30, cfg) == pytest.approx(0.1) and lr_factor(49, cfg) == pytest.approx(0.1)
    assert lr_factor(50, cfg) == pytest.approx(0.01) and lr_factor(59, cfg) == pytest.approx(0.01)


@pytest.mark.parametrize("overrides", [
    [],  # the main recipe: 60 epochs, x0.1 at 30 and 50, 10 warm-up epochs
    ["optim.milestones=40,70", "train.epochs=120"],  # appendix A's in-distribution schedule (Figure 1)
    ["optim.warmup_epochs=3", "optim.warmup_factor=0.1", "optim.gamma=0.5", "optim.milestones=2,5"],
])
def test_every_epochs_rate_matches_the_released_scheduler(overrides):
    cfg = load_config(None, overrides)
    model = torch.nn.Linear(3, 2)
    optimizer, scheduler = build_optimizer(cfg, model)
    o = cfg.optim
    for epoch in range(cfg.train.epochs):
        want = _released_warmup_multistep(epoch, o.lr, o.milestones, o.gamma, o.warmup_factor, o.warmup_epochs)
        assert optimizer.param_groups[0]["lr"] == pytest.approx(want, rel=1e-12), epoch
        optimizer.step()
        scheduler.step()


def test_adam_with_the_papers_values_on_the_trainable_parameters_only():
    cfg = load_config(None, ["optim.lr=0.002", "optim.weight_decay=0.003"])
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model[0].bias.requires_grad_(False)
    optimizer, _ = build_optimizer(cfg, model)
    assert type(optimizer) is torch.optim.Adam
    (group,) = optimizer.param_groups
    assert group["initial_lr"] == 0.002 and group["weight_decay"] == 0.003
    assert (group["betas"], group["eps"], group["amsgrad"]) == ((0.9, 0.999), 1e-8, False)
    assert [id(p) for p in group["params"]] == [id(p) for p in model.parameters() if p.requires_grad]


def test_no_warm_up():
    cfg = load_config(None, ["optim.warmup_epochs=0", "optim.milestones=1"])
    assert [lr_factor(e, cfg) for e in range(3)] == [1.0, pytest.approx(0.1), pytest.approx(0.1)]
