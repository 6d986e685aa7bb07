"""The image pipelines: the original view, the augmented view, and the test pipeline.

Section 4.2 and appendix A. Every training image gives two views (Fig. 3a):

- original view ``x``: Resize (bicubic) -> RandomHorizontalFlip -> Pad + RandomCrop ->
  ToTensor -> ImageNet Normalize (the conventional re-ID pipeline);
- augmented view ``x~ = t(x)``: the same, plus three augmentations, each applied independently
  with probability ``p`` (``data.aug_prob``, 0.5; Table 9 / Figure 1 sweep it):
  RandAugment, ColorJitter, and Random Erasing.

RandAugment comes in two op sets (``data.randaugment_ops``):

- ``paper``: appendix A's 12 ops, the original RandAugment list without the colour-destroying
  Invert, Posterize, Solarize and SolarizeAdd (``bau.data.randaugment.PAPER_OPS``: AutoContrast,
  Equalize, Rotate, Color, Contrast, Brightness, Sharpness, ShearX/Y, TranslateX/Y, Cutout);
- ``released``: the authors' released code's 16 ops, including those four and Identity, without
  Cutout (``bau.data.randaugment.RELEASED_OPS``).

Both draw 2 ops at the released magnitude 10 of 30 with the released value ranges.

The crop jitter is the released ``Pad(10)`` at 256x128, scaled with the image height
(``pad_pixels``: 10 px at 256, 2 px at 64), so a small demo resolution is jittered by the same
fraction of the image. Nothing else in the training pipelines is in pixels: RandAugment's
translations are fractions of the image size, Random Erasing's rectangle a fraction of its area.

The order follows the authors' released pipeline: RandAugment on the decoded PIL image first,
then resize / flip / crop, ColorJitter on the PIL crop, ToTensor, Normalize, and Random Erasing
last, on the normalised tensor. An erased rectangle is filled with the numbers of the ImageNet
mean (0.485, 0.456, 0.406) written into the *normalised* tensor, as the released code does (so
the fill is a dark grey-blue, not the mean colour). All randomness comes from torch's global
generator, so a DataLoader worker seeded by torch reproduces its draws.

An augmentation switched off (Table 8) or with ``p = 0`` is left out of the pipeline altogether,
so the augmented view is then an ordinary draw of the original pipeline: same ops, same random
numbers consumed.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, List, Tuple

import torch
from PIL import Image
from torch import Tensor
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from bau.core.config import RANDAUGMENT_OP_SETS
from bau.core.errors import BauError
from bau.data.randaugment import paper_randaugment, released_randaugment

if TYPE_CHECKING:
    from bau.core.config import DataConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Random Erasing's area and aspect ranges (Zhong et al.; the re-ID pipelines' 0.02-0.4 area).
ERASE_SCALE = (0.02, 0.4)
ERASE_RATIO = (0.3, 3.3)
# What an erased rectangle holds, channel by channel, in the normalised tensor (released code).
ERASE_VALUE = IMAGENET_MEAN

# The released crop jitter: Pad(10) + RandomCrop at height 256.
REFERENCE_PAD = 10
REFERENCE_HEIGHT = 256

def pad_pixels(height: int) -> int:
    """Padding of the pad + random-crop jitter for images ``height`` pixels tall:
    ``round(10 * height / 256)`` (Python's round, halves to even): 10 at 256, 5 at 128, 2 at 64."""
    return round(REFERENCE_PAD * height / REFERENCE_HEIGHT)


def build_randaugment(op_set: str) -> Callable[[Image.Image], Image.Image]:
    """RandAugment with the ``paper`` (appendix A) or ``released`` op set; see the module docstring."""
    if op_set == "paper":
        return paper_randaugment(num_ops=2, magnitude=10)
    if op_set == "released":
        return released_randaugment(num_ops=2, magnitude=10)
    raise BauError(f"data.randaugment_ops: expected one of {', '.join(RANDAUGMENT_OP_SETS)}, got {op_set!r}")


class TwoViewTransform:
    """One PIL image -> ``(original_view, augmented_view)``, two independent random draws."""

    def __init__(self, orig: Callable[[Image.Image], Tensor], aug: Callable[[Image.Image], Tensor]):
        self.orig = orig
        self.aug = aug

    def __call__(self, img: Image.Image) -> Tuple[Tensor, Tensor]:
        return self.orig(img), self.aug(img)

    def __repr__(self) -> str:
        return f"TwoViewTransform(\norig={self.orig},\naug={self.aug})"


def _check_size(height: int, width: int) -> None:
    if height < 1 or width < 1:
        raise BauError(f"data.height/data.width: expected positive image sizes, got {height}x{width}")


def _normalize() -> T.Normalize:
    return T.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD)


