"""Every loss against a loop-by-loop reference written straight from its equation."""
from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from bau.method.losses import (
    alignment_loss,
    batch_hard_triplet,
    cross_entropy_ls,
    domain_uniformity_loss,
    reciprocal_weights,
    uniformity_loss,
)

pytestmark = pytest.mark.unit


def _unit(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=dtype), dim=-1)


def _sq(a, b):
    return float(((a - b) ** 2).sum())


# ---------------------------------------------------------------- reciprocal_weights (Eq. 4)


def _reciprocal_weights_reference(f_orig, f_aug, k):
    x = F.normalize(torch.cat([f_orig, f_aug]), dim=1)
    n = len(x)
    k = min(k, n)
    knn = []
    for a in range(n):
        others = sorted((j for j in range(n) if j != a), key=lambda j: -float(x[a] @ x[j]))
        knn.append({a, *others[: k - 1]})
    recip = [{y for y in knn[a] if a in knn[y]} for a in range(n)]
    b = len(f_orig)
    w = torch.zeros(b, b, dtype=torch.float64)
    for i in range(b):
        for j in range(b):
            ra, ro = recip[b + i], recip[j]
            w[i, j] = len(ra & ro) / len(ra | ro)
    return w


@pytest.mark.parametrize("k", [1, 3, 5, 12, 100])
def test_reciprocal_weights_match_set_reference(k):
    f_orig = _unit(6, 4, seed=1)
    f_aug = F.normalize(f_orig + 0.6 * _unit(6, 4, seed=2), dim=1)
    w = reciprocal_weights(f_orig, f_aug, k)
    assert w.shape == (6, 6)
    torch.testing.assert_close(w, _reciprocal_weights_reference(f_orig, f_aug, k))


def test_reciprocal_weights_hand_example():
    # Two tight, far-apart clusters: {o0, a0} and {o1, a1}. With k = 2 each point's reciprocal set is
    # itself plus its partner, so w = identity (aug i shares everything with orig i, nothing else).
    f_orig = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    f_aug = torch.tensor([[1.0, 0.05], [0.05, 1.0]])
    w = reciprocal_weights(f_orig, f_aug, 2)
    torch.testing.assert_close(w, torch.eye(2))
    # With k = 4 (= 2B, clamped) every set is the whole batch: all weights are 1.
    torch.testing.assert_close(reciprocal_weights(f_orig, f_aug, 4), torch.ones(2, 2))


def test_reciprocal_weights_have_no_gradient_and_handle_duplicates():
    f = torch.randn(4, 3, requires_grad=True)
    w = reciprocal_weights(f, f, 2)  # every point duplicated: self must still be in its own set
    assert not w.requires_grad
    assert torch.isfinite(w).all()
    # o_i and a_i are identical, so each has the same reciprocal set {o_i, a_i}: w = identity.
    torch.testing.assert_close(w, torch.eye(4))


# ---------------------------------------------------------------- alignment_loss (Eq. 3 / 5)


def _alignment_reference(f_orig, f_aug, pids, w):
    num = den = 0.0
    for i in range(len(pids)):
        for j in range(len(pids)):
            if pids[i] == pids[j]:
                num += float(w[i, j]) * _sq(f_aug[i], f_orig[j])
                den += float(w[i, j])
    return num / den


