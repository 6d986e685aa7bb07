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
ReLU of the weighted activations, scaled to [0, 1] (``gradcam_cells``: one value per cell of the
layer's map) and upsampled bilinearly to the input size (``gradcam_map``).

Which layer (``cam_layer``): the deepest layer whose feature map has at least ``MIN_CELLS`` = 8x4
cells (rows x columns) for the input size, among the outputs each stage hands the next
(``cam_candidates``). A map coarser than that says little about where the model looks: at 64x32
MobileNetV2's last map is 2x1, two horizontal bands. What the rule gives:

* MobileNetV2 at 64x32: ``backbone.features.6``, the end of the stride-8 stage, 8x4;
* MobileNetV2 at 256x128: ``backbone.features.18``, the last layer, 8x4 (16x8 with last stride 1);
* ResNet-50 (last stride 1) at 256x128: ``backbone.layer4``, the last layer, 16x8;
* ViT-B/16: the last block, (H/16)x(W/16) tokens at any depth (4x2 at 64x32: no layer has more).

When no layer has enough cells, the deepest of the finest maps is used, and its size says so.
ResNet-50's layer1-3 are followed by parameter-free InstanceNorm, which makes the score invariant
to a per-channel constant of their output; the gradient there averages to exactly zero over the
map, so their Grad-CAM weights vanish. The candidates are therefore the IN outputs (``in1-3``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bau.core.errors import BauError


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


MIN_CELLS = (8, 4)  # rows x columns a Grad-CAM map must have to say where a person's features are


@dataclass(frozen=True)
class CamLayer:
    """The layer a Grad-CAM is computed at: its path in the model, the module, its map size."""

    name: str  # e.g. "backbone.features.6"
    module: nn.Module
    map_hw: Tuple[int, int]  # cells (rows, columns) of its map for the input size asked for

    def describe(self) -> str:
        """``"backbone.features.6, 8x4 cells"``"""
        return f"{self.name}, {self.map_hw[0]}x{self.map_hw[1]} cells"


def cam_candidates(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """The layers Grad-CAM may use, shallow to deep: what each stage of the backbone hands the next.

    ResNet-like (``layer4``): the stem, ``in1``-``in3`` when present (else ``layer1``-``layer3``),
    ``layer4``; MobileNetV2-like (``features``): every block of ``features``; ViT (``encoder``): the
    last encoder block's first LayerNorm (every block has the same token grid). Names are module
    paths in ``model`` (``"backbone.layer4"``).
    """
    backbone = getattr(model, "backbone", model)
    if hasattr(backbone, "layer4"):
        stages = ["stem"] if hasattr(backbone, "stem") else []
        stages += [f"in{i}" if hasattr(backbone, f"in{i}") else f"layer{i}" for i in (1, 2, 3)] + ["layer4"]
        layers = [getattr(backbone, n) for n in stages if hasattr(backbone, n)]
    elif hasattr(backbone, "features") and isinstance(backbone.features, nn.Sequential):
        layers = list(backbone.features)
    elif hasattr(backbone, "encoder") and hasattr(backbone.encoder, "layers"):
        layers = [backbone.encoder.layers[-1].ln_1]
    else:
        raise BauError(f"Grad-CAM: no target layers known for backbone {type(backbone).__name__}; "
                       f"pass target_layer= (a module whose output is a [B, C, h, w] feature map)")
    names = {id(m): name for name, m in model.named_modules()}
    return [(names[id(m)], m) for m in layers]


def map_sizes(model: nn.Module, layers: Sequence[nn.Module], height: int, width: int) -> List[Tuple[int, int]]:
    """Map size ``(h, w)`` of each of ``layers`` for a ``height x width`` input (one forward of zeros, eval mode).

    ViT tokens ``[B, 1 + h*w, C]`` count as their ``(height / 16) x (width / 16)`` patch grid.
    """
    sizes: dict = {}

    def hook(module: nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor) and output.dim() == 4:
            sizes[id(module)] = (int(output.shape[2]), int(output.shape[3]))
        elif isinstance(output, torch.Tensor) and output.dim() == 3 and getattr(model, "is_token", False):
            sizes[id(module)] = (height // 16, width // 16)

    param = next(model.parameters())
    handles = [m.register_forward_hook(hook) for m in layers]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, height, width, device=param.device, dtype=param.dtype))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    missing = [m for m in layers if id(m) not in sizes]
    if missing:
        raise BauError(f"Grad-CAM: layer {type(missing[0]).__name__} gives no [B, C, h, w] map")
    return [sizes[id(m)] for m in layers]


def cam_layer(model: nn.Module, height: int, width: int, min_cells: Tuple[int, int] = MIN_CELLS) -> CamLayer:
    """The layer Grad-CAM uses for a ``height x width`` input: the deepest of ``cam_candidates(model)``
    whose map has at least ``min_cells`` (rows, columns); if none has, the deepest of the finest maps.
    """
    candidates = cam_candidates(model)
    sizes = map_sizes(model, [m for _, m in candidates], height, width)
    enough = [i for i, (h, w) in enumerate(sizes) if h >= min_cells[0] and w >= min_cells[1]]
    if enough:
        pick = enough[-1]
    else:
        finest = max(h * w for h, w in sizes)
        pick = max(i for i, (h, w) in enumerate(sizes) if h * w == finest)
    name, module = candidates[pick]
    return CamLayer(name, module, sizes[pick])


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
        raise BauError("Grad-CAM reference: expected a feature vector (tensor or array), "
                       f"got {type(reference).__name__}")
    if reference.dim() == 2 and reference.shape[0] == 1:
        reference = reference[0]
    if reference.dim() != 1:
        raise BauError(f"Grad-CAM reference: expected one [C] feature, got shape {tuple(reference.shape)}")
    if not bool(torch.isfinite(reference).all()) or float(reference.norm()) == 0.0:
        raise BauError("Grad-CAM reference: expected a finite, non-zero feature")
    return reference


def _as_image_batch(image_tensor: torch.Tensor) -> torch.Tensor:
    x = image_tensor
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[:2] != (1, 3):
        raise BauError("Grad-CAM image: expected a [3, H, W] or [1, 3, H, W] tensor, "
                       f"got shape {tuple(image_tensor.shape)}")
    return x


def gradcam_cells(model: nn.Module, image_tensor: torch.Tensor, reference: Any = None,
                  target_layer: Optional[nn.Module] = None) -> np.ndarray:
    """Grad-CAM of one image's retrieval embedding at the target layer's own resolution.

    Args:
        model: a ``ReIDModel`` (its train/eval mode is restored afterwards; BatchNorm runs in eval).
        image_tensor: ``[3, H, W]`` or ``[1, 3, H, W]`` normalised image (the test transform's output).
        reference: None (explain the image's own embedding) or a ``[C]`` feature to explain the
            similarity to, e.g. ``model(gallery_image)``; its scale does not matter.
        target_layer: the layer whose activations are weighted; ``cam_layer(model, H, W).module`` if None.

    Returns:
        ``[h, w]`` float32 map in [0, 1], one value per cell of the layer's map (all zeros when no
        region supports the score).
    """
    from pytorch_grad_cam import GradCAM

    class CellGradCAM(GradCAM):
        """GradCAM that leaves the map at the layer's resolution (no target size: no resize)."""

        def get_target_width_height(self, input_tensor):
            return None

    x = _as_image_batch(image_tensor)
    layer = cam_layer(model, x.shape[2], x.shape[3]).module if target_layer is None else target_layer
    device = next(model.parameters()).device
    x = x.to(device).float()
    wrapper = EmbeddingOutput(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ref = wrapper(x)[0] if reference is None else _as_reference(reference).to(device)
        reshape = _token_reshape(x.shape[2], x.shape[3]) if getattr(model, "is_token", False) else None
        cam = CellGradCAM(model=wrapper, target_layers=[layer], reshape_transform=reshape)
        try:
            with torch.enable_grad():
                cells = cam(input_tensor=x, targets=[FeatureSimilarityTarget(ref)])
        finally:
            cam.activations_and_grads.release()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    out = np.nan_to_num(np.asarray(cells[0], dtype=np.float32), nan=0.0)
    return np.clip(out, 0.0, 1.0)


def upsample_cells(cells: np.ndarray, height: int, width: int) -> np.ndarray:
    """``[h, w]`` cell map -> ``[height, width]`` in [0, 1]: bilinear (OpenCV, as ``pytorch_grad_cam``), rescaled."""
    import cv2
    from pytorch_grad_cam.utils.image import scale_cam_image

    up = cv2.resize(np.asarray(cells, dtype=np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(scale_cam_image(up[None])[0], 0.0, 1.0)


def gradcam_map(model: nn.Module, image_tensor: torch.Tensor, reference: Any = None,
                target_layer: Optional[nn.Module] = None) -> np.ndarray:
    """Grad-CAM map of one image's retrieval embedding at the input's size.

    ``gradcam_cells`` (same arguments; the layer: ``cam_layer`` for the image's size unless
    ``target_layer`` is given) upsampled bilinearly to the image.

    Returns:
        ``[H, W]`` float32 map in [0, 1] (all zeros when no region supports the score).
    """
    x = _as_image_batch(image_tensor)
    cells = gradcam_cells(model, x, reference, target_layer)
    return upsample_cells(cells, x.shape[2], x.shape[3])


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

    Each checkpoint is rebuilt with ``bau.runs.checkpoint.model_from_checkpoint``; the image goes
    through that run's test transform (its own ``data.height x data.width``).

    Args:
        checkpoints: checkpoint files (or run folders).
        image_path: the image to explain.
        labels: one label per checkpoint, e.g. ``["p = 0", "p = 0.5", "p = 1"]``.
        device: where to run the models.

    Returns:
        ``[(label, overlay uint8 [H, W, 3]), ...]`` in the order given.
    """
    from bau.runs.checkpoint import model_from_checkpoint

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
