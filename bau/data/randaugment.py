"""RandAugment as the authors' released BAU code runs it, and appendix A's op set.

Two op lists, one sampler (``RandAugment``):

- ``RELEASED_OPS`` (``data.randaugment_ops: released``): the released code's 16 ops;
- ``PAPER_OPS`` (``data.randaugment_ops: paper``): appendix A's list (the original RandAugment
  list, with Cutout where the released one has Identity) minus the four colour-destroying ops
  Invert, Posterize, Solarize and SolarizeAdd: AutoContrast, Equalize, Rotate, Color, Contrast,
  Brightness, Sharpness, ShearX, ShearY, TranslateX, TranslateY and Cutout. Each op keeps the
  released value range; Cutout, which the released file defines but does not list, takes its
  released range (0, 0.2) of the image width, so its square scales with the image.

RandAugment (Cubuk et al., 2020) applies ``n`` operations drawn WITH replacement from a fixed list,
each at one shared magnitude ``m`` on a 0..30 scale. The released pipeline uses ``n = 2``,
``m = 10`` and the 16 operations below, an op's value being

    value = low + (m / 30) * (high - low)

so at ``m = 10``: Rotate 10 deg, ShearX/Y 0.1, TranslateX/Y 0.15 of the image width/height,
Color/Contrast/Brightness/Sharpness factor 0.7, Posterize 2 bits, Solarize threshold 85.33,
SolarizeAdd +36.67. The geometric ops (translations, shears, rotation) turn their value negative
with probability 1/2. Unlike appendix A's set (``PAPER_OPS``), the released list keeps Invert,
Posterize, Solarize and SolarizeAdd. At ``m = 10`` Cutout is a
square of side ``0.2 / 3`` of the image width (4.3 px of a 64-px-wide image), filled with the
released grey (125, 123, 114), centred at a uniform random point and clipped at the border.

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
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

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


CUTOUT_FILL = (125, 123, 114)  # the released Cutout's fill colour


def cutout(img: Image.Image, value: float) -> Image.Image:
    """Grey square of side ``value`` times the image width, centred at a uniform random point.

    As the released ``Cutout``/``CutoutAbs``: the top-left corner is the centre minus half the side,
    clipped at 0, and the square is clipped at the image border. The centre is drawn from torch's
    global generator (two uniform numbers: x, then y)."""
    if value <= 0:
        return img
    side = value * img.size[0]
    w, h = img.size
    x0 = float(torch.rand(())) * w
    y0 = float(torch.rand(())) * h
    x0 = int(max(0, x0 - side / 2.0))
    y0 = int(max(0, y0 - side / 2.0))
    box = (x0, y0, min(w, x0 + side), min(h, y0 + side))
    img = img.copy()
    ImageDraw.Draw(img).rectangle(box, CUTOUT_FILL)
    return img


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


_PAPER_OP_NAMES = ("AutoContrast", "Equalize", "Rotate", "Color", "Contrast", "Brightness", "Sharpness",
                   "ShearX", "ShearY", "TranslateX", "TranslateY")
# Appendix A's list minus Invert, Posterize, Solarize, SolarizeAdd, in the appendix's order; the
# released ranges, and the released Cutout's (0, 0.2) of the width.
PAPER_OPS: Tuple[RandAugmentOp, ...] = tuple(
    [op for name in _PAPER_OP_NAMES for op in RELEASED_OPS if op.name == name]
    + [RandAugmentOp("Cutout", cutout, 0, 0.2)])


class RandAugment:
    """``num_ops`` ops drawn with replacement from ``ops``, each at ``magnitude`` (of 30).

    Random draws, all from torch's global generator: the op indices (``num_ops`` at once), then
    for each op in turn one uniform number for its sign if it is a geometric op (``< 0.5``: negative).
    """

    def __init__(self, ops: Tuple[RandAugmentOp, ...], num_ops: int = 2, magnitude: float = 10):
        if not ops:
            raise BauError("RandAugment ops: expected at least one operation")
        if num_ops < 0:
            raise BauError(f"RandAugment num_ops: expected 0 or more operations, got {num_ops}")
        if not 0 <= magnitude <= MAX_MAGNITUDE:
            raise BauError(f"RandAugment magnitude: expected a value in [0, {MAX_MAGNITUDE}], got {magnitude}")
        self.num_ops = num_ops
        self.magnitude = magnitude
        self.ops = tuple(ops)

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
        names = ", ".join(op.name for op in self.ops)
        return f"{type(self).__name__}(num_ops={self.num_ops}, magnitude={self.magnitude}, ops=[{names}])"


def released_randaugment(num_ops: int = 2, magnitude: float = 10) -> RandAugment:
    """The released pipeline's RandAugment: ``RELEASED_OPS``, 2 ops at magnitude 10 of 30."""
    return RandAugment(RELEASED_OPS, num_ops, magnitude)


def paper_randaugment(num_ops: int = 2, magnitude: float = 10) -> RandAugment:
    """Appendix A's RandAugment: ``PAPER_OPS`` (12 ops), 2 at the released magnitude 10 of 30."""
    return RandAugment(PAPER_OPS, num_ops, magnitude)