def test_alignment_loss_weighted_and_unweighted():
    pids = torch.tensor([0, 0, 1, 1, 2, 3])
    f_orig, f_aug = _unit(6, 5, seed=3), _unit(6, 5, seed=4)
    w = torch.rand(6, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert float(alignment_loss(f_orig, f_aug, pids, w)) == pytest.approx(_alignment_reference(f_orig, f_aug, pids, w))
    ones = torch.ones(6, 6, dtype=torch.float64)
    plain = float(alignment_loss(f_orig, f_aug, pids))
    assert plain == pytest.approx(_alignment_reference(f_orig, f_aug, pids, ones))
    # Eq. 3 by hand: 4 + 4 + 1 + 1 = 10 positive pairs.
    manual = sum(_sq(f_aug[i], f_orig[j]) for i in range(6) for j in range(6) if pids[i] == pids[j]) / 10
    assert plain == pytest.approx(manual)


def test_alignment_loss_zero_weights_give_zero_not_nan():
    f_orig = _unit(4, 3, seed=6).requires_grad_()
    f_aug = _unit(4, 3, seed=7).requires_grad_()
    pids = torch.tensor([0, 0, 1, 1])
    loss = alignment_loss(f_orig, f_aug, pids, torch.zeros(4, 4, dtype=torch.float64))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(f_orig.grad).all() and torch.isfinite(f_aug.grad).all()


def test_alignment_loss_does_not_backprop_into_weights():
    f = _unit(4, 3, seed=8).requires_grad_()
    w = torch.rand(4, 4, dtype=torch.float64, requires_grad=True)
    alignment_loss(f, f * 0.5, torch.tensor([0, 0, 1, 1]), w).backward()
    assert w.grad is None


# ---------------------------------------------------------------- uniformity_loss (Eq. 2 / 6)


def test_uniformity_loss_matches_definition():
    f = _unit(7, 4, seed=9)
    terms = [math.exp(-2 * _sq(f[i], f[j])) for i in range(7) for j in range(7) if i != j]
    ref = math.log(sum(terms) / len(terms))
    assert float(uniformity_loss(f)) == pytest.approx(ref, rel=1e-10)
    # and Wang & Isola's own formulation (pdist over i < j pairs, same mean by symmetry)
    wi = torch.pdist(f, p=2).pow(2).mul(-2).exp().mean().log()
    assert float(uniformity_loss(f)) == pytest.approx(float(wi), rel=1e-10)


def test_uniformity_loss_finite_gradient_for_coinciding_features():
    base = _unit(3, 4, seed=10)
    f = torch.cat([base, base[:1]]).requires_grad_()  # rows 0 and 3 coincide
    loss = uniformity_loss(f)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(f.grad).all()


def test_uniformity_loss_is_stable_for_far_apart_features():
    # exp(-2 * 1e4) underflows to 0 in a naive mean; the logsumexp form stays finite.
    f = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]], dtype=torch.float32)
    loss = uniformity_loss(f)
    assert torch.isfinite(loss)
    # 4 of the 6 ordered pairs are 100 apart (squared 1e4), 2 are 100*sqrt(2) apart (negligible).
    assert float(loss) == pytest.approx(-2 * 1e4 + math.log(4 / 6), rel=1e-6)


# ---------------------------------------------------------------- domain_uniformity_loss (Eq. 8)


def _domain_reference(f, protos, proto_domains, pids, dids, n):
    terms = []
    for i in range(len(f)):
        cands = [j for j in range(len(protos)) if proto_domains[j] == dids[i] and j != pids[i]]
        cands.sort(key=lambda j: _sq(f[i], protos[j]))
        terms += [math.exp(-2 * _sq(f[i], protos[j])) for j in cands[:n]]
    return math.log(sum(terms) / len(terms))


@pytest.mark.parametrize("n_neighbors", [None, 1, 2, 50])
def test_domain_uniformity_matches_reference(n_neighbors):
    protos = _unit(10, 4, seed=11)
    proto_domains = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    pids = torch.tensor([0, 1, 4, 7, 8])
    dids = proto_domains[pids]
    f = F.normalize(protos[pids] + 0.3 * _unit(5, 4, seed=12), dim=1)
    n = len(f) if n_neighbors is None else n_neighbors
    out = domain_uniformity_loss(f, protos, proto_domains, pids, dids, n_neighbors)
    assert float(out) == pytest.approx(_domain_reference(f, protos, proto_domains, pids, dids, n), rel=1e-10)


