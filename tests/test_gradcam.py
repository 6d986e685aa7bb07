"""Grad-CAM of the retrieval embedding (Figure 2) on tiny untrained models."""
import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from analysis.gradcam import (
    MIN_CELLS,
    EmbeddingOutput,
    FeatureSimilarityTarget,
    cam_candidates,
    cam_layer,
    gradcam_across_checkpoints,
    gradcam_cells,
    gradcam_map,
    overlay,
    plot_gradcam_row,
    upsample_cells,
)
from bau.core.config import Config, load_config
from bau.core.errors import BauError
from bau.models.reid import ReIDModel, build_model
from bau.runs.checkpoint import save_checkpoint

pytestmark = pytest.mark.unit

H, W = 64, 32


def tiny_config(backbone="mobilenetv2"):
    cfg = Config()
    cfg.model.backbone = backbone
    cfg.model.pretrained = False
    cfg.data.height, cfg.data.width = H, W
    return cfg


def calibrated(model, seed=0):
    """Set BatchNorm running statistics from one random batch, as training would.

    With the initial statistics (mean 0, var 1) an untrained MobileNetV2's activations shrink by
    ~10x per stage and end below GeM's clamp, so every gradient is exactly zero."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average: one batch sets the statistics
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 3, H, W, generator=g))
    return model.eval()


@pytest.fixture(scope="module")
def mobilenet():
    torch.manual_seed(0)
    return calibrated(build_model(tiny_config(), num_classes=5))


class LocalConv(nn.Module):
    """A one-layer backbone: each output position sees only its 3x3 neighbourhood (no bias)."""

    out_channels = 8

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.conv(x))


def half_image(side, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(3, H, W)
    cols = slice(0, W // 2) if side == "left" else slice(W // 2, W)
    x[:, :, cols] = torch.rand(3, H, W // 2, generator=g) * 2
    return x


def test_map_shape_range_and_default_layer(mobilenet):
    x = torch.randn(3, H, W, generator=torch.Generator().manual_seed(3))
    cam = gradcam_map(mobilenet, x)
    assert cam.shape == (H, W) and cam.dtype == np.float32
    assert np.isfinite(cam).all() and cam.min() >= 0.0 and cam.max() <= 1.0
    assert cam.max() == pytest.approx(1.0, abs=1e-5)  # the self-target has a non-zero gradient
    layer = cam_layer(mobilenet, H, W)
    assert layer.module is mobilenet.backbone.features[6] and layer.name == "backbone.features.6"
    # the default layer is the rule's, and the map is its cells upsampled
    cells = gradcam_cells(mobilenet, x, target_layer=layer.module)
    np.testing.assert_allclose(cam, gradcam_map(mobilenet, x, target_layer=layer.module), atol=1e-6)
    np.testing.assert_allclose(cam, upsample_cells(cells, H, W), atol=1e-6)
    # another layer and a batched input give the same kind of map
    cam13 = gradcam_map(mobilenet, x[None], target_layer=mobilenet.backbone.features[13])
    assert cam13.shape == (H, W) and 0.0 <= cam13.min() and cam13.max() <= 1.0


def test_cam_at_64x32_has_at_least_8x4_distinct_cells(mobilenet):
    """The Figure 2 / app case: MobileNetV2 at 64x32, whose last map is 2x1 (two bands)."""
    for seed in range(3):
        x = torch.randn(3, H, W, generator=torch.Generator().manual_seed(seed))
        cells = gradcam_cells(mobilenet, x)
        assert cells.shape[0] >= MIN_CELLS[0] and cells.shape[1] >= MIN_CELLS[1] and MIN_CELLS == (8, 4)
        assert len(np.unique(cells)) >= 8  # not a few bands: many cells carry their own value
        lit_rows, lit_cols = np.nonzero(cells > 0)  # (ReLU leaves some cells at 0)
        assert len(set(lit_rows)) >= 4 and len(set(lit_cols)) >= 3
        # the upsampled map: the mean of each of the 8x4 blocks of 8x8 pixels takes many values and,
        # unlike two horizontal bands, varies across the width in at least half the rows
        blocks = gradcam_map(mobilenet, x).reshape(8, H // 8, 4, W // 4).mean(axis=(1, 3))
        assert len(np.unique(blocks.round(6))) >= 16
        assert sum(len(np.unique(row.round(6))) > 1 for row in blocks) >= 4
    # the last layer, for contrast: 2x1 cells, constant across the width
    last = gradcam_cells(mobilenet, x, target_layer=mobilenet.backbone.features[-1])
    assert last.shape == (2, 1)


def test_model_state_restored_and_hooks_released(mobilenet):
    mobilenet.train()
    gradcam_map(mobilenet, torch.randn(3, H, W))
    assert mobilenet.training
    mobilenet.eval()
    cam_layer(mobilenet, H, W)
    assert not any(m._forward_hooks or m._backward_hooks for m in mobilenet.modules())
    assert all(p.grad is None for p in mobilenet.parameters())


def stage_shapes(backbone, x):
    """Brute force: the map size after each candidate stage, by running the backbone by hand."""
    shapes = []
    if hasattr(backbone, "layer4"):  # ResNet50IN: stem, layer1+in1, layer2+in2, layer3+in3, layer4
        x = backbone.stem(x)
        shapes.append(tuple(x.shape[2:]))
        for layer, norm in ((backbone.layer1, backbone.in1), (backbone.layer2, backbone.in2),
                            (backbone.layer3, backbone.in3), (backbone.layer4, None)):
            x = layer(x) if norm is None else norm(layer(x))
            shapes.append(tuple(x.shape[2:]))
    else:
        for block in backbone.features:
            x = block(x)
            shapes.append(tuple(x.shape[2:]))
    return shapes


@pytest.mark.parametrize("backbone, size, extra, expected", [
    ("mobilenetv2", (64, 32), [], ("backbone.features.6", (8, 4))),  # end of the stride-8 stage
    ("mobilenetv2", (256, 128), [], ("backbone.features.18", (8, 4))),  # the last layer
    ("mobilenetv2", (256, 128), ["model.last_stride=1"], ("backbone.features.18", (16, 8))),
    ("mobilenetv2", (64, 32), ["model.last_stride=1"], ("backbone.features.6", (8, 4))),
    ("resnet50", (256, 128), [], ("backbone.layer4", (16, 8))),
    ("resnet50", (256, 128), ["model.last_stride=2"], ("backbone.layer4", (8, 4))),
    ("resnet50", (64, 32), [], ("backbone.in2", (8, 4))),
])
def test_cam_layer_rule(backbone, size, extra, expected):
    """The deepest candidate with at least 8x4 cells, checked against the stage shapes run by hand."""
    h, w = size
    cfg = load_config(None, [f"model.backbone={backbone}", "model.pretrained=false", f"data.height={h}",
                             f"data.width={w}"] + extra)
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=0).eval()
    layer = cam_layer(model, h, w)
    assert (layer.name, layer.map_hw) == expected
    assert layer.describe() == f"{expected[0]}, {expected[1][0]}x{expected[1][1]} cells"
    candidates = cam_candidates(model)
    with torch.no_grad():
        shapes = stage_shapes(model.backbone, torch.zeros(1, 3, h, w))
    assert len(shapes) == len(candidates)
    deepest = max(i for i, (sh, sw) in enumerate(shapes) if sh >= 8 and sw >= 4)
    assert candidates[deepest][1] is layer.module and shapes[deepest] == layer.map_hw
    # a stricter minimum moves the layer up to a finer map
    finer = cam_layer(model, h, w, min_cells=(2 * layer.map_hw[0], 2 * layer.map_hw[1]))
    idx = max(i for i, (sh, sw) in enumerate(shapes) if sh >= 2 * layer.map_hw[0] and sw >= 2 * layer.map_hw[1])
    assert finer.module is candidates[idx][1] and finer.map_hw == shapes[idx]


def test_cam_layer_falls_back_to_the_finest_map():
    torch.manual_seed(0)
    model = build_model(tiny_config("vit_b16"), num_classes=0)
    layer = cam_layer(model, H, W)  # 64x32 in 16x16 patches: 4x2 tokens at every depth
    assert layer.map_hw == (4, 2) and layer.module is model.backbone.encoder.layers[-1].ln_1
    mobile = build_model(tiny_config(), num_classes=0)
    # no layer of MobileNetV2 has 64x32 cells at 64x32 (the first conv halves it): the finest, deepest one
    layer = cam_layer(mobile, H, W, min_cells=(64, 32))
    assert layer.map_hw == (32, 16) and layer.name == "backbone.features.1"
    with pytest.raises(BauError, match="no target layers"):
        cam_layer(ReIDModel(LocalConv(), 0), H, W)


def test_resnet_stage_outputs_before_instance_norm_would_give_empty_weights():
    """Why the ResNet candidates are the IN outputs: IN makes the score blind to a per-channel
    constant of layer1-3's output, so there the gradient averages to zero over the map and every
    Grad-CAM channel weight vanishes (up to float error)."""
    cfg = load_config(None, ["model.backbone=resnet50", "model.pretrained=false", f"data.height={H}",
                             f"data.width={W}"])
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=0).eval()
    grads = {}
    hooks = [getattr(model.backbone, n).register_full_backward_hook(
        lambda m, gi, go, n=n: grads.__setitem__(n, go[0])) for n in ("layer3", "in3")]
    try:
        model.forward_features(
            torch.randn(1, 3, H, W, generator=torch.Generator().manual_seed(0)))["bn"].sum().backward()
    finally:
        for h in hooks:
            h.remove()
    weights = {n: g.mean(dim=(2, 3)).abs().max().item() / g.abs().mean().item() for n, g in grads.items()}
    assert weights["layer3"] < 1e-4 and weights["in3"] > 1e-2


def test_map_follows_the_evidence():
    model = ReIDModel(LocalConv(), num_classes=0).eval()
    layer = model.backbone.act
    for seed in range(3):
        left = gradcam_map(model, half_image("left", seed), target_layer=layer)
        right = gradcam_map(model, half_image("right", seed), target_layer=layer)
        assert left[:, : W // 2].sum() > 5 * left[:, W // 2:].sum()
        assert right[:, W // 2:].sum() > 5 * right[:, : W // 2].sum()
        # the map is not transposed or flipped vertically either: top rows are lit too
        assert left[: H // 2, : W // 2].sum() > 0 and left[H // 2:, : W // 2].sum() > 0


def test_reference_feature(mobilenet):
    x = torch.randn(3, H, W, generator=torch.Generator().manual_seed(4))
    y = torch.randn(3, H, W, generator=torch.Generator().manual_seed(5))
    layer = mobilenet.backbone.features[13]  # a 4 x 2 map: enough positions for maps to differ
    own = gradcam_map(mobilenet, x, target_layer=layer)
    with torch.no_grad():
        fx, fy = mobilenet(x[None])[0], mobilenet(y[None])[0]
    # the image's own (normalised) retrieval feature as reference = the default self-explanation
    np.testing.assert_allclose(gradcam_map(mobilenet, x, reference=fx * 3.0, target_layer=layer), own, atol=1e-5)
    other = gradcam_map(mobilenet, x, reference=fy.numpy(), target_layer=layer)
    assert other.shape == (H, W) and np.isfinite(other).all()
    assert not np.allclose(other, own, atol=1e-3)
    with pytest.raises(BauError, match="dimensions"):
        gradcam_map(mobilenet, x, reference=torch.ones(7))
    with pytest.raises(BauError, match="non-zero"):
        gradcam_map(mobilenet, x, reference=torch.zeros(fx.shape[0]))
    with pytest.raises(BauError, match=r"\[3, H, W\]"):
        gradcam_map(mobilenet, torch.zeros(2, 3, H, W))


def test_target_is_linear_in_the_unnormalised_feature():
    out = torch.tensor([[3.0, 4.0]], requires_grad=True)
    score = FeatureSimilarityTarget(torch.tensor([0.0, 2.0]))(out[0])
    score.backward()
    assert score.item() == pytest.approx(4.0)
    assert out.grad.tolist() == [[0.0, 1.0]]  # a cosine to its own direction would give [0, 0]
    model = ReIDModel(LocalConv(), 0).eval()
    assert EmbeddingOutput(model)(torch.rand(2, 3, H, W)).shape == (2, 8)


def test_vit_token_maps():
    torch.manual_seed(0)
    model = calibrated(build_model(tiny_config("vit_b16"), num_classes=0))
    cam = gradcam_map(model, torch.randn(3, H, W))
    assert cam.shape == (H, W) and np.isfinite(cam).all() and 0.0 <= cam.min() and cam.max() <= 1.0


def test_overlay():
    img = np.zeros((H, W, 3), dtype=np.float32)
    cam = np.zeros((H, W), dtype=np.float32)
    cam[:, : W // 2] = 1.0
    out = overlay(img, cam)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    # jet: 1 -> dark red, 0 -> dark blue
    assert out[0, 0, 0] > out[0, 0, 2] and out[0, -1, 2] > out[0, -1, 0]
    assert overlay((img * 255).astype(np.uint8), cam).shape == (H, W, 3)
    with pytest.raises(BauError, match="does not match"):
        overlay(img, cam[:10])
    with pytest.raises(BauError, match="RGB"):
        overlay(img[..., 0], cam)


def test_gradcam_across_checkpoints(tmp_path, mobilenet):
    paths = []
    for i in range(2):
        torch.manual_seed(10 + i)
        model = calibrated(build_model(tiny_config(), num_classes=5), seed=i)
        path = str(tmp_path / f"p{i}.pt")
        save_checkpoint(path, {"model": model.state_dict(), "config": tiny_config().to_dict(), "num_classes": 5})
        paths.append(path)
    rng = np.random.default_rng(0)
    image = tmp_path / "person.jpg"
    Image.fromarray(rng.integers(0, 255, (100, 50, 3), dtype=np.uint8)).save(image)
    res = gradcam_across_checkpoints(paths, str(image), ["p = 0", "p = 1"])
    assert [label for label, _ in res] == ["p = 0", "p = 1"]
    for _, ov in res:
        assert ov.shape == (H, W, 3) and ov.dtype == np.uint8
    assert not np.array_equal(res[0][1], res[1][1])  # different weights, different maps
    fig, axes = plot_gradcam_row(res, image=np.asarray(Image.open(image).resize((W, H))) / 255.0)
    assert [ax.get_title() for ax in axes] == ["image", "p = 0", "p = 1"]
    fig.savefig(tmp_path / "fig2.png")
    with pytest.raises(BauError, match="labels"):
        gradcam_across_checkpoints(paths, str(image), ["only one"])
    with pytest.raises(BauError, match="not found"):
        gradcam_across_checkpoints([str(tmp_path / "missing.pt")], str(image), ["x"])
