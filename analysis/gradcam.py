"""Grad-CAM of the retrieval embedding (Selvaraju et al. 2017; the paper's Figure 2).

A re-ID network has no class to explain at test time: what it produces is an embedding. The
explained score is therefore the similarity of the image's embedding to a reference direction:

- no reference: the image's own feature (detached), i.e. "which regions make up this embedding";
- a gallery image's feature: "which regions make this image match that one".

The score is the dot product of the un-normalised BNNeck feature ``b`` with the unit reference
``r``, not the cosine of the L2-normalised feature: the cosine of a feature with its own detached
copy has zero gradient (``f / |f|`` is stationary along its own direction), which would make every
self-explanation map empty. For a gallery reference ``b . r = |b| cos(b, r)``.

Grad-CAM itself comes from the ``grad-cam`` package (``pytorch_grad_cam.GradCAM``): channel
weights are the spatially averaged gradients of the score at the target layer, the map is the
ReLU of the weighted activations, upsampled to the input size and scaled to [0, 1].
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bau.errors import BauError


class EmbeddingOutput(nn.Module):
    """Wraps a ``ReIDModel`` so Grad-CAM sees a ``[B, C]`` output: the BNNeck feature before L2 normalisation."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self.model, "forward_features"):
            return self.model.forward_features(x)["bn"].float()
        out = self.model(x)
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            raise BauError("Grad-CAM: the model must return a [B, C] feature in eval mode (or be a bau ReIDModel)")
        return out.float()


class FeatureSimilarityTarget:
    """Grad-CAM target: ``output . r / |r|`` for one image's ``[C]`` output and a reference feature ``r``."""

    def __init__(self, reference: torch.Tensor):
        self.reference = F.normalize(reference.detach().float().reshape(-1), dim=0)

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        if model_output.shape[-1] != self.reference.shape[0]:
            raise BauError(f"Grad-CAM reference: has {self.reference.shape[0]} dimensions but the model's "
                           f"feature has {model_output.shape[-1]}")
        return (model_output * self.reference.to(model_output.device)).sum(-1)


def default_target_layer(model: nn.Module) -> nn.Module:
    """The last convolutional stage of a ``ReIDModel``'s backbone: ``layer4`` (ResNet-50),
    ``features[-1]`` (MobileNetV2), or the last encoder block's first LayerNorm (ViT-B/16)."""
    backbone = getattr(model, "backbone", model)
    if hasattr(backbone, "layer4"):
        return backbone.layer4
    if hasattr(backbone, "features") and isinstance(backbone.features, nn.Sequential):
        return backbone.features[-1]
    if hasattr(backbone, "encoder") and hasattr(backbone.encoder, "layers"):
        return backbone.encoder.layers[-1].ln_1
    raise BauError(f"Grad-CAM: no default target layer for backbone {type(backbone).__name__}; "
                   f"pass target_layer= (a module whose output is a [B, C, h, w] feature map)")


def _token_reshape(height: int, width: int, patch: int = 16) -> Callable[[torch.Tensor], torch.Tensor]:
    """ViT tokens ``[B, 1 + h*w, C]`` -> ``[B, C, h, w]`` (class token dropped) so Grad-CAM can average them."""
    h, w = height // patch, width // patch

    def reshape(t: torch.Tensor) -> torch.Tensor:
        if t.dim() != 3 or t.shape[1] != 1 + h * w:
            raise BauError(f"Grad-CAM on a ViT: expected {1 + h * w} tokens for a {height}x{width} image, "
                           f"got shape {tuple(t.shape)}")
        return t[:, 1:, :].reshape(t.shape[0], h, w, t.shape[2]).permute(0, 3, 1, 2)

    return reshape


def _as_reference(reference: Any) -> torch.Tensor:
    if isinstance(reference, np.ndarray):
        reference = torch.from_numpy(reference)
    if not isinstance(reference, torch.Tensor):
        raise BauError(f"Grad-CAM reference: expected a feature vector (tensor or array), got {type(reference).__name__}")
    if reference.dim() == 2 and reference.shape[0] == 1:
        reference = reference[0]
    if reference.dim() != 1:
        raise BauError(f"Grad-CAM reference: expected one [C] feature, got shape {tuple(reference.shape)}")
    if not bool(torch.isfinite(reference).all()) or float(reference.norm()) == 0.0:
        raise BauError("Grad-CAM reference: expected a finite, non-zero feature")
    return reference