def test_domain_uniformity_excludes_own_class_even_when_not_nearest():
    # The feature sits ON prototype 1 (another class) and far from its own prototype 0.
    protos = torch.tensor([[-1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    domains = torch.zeros(3, dtype=torch.long)
    f = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    out = domain_uniformity_loss(f, protos, domains, torch.tensor([0]), torch.tensor([0]), n_neighbors=1)
    assert float(out) == pytest.approx(0.0)  # nearest eligible is class 1 at distance 0: log(exp(0))
    out2 = domain_uniformity_loss(f, protos, domains, torch.tensor([0]), torch.tensor([0]), n_neighbors=2)
    assert float(out2) == pytest.approx(math.log((1 + math.exp(-2 * 2)) / 2))


def test_domain_uniformity_global_variant_is_all_zero_domains():
    protos = _unit(8, 3, seed=13)
    pids = torch.tensor([0, 5])
    f = _unit(2, 3, seed=14)
    zeros_c, zeros_b = torch.zeros(8, dtype=torch.long), torch.zeros(2, dtype=torch.long)
    out = domain_uniformity_loss(f, protos, zeros_c, pids, zeros_b, n_neighbors=3)
    assert float(out) == pytest.approx(_domain_reference(f, protos, zeros_c, pids, zeros_b, 3), rel=1e-10)


def test_domain_uniformity_gradient_only_to_features_and_empty_case():
    protos = _unit(4, 3, seed=15).requires_grad_()
    f = _unit(2, 3, seed=16).requires_grad_()
    pids, dids = torch.tensor([0, 2]), torch.tensor([0, 1])
    out = domain_uniformity_loss(f, protos, torch.tensor([0, 0, 1, 1]), pids, dids)
    out.backward()
    assert protos.grad is None
    assert torch.isfinite(f.grad).all() and f.grad.abs().sum() > 0
    # every domain has a single class -> nothing eligible -> graph-connected zero
    lonely = domain_uniformity_loss(f, protos, torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1]), torch.tensor([0, 1]))
    assert lonely.item() == 0.0 and lonely.requires_grad


# ---------------------------------------------------------------- cross_entropy_ls


def test_cross_entropy_ls_hand_value_and_torch_equivalence():
    logits = torch.tensor([[2.0, 0.0, 0.0]], dtype=torch.float64)
    logp = torch.log_softmax(logits, 1)[0]
    eps = 0.1
    hand = -((1 - eps + eps / 3) * logp[0] + (eps / 3) * logp[1] + (eps / 3) * logp[2])
    assert float(cross_entropy_ls(logits, torch.tensor([0]), eps)) == pytest.approx(float(hand))
    g = torch.Generator().manual_seed(17)
    logits = torch.randn(8, 11, generator=g)
    targets = torch.randint(0, 11, (8,), generator=g)
    expected = F.cross_entropy(logits, targets, label_smoothing=0.1)
    torch.testing.assert_close(cross_entropy_ls(logits, targets, 0.1), expected)
    torch.testing.assert_close(cross_entropy_ls(logits, targets, 0.0), F.cross_entropy(logits, targets))


# ---------------------------------------------------------------- batch_hard_triplet


def _triplet_reference(f, pids, margin):
    losses = []
    for a in range(len(f)):
        pos = [math.sqrt(_sq(f[a], f[p])) for p in range(len(f)) if pids[p] == pids[a]]
        neg = [math.sqrt(_sq(f[a], f[n])) for n in range(len(f)) if pids[n] != pids[a]]
        if neg:
            losses.append(max(0.0, max(pos) - min(neg) + margin))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("margin", [0.3, 5.0])
def test_batch_hard_triplet_matches_reference(margin):
    g = torch.Generator().manual_seed(18)
    f = torch.randn(8, 5, generator=g, dtype=torch.float64)
    pids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    assert float(batch_hard_triplet(f, pids, margin)) == pytest.approx(_triplet_reference(f, pids, margin), rel=1e-6)


def test_batch_hard_triplet_finite_gradient_at_zero_distance_and_single_identity():
    f = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], requires_grad=True)
    loss = batch_hard_triplet(f, torch.tensor([0, 0, 1, 1]), margin=2.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(f.grad).all()
    assert loss.item() == pytest.approx(0.0 - math.sqrt(2) + 2.0, abs=1e-5)  # d_ap = 0, d_an = sqrt(2)
    one = batch_hard_triplet(f, torch.zeros(4, dtype=torch.long))
    assert one.item() == 0.0 and one.requires_grad


# ---------------------------------------------------------------- gradients (finite differences)


def test_gradients_match_finite_differences():
    protos = _unit(6, 3, seed=19)
    domains = torch.tensor([0, 0, 0, 1, 1, 1])
    pids, dids = torch.tensor([0, 4, 1]), torch.tensor([0, 1, 0])
    pair_pids = torch.tensor([0, 0, 1])
    f = _unit(3, 3, seed=20).requires_grad_()
    g = _unit(3, 3, seed=21).requires_grad_()
    assert torch.autograd.gradcheck(uniformity_loss, (f,))
    assert torch.autograd.gradcheck(lambda x: domain_uniformity_loss(x, protos, domains, pids, dids, 2), (f,))
    assert torch.autograd.gradcheck(lambda a, b: alignment_loss(a, b, pair_pids), (f, g))
    assert torch.autograd.gradcheck(lambda a: batch_hard_triplet(a, pair_pids, margin=1.0), (f,))


# ---------------------------------------------------------------- edge cases pinned by mutation testing (issue 17)


def test_reciprocal_weights_reject_bad_shapes_and_k_with_the_shapes_in_the_message():
    message = r"^reciprocal_weights: expected two \[B, d\] tensors, got \(4, 3\) and \(5, 3\)$"
    with pytest.raises(ValueError, match=message):
        reciprocal_weights(torch.zeros(4, 3), torch.zeros(5, 3), 2)
    with pytest.raises(ValueError, match=r"got \(4, 3, 1\) and \(4, 3, 1\)$"):
        reciprocal_weights(torch.zeros(4, 3, 1), torch.zeros(4, 3, 1), 2)
    with pytest.raises(ValueError, match=r"^reciprocal_weights: k must be >= 1, got 0$"):
        reciprocal_weights(torch.zeros(4, 3), torch.zeros(4, 3), 0)


def test_alignment_loss_keeps_the_feature_dtype():
    f_orig, f_aug = _unit(4, 3, seed=22, dtype=torch.float32), _unit(4, 3, seed=23, dtype=torch.float32)
    pids = torch.tensor([0, 0, 1, 1])
    # float64 weights are cast to the features' float32
    assert alignment_loss(f_orig, f_aug, pids, torch.rand(4, 4, dtype=torch.float64)).dtype == torch.float32
    # bfloat16 features give a bfloat16 loss, its denominator counted in bfloat16 too
    half = alignment_loss(f_orig.bfloat16(), f_aug.bfloat16(), pids)
    assert half.dtype == torch.bfloat16
    assert float(half) == pytest.approx(float(alignment_loss(f_orig, f_aug, pids)), rel=2e-2)


def test_uniformity_loss_of_two_features_and_its_error():
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    assert float(uniformity_loss(f)) == pytest.approx(-2 * 2.0)  # both ordered pairs at squared distance 2
    with pytest.raises(ValueError, match=r"^uniformity_loss: need at least 2 features, got 1$"):
        uniformity_loss(f[:1])


def test_domain_uniformity_default_n_is_the_batch_size_not_the_dimension():
    # 3 features of dimension 6, 10 prototypes of one domain: N = B = 3 of the 9 eligible ones, not d = 6
    protos = _unit(10, 6, seed=24)
    domains = torch.zeros(10, dtype=torch.long)
    pids, dids = torch.tensor([0, 4, 9]), torch.zeros(3, dtype=torch.long)
    f = _unit(3, 6, seed=25)
    out = domain_uniformity_loss(f, protos, domains, pids, dids)
    assert float(out) == pytest.approx(_domain_reference(f, protos, domains, pids, dids, 3), rel=1e-10)
    assert float(out) != pytest.approx(_domain_reference(f, protos, domains, pids, dids, 6), rel=1e-6)
    with pytest.raises(ValueError, match=r"^domain_uniformity_loss: n_neighbors must be >= 1, got 0$"):
        domain_uniformity_loss(f, protos, domains, pids, dids, n_neighbors=0)


def test_domain_uniformity_casts_the_prototypes_to_the_feature_dtype():
    protos = _unit(6, 3, seed=26)  # float64, like a memory kept in double
    domains, pids, dids = torch.tensor([0, 0, 0, 1, 1, 1]), torch.tensor([0, 4]), torch.tensor([0, 1])
    f = _unit(2, 3, seed=27, dtype=torch.float32)
    out = domain_uniformity_loss(f, protos, domains, pids, dids, 2)
    assert out.dtype == torch.float32
    assert float(out) == pytest.approx(_domain_reference(f.double(), protos, domains, pids, dids, 2), rel=1e-5)


def test_default_margin_and_smoothing_are_the_released_ones():
    g = torch.Generator().manual_seed(28)
    f, logits = torch.randn(6, 4, generator=g), torch.randn(6, 5, generator=g)
    pids = torch.tensor([0, 0, 1, 1, 2, 2])
    torch.testing.assert_close(batch_hard_triplet(f, pids), batch_hard_triplet(f, pids, 0.3))
    torch.testing.assert_close(cross_entropy_ls(logits, pids), cross_entropy_ls(logits, pids, 0.1))


def test_cross_entropy_ls_names_its_softmax_dimension():
    # an implicit softmax dimension works for [B, C] but warns (deprecated) at every step
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cross_entropy_ls(torch.randn(3, 4, generator=torch.Generator().manual_seed(29)), torch.tensor([0, 3, 1]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_every_loss_runs_on_cuda_and_matches_the_cpu():
    f_orig, f_aug = _unit(6, 4, seed=30, dtype=torch.float32), _unit(6, 4, seed=31, dtype=torch.float32)
    protos, domains = _unit(8, 4, seed=32, dtype=torch.float32), torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    pids, dids = torch.tensor([0, 0, 1, 1, 5, 5]), torch.tensor([0, 0, 0, 0, 1, 1])
    calls = {
        "weights": lambda d: reciprocal_weights(f_orig.to(d), f_aug.to(d), 3),
        "align": lambda d: alignment_loss(f_orig.to(d), f_aug.to(d), pids.to(d)),
        "uniform": lambda d: uniformity_loss(f_orig.to(d)),
        "domain": lambda d: domain_uniformity_loss(f_orig.to(d), protos.to(d), domains.to(d), pids.to(d), dids.to(d)),
        "tri": lambda d: batch_hard_triplet(f_orig.to(d), pids.to(d)),
    }
    for name, call in calls.items():
        on_gpu = call("cuda")
        assert on_gpu.is_cuda, name
        torch.testing.assert_close(on_gpu.cpu(), call("cpu"), rtol=1e-5, atol=1e-6, msg=name)
