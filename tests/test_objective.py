"""BAUObjective (Eq. 9) against the loss functions called one by one, for every switch of LossConfig."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from bau.core.config import LossConfig
from bau.method.losses import (
    alignment_loss,
    batch_hard_triplet,
    cross_entropy_ls,
    domain_uniformity_loss,
    reciprocal_weights,
    uniformity_loss,
)
from bau.method.memory import PrototypeMemory
from bau.method.objective import BAUObjective, view_features

pytestmark = pytest.mark.unit

PIDS = torch.tensor([0, 0, 1, 1, 2, 2, 5, 5])
DIDS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])


def _outputs(seed, b=8, d=6, classes=8):
    g = torch.Generator().manual_seed(seed)
    return {"feat": torch.randn(b, d, generator=g), "bn": 2.0 * torch.randn(b, d, generator=g) + 0.5,
            "logits": 3.0 * torch.randn(b, classes, generator=g)}


def _memory(d=6):
    # classes 0-3 in domain 0, 4-7 in domain 1: four prototypes per domain, so N (Eq. 8) matters below 3
    mem = PrototypeMemory(8, d, [0, 0, 0, 0, 1, 1, 1, 1])
    mem.prototypes.copy_(F.normalize(torch.randn(8, d, generator=torch.Generator().manual_seed(7)), dim=1))
    return mem


def _cfg(**kw):
    return dataclasses.replace(LossConfig(), **kw)


def _close(a, b):
    assert float(a) == pytest.approx(float(b), rel=1e-6, abs=1e-7)


def test_every_term_is_its_loss_and_the_total_weights_only_alignment():
    o, a, mem = _outputs(1), _outputs(2), _memory()
    cfg = _cfg(ce_aug=True, lam=2.5, k=3, n_neighbors=2, label_smoothing=0.25, margin=0.7)
    terms = BAUObjective(cfg, mem)(o, a, PIDS, DIDS)
    f_o, f_a = F.normalize(o["bn"], dim=1), F.normalize(a["bn"], dim=1)
    want = {
        "ce": cross_entropy_ls(o["logits"], PIDS, 0.25),
        "tri": batch_hard_triplet(o["feat"], PIDS, 0.7),
        "ce_aug": cross_entropy_ls(a["logits"], PIDS, 0.25),
        "align": alignment_loss(f_o, f_a, PIDS, reciprocal_weights(f_o, f_a, 3)),
        "uniform": 0.5 * (uniformity_loss(f_o) + uniformity_loss(f_a)),
        "domain": 0.5 * sum(domain_uniformity_loss(f, mem.prototypes, mem.domains, PIDS, DIDS, 2) for f in (f_o, f_a)),
    }
    assert set(terms) == set(want) | {"total"}
    for key, value in want.items():
        _close(terms[key], value)
    _close(terms["total"], sum(want.values()) + 1.5 * want["align"])
    # each non-default setting is seen: the defaults give other values on this batch
    assert float(cross_entropy_ls(o["logits"], PIDS)) != pytest.approx(float(want["ce"]))
    assert float(cross_entropy_ls(a["logits"], PIDS)) != pytest.approx(float(want["ce_aug"]))
    assert float(batch_hard_triplet(o["feat"], PIDS)) != pytest.approx(float(want["tri"]))
    assert float(alignment_loss(f_o, f_a, PIDS)) != pytest.approx(float(want["align"]))
    unlimited = 0.5 * sum(domain_uniformity_loss(f, mem.prototypes, mem.domains, PIDS, DIDS) for f in (f_o, f_a))
    assert float(unlimited) != pytest.approx(float(want["domain"]))


def test_without_weighting_alignment_is_the_plain_mean_of_eq3():
    o, a = _outputs(3), _outputs(4)
    terms = BAUObjective(_cfg(weighting=False, domain=False, lam=0.5), None)(o, a, PIDS, DIDS)
    f_o, f_a = view_features(o), view_features(a)
    plain = alignment_loss(f_o, f_a, PIDS)
    _close(terms["align"], plain)
    assert float(plain) != pytest.approx(float(alignment_loss(f_o, f_a, PIDS, reciprocal_weights(f_o, f_a, 10))))
    _close(terms["total"], terms["ce"] + terms["tri"] + 0.5 * plain + terms["uniform"])


def test_global_prototypes_ignore_the_domains():
    o, a, mem = _outputs(5), _outputs(6), _memory()
    terms = BAUObjective(_cfg(domain_specific=False, n_neighbors=3), mem)(o, a, PIDS, DIDS)
    zeros_c, zeros_b = torch.zeros(8, dtype=torch.long), torch.zeros(8, dtype=torch.long)
    views = (view_features(o), view_features(a))
    want = 0.5 * sum(domain_uniformity_loss(f, mem.prototypes, zeros_c, PIDS, zeros_b, 3) for f in views)
    _close(terms["domain"], want)
    specific = 0.5 * sum(domain_uniformity_loss(f, mem.prototypes, mem.domains, PIDS, DIDS, 3) for f in views)
    assert float(specific) != pytest.approx(float(want))


def test_one_view_uses_the_original_features_only():
    o, mem = _outputs(7), _memory()
    cfg = _cfg(ce_aug=True)
    terms = BAUObjective(cfg, mem)(o, None, PIDS, DIDS)
    assert set(terms) == {"ce", "tri", "domain", "total"}  # no second view: no ce_aug, align, uniform
    want = domain_uniformity_loss(view_features(o), mem.prototypes, mem.domains, PIDS, DIDS)
    _close(terms["domain"], want)
    _close(terms["total"], terms["ce"] + terms["tri"] + want)


def test_the_domain_term_needs_both_the_switch_and_a_memory():
    o, a = _outputs(8), _outputs(9)
    assert "domain" not in BAUObjective(_cfg(domain=False), _memory())(o, a, PIDS, DIDS)
    assert "domain" not in BAUObjective(_cfg(domain=True), None)(o, a, PIDS, DIDS)


def test_switching_everything_off_but_alignment():
    o, a = _outputs(10), _outputs(11)
    cfg = _cfg(ce=False, triplet=False, uniform=False, domain=False, lam=3.0)
    terms = BAUObjective(cfg, _memory())(o, a, PIDS, DIDS)
    assert set(terms) == {"align", "total"}
    _close(terms["total"], 3.0 * terms["align"])


def test_view_features_are_unit_rows_in_float32():
    bn = torch.tensor([[3.0, 4.0], [0.0, -2.0]], dtype=torch.float16)
    f = view_features({"bn": bn})
    assert f.dtype == torch.float32
    torch.testing.assert_close(f, torch.tensor([[0.6, 0.8], [0.0, -1.0]]))
