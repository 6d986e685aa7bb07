"""PrototypeMemory: initialisation, Eq. 7 update, state_dict round trip."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bau.core.errors import BauError
from bau.method.memory import PrototypeMemory

pytestmark = pytest.mark.unit


def _features(n, d, seed):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_initialise_is_normalised_class_mean():
    feats = _features(7, 4, 0)
    pids = torch.tensor([0, 1, 1, 2, 2, 2, 0])
    mem = PrototypeMemory(3, 4, class_domains=[0, 0, 1])
    mem.initialise(feats, pids)
    for c in range(3):
        expected = feats[pids == c].mean(0)
        torch.testing.assert_close(mem.prototypes[c], expected / expected.norm())
    torch.testing.assert_close(mem.prototypes.norm(dim=1), torch.ones(3))
    assert mem.domains.tolist() == [0, 0, 1] and mem.domains.dtype == torch.long


def test_initialise_rejects_missing_class():
    mem = PrototypeMemory(4, 2, class_domains=[0, 0, 0, 0])
    with pytest.raises(BauError, match="class 2"):
        mem.initialise(_features(3, 2, 1), torch.tensor([0, 1, 3]))


def test_update_matches_eq7_with_class_mean():
    mem = PrototypeMemory(4, 3, class_domains=[0, 1, 1, 2], momentum=0.3)
    mem.initialise(_features(8, 3, 2), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]))
    before = mem.prototypes.clone()
    feats = _features(5, 3, 3)
    pids = torch.tensor([2, 0, 2, 2, 0])
    mem.update(feats, pids)
    for c in range(4):
        mask = pids == c
        if mask.any():
            mixed = 0.3 * before[c] + 0.7 * feats[mask].mean(0)
            torch.testing.assert_close(mem.prototypes[c], mixed / mixed.norm())
        else:  # absent classes do not move
            torch.testing.assert_close(mem.prototypes[c], before[c])


def test_update_is_order_independent_and_gradient_free():
    mem_a = PrototypeMemory(2, 3, class_domains=[0, 0])
    mem_a.initialise(_features(2, 3, 4), torch.tensor([0, 1]))
    mem_b = PrototypeMemory(2, 3, class_domains=[0, 0])
    mem_b.load_state_dict(mem_a.state_dict())
    feats = _features(4, 3, 5).requires_grad_()
    pids = torch.tensor([0, 0, 1, 1])
    mem_a.update(feats, pids)
    perm = torch.tensor([3, 1, 2, 0])
    mem_b.update(feats[perm], pids[perm])
    torch.testing.assert_close(mem_a.prototypes, mem_b.prototypes)
    assert not mem_a.prototypes.requires_grad


def test_momentum_extremes():
    mem = PrototypeMemory(1, 2, class_domains=[0], momentum=1.0)
    mem.initialise(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
    mem.update(torch.tensor([[0.0, 5.0]]), torch.tensor([0]))
    torch.testing.assert_close(mem.prototypes, torch.tensor([[1.0, 0.0]]))  # mu = 1 keeps the old prototype
    mem.momentum = 0.0
    mem.update(torch.tensor([[0.0, 5.0]]), torch.tensor([0]))
    torch.testing.assert_close(mem.prototypes, torch.tensor([[0.0, 1.0]]))  # mu = 0 takes the new feature


def test_state_dict_round_trip(tmp_path):
    mem = PrototypeMemory(3, 4, class_domains=[2, 0, 1])
    mem.initialise(_features(3, 4, 6), torch.tensor([0, 1, 2]))
    path = tmp_path / "memory.pt"
    torch.save(mem.state_dict(), path)
    other = PrototypeMemory(3, 4, class_domains=[0, 0, 0])
    other.load_state_dict(torch.load(path, weights_only=True))
    torch.testing.assert_close(other.prototypes, mem.prototypes)
    assert other.domains.tolist() == [2, 0, 1]
    assert set(mem.state_dict()) == {"prototypes", "domains"}
    assert list(mem.parameters()) == []


def test_constructor_validation():
    with pytest.raises(ValueError, match="class_domains"):
        PrototypeMemory(3, 4, class_domains=[0, 1])
    with pytest.raises(ValueError, match="momentum"):
        PrototypeMemory(1, 4, class_domains=[0], momentum=1.5)
    mem = PrototypeMemory(2, 4, class_domains=[0, 0])
    with pytest.raises(ValueError, match="pids"):
        mem.update(_features(1, 4, 7), torch.tensor([5]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_works_on_cuda():
    mem = PrototypeMemory(2, 3, class_domains=[0, 1]).cuda()
    feats = F.normalize(_features(4, 3, 8), dim=1).cuda()
    pids = torch.tensor([0, 1, 0, 1]).cuda()
    mem.initialise(feats, pids)
    mem.update(feats, pids)
    assert mem.prototypes.is_cuda and mem.domains.is_cuda
