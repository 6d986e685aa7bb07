"""RandAugment as the authors' released BAU code runs it (``data.randaugment_ops: released``).

RandAugment (Cubuk et al., 2020) applies ``n`` operations drawn WITH replacement from a fixed list,
each at one shared magnitude ``m`` on a 0..30 scale. The released pipeline uses ``n = 2``,
``m = 10`` and the 16 operations below, an op's value being

    value = low + (m / 30) * (high - low)

so at ``m = 10``: Rotate 10 deg, ShearX/Y 0.1, TranslateX/Y 0.15 of the image width/height,
Color/Contrast/Brightness/Sharpness factor 0.7, Posterize 2 bits, Solarize threshold 85.33,
SolarizeAdd +36.67. The geometric ops (translations, shears, rotation) turn their value negative
with probability 1/2. Unlike the paper's appendix A set (``bau.data.transforms.ColourSafeRandAugment``),
this list keeps Invert, Posterize, Solarize and SolarizeAdd.

Every op works on a PIL image. Geometric ops use PIL's defaults: nearest-neighbour resampling
and black for the uncovered area. All randomness (which ops, which signs) comes from torch's
global generator, which the training loader seeds per sample, so an image's augmentation is
reproducible.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Tuple

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

from bau.core.errors import BauError

MAX_MAGNITUDE = 30  # the magnitude scale of the released RandAugment


# -- the operations: (image, value) -> image ----------------------------------------------------
def _affine(img: Image.Image, coefficients: Tuple[float, ...]) -> Image.Image:
    """PIL affine warp: output pixel ``(x, y)`` samples input ``(a x + b y + c, d x + e y + f)``."""
    return img.transform(img.size, Image.Transform.AFFINE, coefficients)


def identity(img: Image.Image, value: float) -> Image.Image:
    return img


def translate_x(img: Image.Image, value: float) -> Image.Image:
    """Shift by ``value`` times the image width (positive: the content moves left)."""
    return _affine(img, (1, 0, value * img.size[0], 0, 1, 0))


def translate_y(img: Image.Image, value: float) -> Image.Image:
    """Shift by ``value`` times the image height (positive: the content moves up)."""
    return _affine(img, (1, 0, 0, 0, 1, value * img.size[1]))


def shear_x(img: Image.Image, value: float) -> Image.Image:
    return _affine(img, (1, value, 0, 0, 1, 0))


def shear_y(img: Image.Image, value: float) -> Image.Image:
    return _affine(img, (1, 0, 0, value, 1, 0))


def rotate(img: Image.Image, value: float) -> Image.Image:
    """Rotate by ``value`` degrees counter-clockwise about the centre."""
    return img.rotate(value)


def auto_contrast(img: Image.Image, value: float) -> Image.Image:
    return ImageOps.autocontrast(img)


def equalize(img: Image.Image, value: float) -> Image.Image:
    return ImageOps.equalize(img)


def posterize(img: Image.Image, value: float) -> Image.Image:
    """Keep the ``int(value)`` high bits of every channel (at least 1)."""
    return ImageOps.posterize(img, max(1, int(value)))


def color(img: Image.Image, value: float) -> Image.Image:
    return ImageEnhance.Color(img).enhance(value)


def contrast(img: Image.Image, value: float) -> Image.Image:
    return ImageEnhance.Contrast(img).enhance(value)


def brightness(img: Image.Image, value: float) -> Image.Image:
    return ImageEnhance.Brightness(img).enhance(value)


def sharpness(img: Image.Image, value: float) -> Image.Image:
    return ImageEnhance.Sharpness(img).enhance(value)


def invert(img: Image.Image, value: float) -> Image.Image:
    return ImageOps.invert(img)


def solarize(img: Image.Image, value: float) -> Image.Image:
    """Every channel value ``>= value`` becomes ``255 - v``."""
    return ImageOps.solarize(img, value)


SOLARIZE_ADD_THRESHOLD = 128


def solarize_add(img: Image.Image, value: float) -> Image.Image:
    """Add ``value`` to every channel, clip to 0..255 (fractions truncated), then solarize at 128."""
    shifted = np.clip(np.asarray(img, dtype=np.float64) + value, 0, 255).astype(np.uint8)
    return ImageOps.solarize(Image.fromarray(shifted), SOLARIZE_ADD_THRESHOLD)


@dataclass(frozen=True)
class RandAugmentOp:
    """One RandAugment operation: its name, the function, its value range, and whether the value
    gets a random sign."""

    name: str
    apply: Callable[[Image.Image, float], Image.Image]
    low: float
    high: float
    signed: bool = False

    def value(self, magnitude: float) -> float:
        """``low + (magnitude / 30) * (high - low)``: the op's value at a magnitude of the 0..30 scale."""
        return self.low + (float(magnitude) / MAX_MAGNITUDE) * (self.high - self.low)


# The released list, in the released order. Ops without a value carry the range (0, 1) as there.
RELEASED_OPS: Tuple[RandAugmentOp, ...] = (
    RandAugmentOp("Identity", identity, 0, 1),
    RandAugmentOp("TranslateX", translate_x, 0, 0.45, signed=True),
    RandAugmentOp("TranslateY", translate_y, 0, 0.45, signed=True),
    RandAugmentOp("ShearX", shear_x, 0, 0.3, signed=True),
    RandAugmentOp("ShearY", shear_y, 0, 0.3, signed=True),
    RandAugmentOp("Rotate", rotate, 0, 30, signed=True),
    RandAugmentOp("AutoContrast", auto_contrast, 0, 1),
    RandAugmentOp("Equalize", equalize, 0, 1),
    RandAugmentOp("Posterize", posterize, 2, 2),
    RandAugmentOp("Color", color, 0.1, 1.9),
    RandAugmentOp("Contrast", contrast, 0.1, 1.9),
    RandAugmentOp("Brightness", brightness, 0.1, 1.9),
    RandAugmentOp("Sharpness", sharpness, 0.1, 1.9),
    RandAugmentOp("Invert", invert, 0, 1),
    RandAugmentOp("Solarize", solarize, 0, 256),
    RandAugmentOp("SolarizeAdd", solarize_add, 0, 110),
)


class ReleasedRandAugment:
    """``num_ops`` ops drawn with replacement from ``RELEASED_OPS``, each at ``magnitude`` (of 30).

    Random draws, all from torch's global generator: the op indices (``num_ops`` at once), then
    for each op in turn one uniform number for its sign if it is a geometric op (``< 0.5``: negative).
    """

    def __init__(self, num_ops: int = 2, magnitude: float = 10):
        if num_ops < 0:
            raise BauError(f"RandAugment num_ops: expected 0 or more operations, got {num_ops}")
        if not 0 <= magnitude <= MAX_MAGNITUDE:
            raise BauError(f"RandAugment magnitude: expected a value in [0, {MAX_MAGNITUDE}], got {magnitude}")
        self.num_ops = num_ops
        self.magnitude = magnitude
        self.ops = RELEASED_OPS

    def draw(self) -> List[Tuple[RandAugmentOp, float]]:
        """The ops and signed values of one application (consumes the random numbers)."""
        chosen = torch.randint(len(self.ops), (self.num_ops,)).tolist()
        draws = []
        for i in chosen:
            op = self.ops[i]
            value = op.value(self.magnitude)
            if op.signed and float(torch.rand(())) < 0.5:
                value = -value
            draws.append((op, value))
        return draws

    def __call__(self, img: Image.Image) -> Image.Image:
        for op, value in self.draw():
            img = op.apply(img, value)
        return img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_ops={self.num_ops}, magnitude={self.magnitude}, ops={len(self.ops)})"
