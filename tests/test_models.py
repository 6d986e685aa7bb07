import os

import pytest
import torch

from bau.core.config import load_config
from bau.core.errors import BauError
from bau.models.backbones import BACKBONES, ResNet50IN
from bau.models.pretrained import packaged_mobilenetv2_path, resolve_weights
from bau.models.reid import GeM, build_model

pytestmark = pytest.mark.unit


def test_gem_matches_formula():
    x = torch.rand(2, 3, 4, 2) + 0.1
    g = GeM(p=3.0)
    ref = x.pow(3).mean(dim=(2, 3)).pow(1 / 3)
    assert torch.allclose(g(x), ref, atol=1e-6)
    # p = 1 is average pooling
    assert torch.allclose(GeM(p=1.0)(x), x.mean(dim=(2, 3)), atol=1e-6)


def test_mobilenetv2_packaged_weights_load_and_model_shapes():
    assert packaged_mobilenetv2_path() is not None
    cfg = load_config(None, ["model.backbone=mobilenetv2", "data.height=64", "data.width=32"])
    m = build_model(cfg, num_classes=5)
    # the packaged file really was loaded (a fresh init has zero running means)
    assert m.backbone.features[0][1].running_mean.abs().sum() > 0
    m.train()
    out = m(torch.randn(4, 3, 64, 32))
    assert out["feat"].shape == (4, 1280) and out["bn"].shape == (4, 1280) and out["logits"].shape == (4, 5)
    assert not m.bnneck.bias.requires_grad and m.classifier.bias is None
    m.eval()
    f = m(torch.randn(3, 3, 64, 32))
    assert torch.allclose(f.norm(dim=1), torch.ones(3), atol=1e-5)


def test_resnet50_last_stride_and_instance_norm():
    net = ResNet50IN(pretrained=False)
    y = net(torch.randn(1, 3, 64, 32))
    assert y.shape == (1, 2048, 4, 2)  # stride 16 with last stride 1
    assert isinstance(net.in1, torch.nn.InstanceNorm2d) and net.in3.num_features == 1024


@pytest.mark.parametrize("backbone, last_stride, final_map", [
    ("resnet50", None, (16, 8)), ("resnet50", 1, (16, 8)), ("resnet50", 2, (8, 4)),
    ("mobilenetv2", None, (8, 4)), ("mobilenetv2", 2, (8, 4)), ("mobilenetv2", 1, (16, 8))])
def test_last_stride_sets_the_final_map(backbone, last_stride, final_map):
    """model.last_stride at 256x128: stride 16 (1) or 32 (2); unset = the backbone's usual."""
    overrides = [f"model.backbone={backbone}", "model.pretrained=false"]
    if last_stride is not None:
        overrides.append(f"model.last_stride={last_stride}")
    model = build_model(load_config(None, overrides), num_classes=0).eval()
    with torch.no_grad():
        assert tuple(model.backbone(torch.zeros(1, 3, 256, 128)).shape[2:]) == final_map
    # the stride is the only change: same parameters, so the same weights load either way
    other = build_model(load_config(None, overrides[:2] + ["model.last_stride=1"]), num_classes=0)
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in other.state_dict().items()}


def test_last_stride_is_validated():
    assert load_config(None, []).model.last_stride is None
    with pytest.raises(BauError, match="model.last_stride"):
        load_config(None, ["model.last_stride=3"])
    with pytest.raises(BauError, match="vit_b16 has no downsampling block"):
        build_model(load_config(None, ["model.backbone=vit_b16", "model.pretrained=false",
                                       "model.last_stride=1", "data.height=64", "data.width=32"]), num_classes=0)


