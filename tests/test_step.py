"""bau.engine.step.TrainStep: the step the trainer, the benchmarks and the GPU check share."""
import pytest
import torch

from bau.core.config import load_config
from bau.engine.step import NonFiniteLoss
from bau.engine.trainer import Trainer, build_step
from bau.method.objective import BAUObjective
from tests.helpers import tiny_overrides

pytestmark = pytest.mark.unit


def _step(root, **extra):
    cfg = load_config(None, tiny_overrides(root, **extra))
    train_set, loader = Trainer.build_data(cfg)
    loader.sampler.set_epoch(1)
    return build_step(cfg, train_set, torch.device("cpu"), seed=0), next(iter(loader))


def test_channels_last_gives_the_same_step(tiny_synth):
    plain, batch = _step(tiny_synth, **{"train.channels_last": "false"})
    fast, batch_cl = _step(tiny_synth, **{"train.channels_last": "true"})
    assert batch_cl["images"].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(batch["images"], batch_cl["images"])  # same values, other layout
    a, dids_a = plain(batch)
    b, dids_b = fast(batch_cl)
    assert set(a) == {"ce", "tri", "align", "uniform", "domain", "total"} and torch.equal(dids_a, dids_b)
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-5), k
    # Adam moves a weight by about lr whatever its gradient's size, so last-bit gradient noise in
    # near-zero entries moves by up to 2 lr: the weights agree to that
    lr = plain.optimizer.param_groups[0]["lr"]
    for (name, p), q in zip(plain.model.named_parameters(), fast.model.parameters()):
        assert torch.allclose(p, q, atol=2.5 * lr), name


def test_a_non_finite_term_stops_before_any_update(tiny_synth, monkeypatch):
    step, batch = _step(tiny_synth)
    before = [p.detach().clone() for p in step.model.parameters()]
    protos = step.memory.prototypes.clone()
    real = BAUObjective.__call__

    def nan_domain(self, *a):
        terms = real(self, *a)
        terms["domain"] = terms["domain"] * float("inf")
        return terms

    monkeypatch.setattr(BAUObjective, "__call__", nan_domain)
    with pytest.raises(NonFiniteLoss, match="'domain' became -?inf"):
        step(batch)
    assert all(torch.equal(a, b) for a, b in zip(before, step.model.parameters()))
    assert torch.equal(protos, step.memory.prototypes)


def test_the_objective_returns_losses_only_and_the_memory_gets_the_original_views(tiny_synth, monkeypatch):
    """Eq. 7 stores the original views' features, which the step hands the memory; the loss dict holds losses."""
    import torch.nn.functional as F

    from bau.method.memory import PrototypeMemory

    step, batch = _step(tiny_synth)
    b = batch["pid"].shape[0]
    with torch.no_grad():
        terms, f_orig, pids, _ = step.losses(batch)
        expected = F.normalize(step.forward(batch["images"], 2)["bn"][:b].float(), dim=1)
    assert set(terms) == {"ce", "tri", "align", "uniform", "domain", "total"}
    assert torch.allclose(f_orig, expected, atol=1e-6) and not f_orig.requires_grad
    assert torch.equal(pids, batch["pid"])
    seen = []
    real = PrototypeMemory.update

    def spy(self, features, labels):
        seen.append((features.detach().clone(), labels.clone()))
        return real(self, features, labels)

    monkeypatch.setattr(PrototypeMemory, "update", spy)
    step(batch)
    (features, labels), = seen
    assert features.shape == (b, f_orig.shape[1]) and torch.equal(labels, batch["pid"])
    # the memory got the step's original-view features: the forward before the update, the same batch
    assert torch.allclose(features, f_orig, atol=1e-5)
