"""model.bn_views: one set of BatchNorm statistics for both views (joint) or one per view (split)."""
import copy

import pytest
import torch
import torch.nn as nn

from bau.core.config import load_config
from bau.models.batchnorm import views_per_batchnorm
from bau.models.reid import build_model

pytestmark = pytest.mark.unit


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(6),
                         nn.BatchNorm1d(6))


def _batches():
    g = torch.Generator().manual_seed(1)
    orig = torch.randn(8, 3, 6, 5, generator=g)
    aug = 3.0 * torch.randn(8, 3, 6, 5, generator=g) + 2.0  # other statistics, like augmented views
    return orig, aug


def test_split_normalises_each_view_with_its_own_statistics():
    bn = nn.BatchNorm2d(3).train()
    orig, aug = _batches()
    with views_per_batchnorm(bn, 2):
        y = bn(torch.cat([orig, aug]))
    # by hand: each half standardised with its own (biased) batch mean and variance
    for half, x in zip(y.chunk(2), (orig, aug)):
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        assert torch.allclose(half, (x - mean) / torch.sqrt(var + bn.eps), atol=1e-5)


def test_split_and_joint_differ_in_train_mode_and_agree_in_eval_mode():
    net = _net()
    orig, aug = _batches()
    net(orig)  # materialise the lazy layer
    joint, split = copy.deepcopy(net).train(), copy.deepcopy(net).train()
    x = torch.cat([orig, aug])
    with views_per_batchnorm(split, 2):
        y_split = split(x)
    y_joint = joint(x)
    assert not torch.allclose(y_split, y_joint, atol=1e-3)
    same = copy.deepcopy(net).eval()
    with views_per_batchnorm(same, 2):
        assert torch.equal(same(x), net.eval()(x))  # eval mode: running statistics, nothing to split


def test_split_running_statistics_come_from_the_originals_only():
    net = _net()
    orig, aug = _batches()
    net(orig)
    split, reference = copy.deepcopy(net).train(), copy.deepcopy(net).train()
    with views_per_batchnorm(split, 2):
        out = split(torch.cat([orig, aug]))
    ref_out = reference(orig)  # an original-only forward
    assert torch.allclose(out[:8], ref_out, atol=1e-6)
    for (name, a), (_, b) in zip(split.named_buffers(), reference.named_buffers()):
        assert torch.equal(a, b), name
    # and the patch is gone after the block: a plain forward normalises the views jointly again
    assert "forward" not in vars(split[1])


def test_split_backpropagates_through_both_views():
    net = _net().train()
    orig, aug = _batches()
    net(orig)
    x = torch.cat([orig, aug]).requires_grad_(True)
    with views_per_batchnorm(net, 2):
        y = net(x)
    y.pow(2).sum().backward()
    assert x.grad[:8].abs().sum() > 0 and x.grad[8:].abs().sum() > 0
    # per-view statistics make the loss separable: the augmented half's gradient is that of a
    # forward of the augmented views alone
    x2 = aug.clone().requires_grad_(True)
    copy.deepcopy(net)(x2).pow(2).sum().backward()
    assert torch.allclose(x.grad[8:], x2.grad, atol=1e-5)


@pytest.mark.parametrize("bn_views", ["joint", "split"])
def test_reid_model_forward_in_both_modes(bn_views):
    cfg = load_config(None, ["model.backbone=mobilenetv2", "model.pretrained=false", "data.height=32",
                             "data.width=16", f"model.bn_views={bn_views}"])
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=5).train()
    orig, aug = torch.randn(4, 3, 32, 16), torch.randn(4, 3, 32, 16) * 2
    with views_per_batchnorm(model, 2 if bn_views == "split" else 1):
        out = model(torch.cat([orig, aug]))
    assert out["bn"].shape == (8, 1280) and out["logits"].shape == (8, 5)
    before = model.bnneck.running_mean.clone()
    assert torch.isfinite(out["logits"]).all() and not torch.equal(before, torch.zeros_like(before))