def build_original_transform(height: int, width: int) -> T.Compose:
    """The original view: resize, flip, pad + crop, tensor, normalise. Output ``[3, height, width]``."""
    _check_size(height, width)
    return T.Compose([
        T.Resize((height, width), interpolation=InterpolationMode.BICUBIC),
        T.RandomHorizontalFlip(p=0.5),
        T.Pad(pad_pixels(height)),
        T.RandomCrop((height, width)),
        T.ToTensor(),
        _normalize(),
    ])


def build_augmented_transform(height: int, width: int, aug_prob: float = 0.5, randaugment: bool = True,
                              color_jitter: bool = True, random_erasing: bool = True,
                              randaugment_ops: str = "paper") -> T.Compose:
    """The augmented view: the original pipeline plus RandAugment (op set ``randaugment_ops``),
    ColorJitter and Random Erasing, each applied with probability ``aug_prob``. Output ``[3, height, width]``.

    Also the single view of the "standard training pipeline" baseline (Sec. 3.1, Table 5 row 1):
    one view that gets the augmentations with probability p.
    """
    _check_size(height, width)
    if not 0.0 <= aug_prob <= 1.0:
        raise BauError(f"data.aug_prob: expected a probability in [0, 1], got {aug_prob}")
    rand_augment = build_randaugment(randaugment_ops)  # validates the op set even when unused
    use = aug_prob > 0.0  # p = 0 leaves the ops out so no random numbers are drawn for them
    ops: List[Callable] = []
    if use and randaugment:
        ops.append(T.RandomApply([rand_augment], p=aug_prob))
    ops += [
        T.Resize((height, width), interpolation=InterpolationMode.BICUBIC),
        T.RandomHorizontalFlip(p=0.5),
        T.Pad(pad_pixels(height)),
        T.RandomCrop((height, width)),
    ]
    if use and color_jitter:
        jitter = T.ColorJitter(brightness=(0.5, 2.0), contrast=(0.5, 2.0), saturation=(0.5, 2.0), hue=(-0.1, 0.1))
        ops.append(T.RandomApply([jitter], p=aug_prob))
    ops += [T.ToTensor(), _normalize()]
    if use and random_erasing:
        ops.append(T.RandomErasing(p=aug_prob, scale=ERASE_SCALE, ratio=ERASE_RATIO, value=list(ERASE_VALUE)))
    return T.Compose(ops)


def build_transforms(height: int, width: int, aug_prob: float = 0.5, randaugment: bool = True,
                     color_jitter: bool = True, random_erasing: bool = True,
                     augment_original: bool = False, randaugment_ops: str = "paper") -> TwoViewTransform:
    """The two-view training transform of BAU: ``img -> (original_view, augmented_view)``.

    ``augment_original=True`` builds the first view with the augmented pipeline as well (two
    augmented draws); the default keeps it a plain original view as in the paper.
    """
    aug = build_augmented_transform(height, width, aug_prob, randaugment, color_jitter, random_erasing,
                                    randaugment_ops)
    if augment_original:
        orig = build_augmented_transform(height, width, aug_prob, randaugment, color_jitter, random_erasing,
                                         randaugment_ops)
    else:
        orig = build_original_transform(height, width)
    return TwoViewTransform(orig, aug)


def build_train_transform(cfg_data: "DataConfig", two_view: bool = True,
                          augment_original: bool = False) -> Callable[[Image.Image], object]:
    """The training transform a run's ``data`` config describes: BAU's two views, or (``two_view=False``)
    the single augmented view of the baseline. Every ``data.*`` augmentation option is passed on."""
    d = cfg_data
    if two_view:
        return build_transforms(d.height, d.width, d.aug_prob, d.randaugment, d.color_jitter, d.random_erasing,
                                augment_original=augment_original, randaugment_ops=d.randaugment_ops)
    return build_augmented_transform(d.height, d.width, d.aug_prob, d.randaugment, d.color_jitter,
                                     d.random_erasing, randaugment_ops=d.randaugment_ops)


def build_test_transform(height: int, width: int) -> T.Compose:
    """Query/gallery images: bicubic resize, tensor, normalise; no randomness."""
    _check_size(height, width)
    return T.Compose([
        T.Resize((height, width), interpolation=InterpolationMode.BICUBIC),
        T.ToTensor(),
        _normalize(),
    ])


def denormalize(tensor: Tensor) -> Tensor:
    """Undo the ImageNet normalisation for display: ``[3, H, W]`` or ``[B, 3, H, W]`` -> values in [0, 1]."""
    if tensor.dim() not in (3, 4) or tensor.shape[-3] != 3:
        raise BauError(f"denormalize: expected a [3, H, W] or [B, 3, H, W] tensor, got shape {tuple(tensor.shape)}")
    shape = (3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=tensor.dtype, device=tensor.device).view(shape)
    std = torch.tensor(IMAGENET_STD, dtype=tensor.dtype, device=tensor.device).view(shape)
    return (tensor * std + mean).clamp(0.0, 1.0)