def test_resnet50_instance_norms_have_no_parameters():
    net = ResNet50IN(pretrained=False)
    for layer, channels in ((net.in1, 256), (net.in2, 512), (net.in3, 1024)):
        assert not layer.affine and list(layer.parameters()) == [] and layer.state_dict() == {}
        # parameter-free IN: each channel of each image to zero mean, unit (biased) variance
        x = torch.randn(2, channels, 4, 3) * 5 + 2
        ref = ((x - x.mean(dim=(2, 3), keepdim=True))
               / torch.sqrt(x.var(dim=(2, 3), unbiased=False, keepdim=True) + 1e-5))
        torch.testing.assert_close(layer(x), ref, atol=1e-5, rtol=1e-5)
    assert not any(".in" in name or name.startswith("in") for name, _ in net.named_parameters())


def test_vit_non_square_input():
    net = BACKBONES.get("vit_b16")(pretrained=False, height=64, width=32)
    assert net(torch.randn(2, 3, 64, 32)).shape == (2, 768)
    with pytest.raises(BauError, match="divisible by 16"):
        BACKBONES.get("vit_b16")(pretrained=False, height=60, width=32)


def test_missing_weights_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(BauError, match="model.pretrained=false"):
        resolve_weights("resnet50", None)
    with pytest.raises(BauError, match="not found"):
        resolve_weights("resnet50", str(tmp_path / "nope.pth"))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(BauError, match="bad.pth"):
        ResNet50IN(pretrained=True, pretrained_path=str(bad))


def test_hub_cache_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    import torchvision

    from bau.models.pretrained import hub_cache_candidates

    path = hub_cache_candidates("resnet50")[0]
    os.makedirs(os.path.dirname(path))
    sd = torchvision.models.resnet50().state_dict()
    torch.save(sd, path)
    assert resolve_weights("resnet50", None) == path
    net = ResNet50IN(pretrained=True)
    assert torch.equal(net.stem[0].weight, sd["conv1.weight"])


def test_unknown_backbone():
    # refused when the config is loaded, with the registry's names
    with pytest.raises(BauError, match="model.backbone: expected one of mobilenetv2, resnet50, vit_b16"):
        load_config(None, ["model.backbone=resnet9000"])
    cfg = load_config(None, [])
    cfg.model.backbone = "resnet9000"  # a config built in code is still checked by the registry
    with pytest.raises(BauError, match="unknown backbone"):
        build_model(cfg, 3)


def test_head_matches_the_released_model():
    """BNNeck with a frozen zero bias, a bias-free classifier with PyTorch's default initialisation."""
    import math

    import torch

    torch.manual_seed(0)
    model = build_model(load_config(None, ["model.backbone=mobilenetv2", "model.pretrained=false"]), 500)
    assert not model.bnneck.bias.requires_grad and torch.equal(model.bnneck.bias, torch.zeros(1280))
    assert model.classifier.bias is None
    bound = 1 / math.sqrt(1280)  # kaiming_uniform(a=sqrt(5)) of nn.Linear
    w = model.classifier.weight
    assert w.abs().max() <= bound and w.std() > 0.5 * bound / math.sqrt(3)


@pytest.mark.parametrize("name", BACKBONES.names())
def test_every_registered_backbone_builds_a_reid_model(name):
    """Each registry entry: a feature map or token with ``out_channels``, through GeM/BNNeck to
    unit-norm retrieval features, in both memory formats."""
    import torch

    for channels_last in ("false", "true"):
        cfg = load_config(None, [f"model.backbone={name}", "model.pretrained=false", "data.height=64",
                                 "data.width=32", f"train.channels_last={channels_last}"])
        torch.manual_seed(0)
        model = build_model(cfg, num_classes=3)
        out = model.train()(torch.randn(4, 3, 64, 32))
        dim = model.backbone.out_channels
        assert out["feat"].shape == out["bn"].shape == (4, dim) and out["logits"].shape == (4, 3)
        feats = model.eval()(torch.randn(2, 3, 64, 32))
        assert feats.shape == (2, dim) and torch.allclose(feats.norm(dim=1), torch.ones(2), atol=1e-5)
