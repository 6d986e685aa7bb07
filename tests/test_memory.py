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
    # features and pids still on the CPU are moved to the memory's device (sums, counts and index alike)
    cpu_feats, cpu_pids = feats.cpu().flip(0), pids.cpu().flip(0)
    mem.update(cpu_feats, cpu_pids)
    sums, counts = mem._class_sums(cpu_feats, cpu_pids)
    assert sums.is_cuda and counts.is_cuda and counts.tolist() == [2.0, 2.0]


# ---------------------------------------------------------------- edge cases pinned by mutation testing (issue 17)


def test_domains_are_long_whatever_the_input_type():
    for given in (torch.tensor([2, 0, 1], dtype=torch.int32), torch.tensor([2.0, 0.0, 1.0]), (2, 0, 1)):
        mem = PrototypeMemory(3, 2, class_domains=given)
        assert mem.domains.dtype == torch.long and mem.domains.tolist() == [2, 0, 1]


def test_momentum_bounds_are_inclusive():
    assert PrototypeMemory(1, 2, class_domains=[0], momentum=0.0).momentum == 0.0
    assert PrototypeMemory(1, 2, class_domains=[0], momentum=1.0).momentum == 1.0
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\], got -0.1"):
        PrototypeMemory(1, 2, class_domains=[0], momentum=-0.1)


def test_shape_errors_name_both_shapes():
    mem = PrototypeMemory(3, 4, class_domains=[0, 0, 1])
    pids = torch.tensor([0, 1, 2])
    bad = {
        "wrong width, same length": (_features(3, 5, 9), pids, r"got \(3, 5\) and \(3,\)"),
        "three dimensions, right width": (_features(3, 4, 9).unsqueeze(2), pids, r"got \(3, 4, 1\) and \(3,\)"),
        "one dimension": (_features(1, 4, 9)[0], pids[:1], r"got \(4,\) and \(1,\)"),
        "lengths differ": (_features(2, 4, 9), pids, r"got \(2, 4\) and \(3,\)"),
    }
    for case, (feats, p, shapes) in bad.items():
        for method in (mem.update, mem.initialise):
            with pytest.raises(ValueError, match=r"^PrototypeMemory: expected features \[n, 4\] and pids \[n\], "
                               + shapes + "$"):
                method(feats, p)
            assert mem.prototypes.abs().sum() == 0, case  # nothing was written


def test_pid_range_is_half_open():
    mem = PrototypeMemory(3, 2, class_domains=[0, 0, 0])
    with pytest.raises(ValueError, match=r"^PrototypeMemory: pids must lie in \[0, 3\), got \[0, 3\]$"):
        mem.update(_features(2, 2, 10), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"got \[-1, 1\]$"):
        mem.update(_features(2, 2, 10), torch.tensor([-1, 1]))
    mem.update(_features(2, 2, 10), torch.tensor([0, 2]))  # the last class is valid


def test_features_of_another_dtype_are_cast_to_the_prototypes():
    mem = PrototypeMemory(2, 3, class_domains=[0, 1])
    feats = _features(4, 3, 11).double()
    pids = torch.tensor([0, 1, 1, 0])
    mem.initialise(feats, pids)
    mem.update(feats.flip(0), pids)
    assert mem.prototypes.dtype == torch.float32
    for c in range(2):
        mean = feats[pids == c].mean(0).float()
        torch.testing.assert_close(mem.prototypes[c], mean / mean.norm())


def test_class_sums_are_in_the_prototypes_dtype():
    mem = PrototypeMemory(3, 2, class_domains=[0, 0, 0]).double()
    sums, counts = mem._class_sums(_features(4, 2, 12), torch.tensor([0, 2, 2, 2]))
    assert sums.dtype == counts.dtype == torch.float64
    assert counts.tolist() == [1.0, 0.0, 3.0]


def test_prototypes_are_means_even_for_huge_features():
    # 1e18 squared fits float32 but (10 * 10 * 1e18) squared does not: the mean, not the sum, is normalised.
    mem = PrototypeMemory(2, 2, class_domains=[0, 0])
    feats = torch.tensor([[1e18, 0.0]] * 10 + [[0.0, 1e18]] * 10)
    pids = torch.tensor([0] * 10 + [1] * 10)
    mem.initialise(feats, pids)
    torch.testing.assert_close(mem.prototypes, torch.eye(2))


def test_repr_names_the_sizes():
    assert repr(PrototypeMemory(3, 4, class_domains=[0, 0, 1], momentum=0.2)) == (
        "PrototypeMemory(num_classes=3, dim=4, momentum=0.2)")