def gradcam_map(model: nn.Module, image_tensor: torch.Tensor, reference: Any = None,
                target_layer: Optional[nn.Module] = None) -> np.ndarray:
    """Grad-CAM map of one image's retrieval embedding.

    Args:
        model: a ``ReIDModel`` (its train/eval mode is restored afterwards; BatchNorm runs in eval).
        image_tensor: ``[3, H, W]`` or ``[1, 3, H, W]`` normalised image (the test transform's output).
        reference: None (explain the image's own embedding) or a ``[C]`` feature to explain the
            similarity to, e.g. ``model(gallery_image)``; its scale does not matter.
        target_layer: the layer whose activations are weighted; ``default_target_layer(model)`` if None.

    Returns:
        ``[H, W]`` float32 map in [0, 1] (all zeros when no region supports the score).
    """
    from pytorch_grad_cam import GradCAM

    x = image_tensor
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[:2] != (1, 3):
        raise BauError(f"Grad-CAM image: expected a [3, H, W] or [1, 3, H, W] tensor, got shape {tuple(image_tensor.shape)}")
    layer = default_target_layer(model) if target_layer is None else target_layer
    device = next(model.parameters()).device
    x = x.to(device).float()
    wrapper = EmbeddingOutput(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ref = wrapper(x)[0] if reference is None else _as_reference(reference).to(device)
        reshape = _token_reshape(x.shape[2], x.shape[3]) if getattr(model, "is_token", False) else None
        cam = GradCAM(model=wrapper, target_layers=[layer], reshape_transform=reshape)
        try:
            with torch.enable_grad():
                grayscale = cam(input_tensor=x, targets=[FeatureSimilarityTarget(ref)])
        finally:
            cam.activations_and_grads.release()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    out = np.nan_to_num(np.asarray(grayscale[0], dtype=np.float32), nan=0.0)
    return np.clip(out, 0.0, 1.0)


def overlay(image_rgb_float: np.ndarray, cam: np.ndarray, image_weight: float = 0.5) -> np.ndarray:
    """Heat map (jet) of ``cam`` blended over the image.

    Args:
        image_rgb_float: ``[H, W, 3]`` RGB image, float in [0, 1] (uint8 is accepted and scaled).
        cam: ``[H, W]`` map in [0, 1] (e.g. from ``gradcam_map``).
        image_weight: weight of the image in the blend (the heat map gets ``1 - image_weight``).

    Returns:
        ``[H, W, 3]`` uint8 RGB.
    """
    from pytorch_grad_cam.utils.image import show_cam_on_image

    img = np.asarray(image_rgb_float)
    if img.dtype == np.uint8:
        img = img.astype(np.float32) / 255.0
    cam = np.asarray(cam, dtype=np.float32)
    if img.ndim != 3 or img.shape[2] != 3:
        raise BauError(f"overlay: expected an [H, W, 3] RGB image, got shape {img.shape}")
    if cam.shape != img.shape[:2]:
        raise BauError(f"overlay: map shape {cam.shape} does not match image size {img.shape[:2]}")
    if not 0.0 <= image_weight <= 1.0:
        raise BauError(f"overlay: image_weight must be in [0, 1], got {image_weight}")
    img = np.clip(img.astype(np.float32), 0.0, 1.0)
    return show_cam_on_image(img, np.clip(cam, 0.0, 1.0), use_rgb=True, image_weight=image_weight)


def load_test_image(path: str, height: int, width: int) -> Tuple[torch.Tensor, np.ndarray]:
    """``(normalised [3, H, W] tensor, [H, W, 3] float RGB in [0, 1] for display)`` of an image file."""
    from bau.data.images import read_image
    from bau.data.transforms import build_test_transform, denormalize

    tensor = build_test_transform(height, width)(read_image(path))
    return tensor, denormalize(tensor).permute(1, 2, 0).numpy()


def gradcam_across_checkpoints(checkpoints: Sequence[str], image_path: str, labels: Sequence[str],
                               device: str | torch.device = "cpu") -> List[Tuple[str, np.ndarray]]:
    """One image explained by several checkpoints (Figure 2: models trained at different
    augmentation probabilities p).

    Each checkpoint is rebuilt with ``bau.checkpoint.model_from_checkpoint``; the image goes
    through that run's test transform (its own ``data.height x data.width``).

    Args:
        checkpoints: checkpoint files (or run folders).
        image_path: the image to explain.
        labels: one label per checkpoint, e.g. ``["p = 0", "p = 0.5", "p = 1"]``.
        device: where to run the models.

    Returns:
        ``[(label, overlay uint8 [H, W, 3]), ...]`` in the order given.
    """
    from bau.checkpoint import model_from_checkpoint

    if len(checkpoints) != len(labels):
        raise BauError(f"Grad-CAM across checkpoints: {len(checkpoints)} checkpoints but {len(labels)} labels")
    if not checkpoints:
        raise BauError("Grad-CAM across checkpoints: no checkpoint given")
    results = []
    for path, label in zip(checkpoints, labels):
        model, _, cfg = model_from_checkpoint(path, device)
        tensor, rgb = load_test_image(image_path, cfg.data.height, cfg.data.width)
        results.append((label, overlay(rgb, gradcam_map(model, tensor))))
        del model
    return results


def plot_gradcam_row(results: Sequence[Tuple[str, np.ndarray]], image: Optional[np.ndarray] = None,
                     image_label: str = "image"):
    """Figure 2 layout: the (optional) input image, then one overlay per label, in one row.

    Returns:
        ``(fig, axes)``.
    """
    from analysis.plotting import image_grid

    images = ([image] if image is not None else []) + [ov for _, ov in results]
    titles = ([image_label] if image is not None else []) + [label for label, _ in results]
    return image_grid(images, titles=titles, nrows=1, panel_width=0.9)
